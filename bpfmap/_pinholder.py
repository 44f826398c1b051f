"""The holder of a user's emulated pins: one process for many pins, stdlib only.

An emulated map is a memfd, which cannot be linked into a directory, so this
process plays bpffs for one user. A pin is a small regular file (any filesystem,
any path); per pin the holder keeps the memfd and a descriptor of the pin file,
keyed by the file's inode (st_dev, st_ino): renames and hard links change
nothing, as on bpffs. A pin whose file has no link left is dropped: at once when
inotify reports the link count change (one instance for all pins), else at the
sweep of unwatched pins every SWEEP seconds, and of all every FULL_SWEEP seconds.

A standby (a forked copy, told of every pin added or dropped) shares the listening
sockets and takes over when the holder is killed; then it starts a standby of its
own. Clients of the holder's user (and root) connect to SOCK_SEQPACKET sockets in
the abstract namespace (no file for a /tmp cleaner to remove); one message is one
request, served without ever blocking: a silent or non-reading client is dropped.

    pin + [memfd, pin file]  register (pending until "done")  -> ok INSTANCE PID|full|err N
    done N                   the client linked the file (N == 0) or gave up (N: errno)
    get r|rw + [pin file opened r|rw: proof of access]  -> ok + [memfd] | err N
    ping                     -> ok PID INSTANCE PINS STANDBY_PID
    sweep                    drop the pins without a link now  -> ok PINS

    python -I _pinholder.py NAME   (one line on stdout: "ok PID INSTANCE" or "err ERRNO")

It binds NAME (where clients pin) and NAME/INSTANCE (named in its pin files, where
clients open them), and exits when it holds no pin and no client is connected.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys
import time
from typing import Union

SWEEP = 1.0  # seconds between checks of the pins inotify does not watch
FULL_SWEEP = 30.0  # seconds between checks of every pin (a network filesystem's removals)
IDLE = 60.0  # seconds after which a silent client connection is closed
IN_ATTRIB = 0x4  # a link count changed (also chmod, touch: then the check finds links)
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000
GRACE = 5.0  # seconds a holder with no pin and no client waits before it exits
EVENT = struct.Struct("iIII")  # struct inotify_event without its name
CRED = struct.Struct("3i")  # struct ucred
INT = struct.Struct("i")
# To the standby: b"a" added (+ memfd, pin file; pending), b"c" committed, b"d" dropped, b"q" quit.
MIRROR = struct.Struct("=c7xQQ")
FD_MARGIN = 32  # descriptors kept free for connections and replies
# An answer, or an answer with a descriptor to pass (and whether it is ours to close after).
Reply = Union[bytes, tuple[bytes, int, bool]]


class Pin:
    __slots__ = ("map_fd", "file_fd", "wd", "pending", "orphan")

    def __init__(self, map_fd: int, file_fd: int, pending: Conn | None) -> None:
        self.map_fd = map_fd
        self.file_fd = file_fd
        self.wd = -1
        self.pending = pending  # the connection that is linking the file, until "done"
        # In a standby: pending in the primary. After a takeover its client may still
        # link the file (its "done" can reach the dying primary): judged a bit later.
        self.orphan = False


class Conn:
    __slots__ = ("sock", "last", "pending")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.last = time.monotonic()
        self.pending: tuple[int, int] | None = None


def _recv(sock: socket.socket, size: int = 64) -> tuple[bytes, list[int], bool]:
    """One request and the descriptors that came with it (close-on-exec); truncated?"""
    msg, anc, flags, _ = sock.recvmsg(size, socket.CMSG_SPACE(4 * INT.size),
                                      socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % INT.size
            fds.extend(x[0] for x in INT.iter_unpack(data[:usable]))
    return msg, fds, bool(flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC))


class Holder:
    def __init__(self, name: str) -> None:
        self.me = os.getuid()
        self.pid = os.getpid()
        self.instance = f"{name}/{os.urandom(8).hex()}"
        self.pins: dict[tuple[int, int], Pin] = {}
        self.by_wd: dict[int, tuple[int, int]] = {}
        self.conns: dict[int, Conn] = {}
        self.sweeping = False
        self.mirror: socket.socket | None = None  # to the standby, while one runs
        self.standby = 0
        self.standby_retry = 0.0
        self.orphans_until = 0.0  # after a takeover: when pins pending then are judged
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.fd_limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
        self.listeners = []
        for n in (name, self.instance):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.bind("\0" + n)  # EADDRINUSE: another holder has the name
            s.listen(socket.SOMAXCONN)
            s.setblocking(False)
            self.listeners.append(s)
        self.ep = select.epoll()
        for s in self.listeners:
            self.ep.register(s.fileno(), select.EPOLLIN)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.ino = int(self.libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK))
        if self.ino >= 0:
            self.ep.register(self.ino, select.EPOLLIN)

    # -- pins ---------------------------------------------------------------

    def drop(self, key: tuple[int, int]) -> None:
        p = self.pins.pop(key)
        self.to_standby(b"d", key)
        if p.wd >= 0:
            self.by_wd.pop(p.wd, None)
            self.libc.inotify_rm_watch(self.ino, p.wd)
        os.close(p.file_fd)
        os.close(p.map_fd)  # the map lives on in its other handles and mappings, if any

    def check(self, key: tuple[int, int]) -> bool:
        """Drop the pin if its file has no link left (and none is being made); held?"""
        p = self.pins[key]
        if p.pending is not None:
            return True
        if p.orphan:
            if time.monotonic() < self.orphans_until:
                return True
            p.orphan = False
        try:
            links = os.fstat(p.file_fd).st_nlink
        except OSError as exc:  # ESTALE: removed on a network filesystem's server
            links = 0 if exc.errno in (errno.ESTALE, errno.ENOENT) else 1
        if links == 0:
            self.drop(key)
            return False
        return True

    def sweep(self, asking: Conn | None = None) -> None:
        # What clients in the middle of a pin sent (their "done", or the end of file
        # of one that died) may wait behind this request: take it first.
        if not self.sweeping:
            self.sweeping = True
            try:
                for c in [c for c in self.conns.values()
                          if c.pending is not None and c is not asking]:
                    self.serve(c, drain=True)
            finally:
                self.sweeping = False
        for key in list(self.pins):
            self.check(key)

    def sweep_unwatched(self) -> None:
        for key in [k for k, p in self.pins.items() if p.wd < 0 or p.orphan]:
            self.check(key)

    def watch(self, p: Pin) -> None:
        if self.ino < 0:
            return  # no inotify: the sweep alone notices
        wd = int(self.libc.inotify_add_watch(self.ino, f"/proc/self/fd/{p.file_fd}".encode(),
                                             IN_ATTRIB))
        if wd >= 0:  # else (ENOSPC: the user's watches are used up) the sweep notices
            p.wd = wd

    def inotify(self) -> None:
        try:
            data = os.read(self.ino, 65536)
        except BlockingIOError:
            return
        at = 0
        while at + EVENT.size <= len(data):
            wd, mask, _, length = EVENT.unpack_from(data, at)
            at += EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                self.sweep()  # events were lost: look at every pin
                continue
            key = self.by_wd.get(wd)
            if key is None:
                continue
            if mask & IN_IGNORED:  # the watch is gone (filesystem unmounted): sweep only
                del self.by_wd[wd]
                self.pins[key].wd = -1
            if key in self.pins:
                self.check(key)

    # -- requests -----------------------------------------------------------

    def request(self, c: Conn, msg: bytes, fds: list[int]) -> Reply:
        words = msg.split()
        verb = words[0] if words else b""
        if verb == b"pin" and len(fds) == 2:
            return self.pin(c, fds[0], fds[1])
        if verb == b"done" and len(words) == 2 and not fds:
            self.done(c, words[1] == b"0")
            return b""
        if verb == b"get" and len(words) == 2 and len(fds) == 1:
            return self.get(words[1], fds[0])
        if verb == b"ping" and not fds:
            return f"ok {self.pid} {self.instance} {len(self.pins)} {self.standby}".encode()
        if verb == b"sweep" and not fds:
            self.sweep(c)
            return f"ok {len(self.pins)}".encode()
        return b"err %d" % errno.EINVAL

    def pin(self, c: Conn, map_fd: int, file_fd: int) -> bytes:
        if c.pending is not None:
            return b"err %d" % errno.EBUSY
        st = os.fstat(file_fd)
        if not stat.S_ISREG(st.st_mode):
            return b"err %d" % errno.EINVAL
        try:
            fcntl.fcntl(map_fd, fcntl.F_GET_SEALS)  # an emulated map is a sealable memfd
        except OSError:
            return b"err %d" % errno.EINVAL
        key = (st.st_dev, st.st_ino)
        if key in self.pins:
            p = self.pins[key]
            if not p.orphan:
                return b"err %d" % errno.EEXIST
            # Its client asks again, after the primary died before answering: ours now.
            p.orphan, p.pending, c.pending = False, c, key
            return f"ok {self.instance} {self.pid}".encode()
        if 2 * len(self.pins) + len(self.conns) + FD_MARGIN >= self.fd_limit:
            return b"full"  # the client asks the next holder
        p = Pin(os.dup(map_fd), os.dup(file_fd), c)
        self.pins[key] = p
        self.to_standby(b"a", key, [p.map_fd, p.file_fd])
        c.pending = key
        self.watch(p)
        if p.wd >= 0:
            self.by_wd[p.wd] = key
        return f"ok {self.instance} {self.pid}".encode()

    def done(self, c: Conn, linked: bool) -> None:
        key, c.pending = c.pending, None
        if key is None or key not in self.pins:
            return
        self.pins[key].pending = None
        if linked:
            if self.check(key):  # removed already? dropped now
                self.to_standby(b"c", key)
        else:
            self.drop(key)

    def get(self, mode: bytes, file_fd: int) -> Reply:
        # The client sends the pin file opened with the access it asks for: the
        # kernel checked the file's permissions at that open, as BPF_OBJ_GET does.
        acc = fcntl.fcntl(file_fd, fcntl.F_GETFL) & os.O_ACCMODE
        if (mode, acc) not in ((b"rw", os.O_RDWR), (b"r", os.O_RDONLY), (b"r", os.O_RDWR)):
            return b"err %d" % errno.EACCES
        st = os.fstat(file_fd)
        key = (st.st_dev, st.st_ino)
        if key not in self.pins:
            return b"err %d" % errno.EACCES  # a file that is not one of our pins
        if not self.check(key):
            return b"err %d" % errno.ENOENT  # unlinked since the client opened it
        fd = self.pins[key].map_fd
        if mode == b"r":
            try:
                return b"ok", os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC), True
            except OSError as exc:
                return b"err %d" % (exc.errno or errno.EIO)
        return b"ok", fd, False  # the pin's own descriptor: kept after sending

    # -- the standby: a forked copy that takes over if this process is killed --

    def to_standby(self, what: bytes, key: tuple[int, int], fds: list[int] | None = None) -> None:
        if self.mirror is None:
            return
        try:
            frame = MIRROR.pack(what, *key)
            sent = socket.send_fds(self.mirror, [frame], fds) if fds else self.mirror.send(frame)
            if sent != len(frame):
                raise BlockingIOError
        except OSError:  # stopped (its buffer is full) or gone: a fresh copy replaces it
            self.lose_standby()

    def lose_standby(self) -> None:
        if self.mirror is not None:
            self.ep.unregister(self.mirror.fileno())
            self.mirror.close()
            self.mirror = None
        if self.standby:
            with contextlib.suppress(OSError):
                os.kill(self.standby, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(self.standby, 0)  # our child: reaped, never a zombie
            self.standby = 0

    def start_standby(self) -> None:
        """Fork the standby; in the child, returns only once it has taken over."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid:
            theirs.close()
            ours.setblocking(False)
            self.mirror, self.standby = ours, pid
            self.ep.register(ours.fileno(), select.EPOLLIN)
            return
        ours.close()
        try:
            self.stand_by(theirs)
        except BaseException:
            os._exit(1)

    def stand_by(self, mirror: socket.socket) -> None:
        # Our own session: a signal to the holder's process group spares the standby.
        os.setsid()
        self.ep.close()
        for c in self.conns.values():
            c.sock.close()  # the primary's clients: their end of file must not wait for us
        self.conns.clear()
        if self.ino >= 0:
            os.close(self.ino)
        self.ino = -1
        self.by_wd.clear()
        for p in self.pins.values():
            p.wd, p.orphan, p.pending = -1, p.orphan or p.pending is not None, None
        self.mirror, self.standby = None, 0
        while True:
            try:
                frame, fds, _ = _recv(mirror, MIRROR.size)
                while frame and len(frame) < MIRROR.size:
                    frame += mirror.recv(MIRROR.size - len(frame))
            except OSError:
                break
            if not frame:
                break  # the primary is gone: take over
            what, dev, ino = MIRROR.unpack(frame)
            if what == b"a" and len(fds) == 2:
                self.pins[(dev, ino)] = Pin(fds[0], fds[1], None)
                self.pins[(dev, ino)].orphan = True
                continue
            for fd in fds:
                os.close(fd)
            if what == b"d" and (dev, ino) in self.pins:
                self.drop((dev, ino))
            elif what == b"c" and (dev, ino) in self.pins:
                self.pins[(dev, ino)].orphan = False
            elif what == b"q":
                os._exit(0)
        mirror.close()
        # The primary's listening sockets are ours too: their clients wait in the
        # backlog, and see us from now on.
        self.pid = os.getpid()
        self.ep = select.epoll()
        for s in self.listeners:
            self.ep.register(s.fileno(), select.EPOLLIN)
        self.ino = int(self.libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK))
        if self.ino >= 0:
            self.ep.register(self.ino, select.EPOLLIN)
        for key, p in self.pins.items():
            self.watch(p)
            if p.wd >= 0:
                self.by_wd[p.wd] = key
        # A pin the primary was making when it died: its client may link it still (its
        # "done" may reach the dying primary's socket): judged at the sweeps after SWEEP.
        self.orphans_until = time.monotonic() + SWEEP
        self.sweep()

    # -- connections --------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return  # the client waits in the backlog; a sweep or close frees some
                continue
            sock.setblocking(False)
            _, uid, _ = CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                    CRED.size))
            if uid not in (self.me, 0):
                with contextlib.suppress(OSError):
                    sock.send(b"err %d" % errno.EACCES)
                sock.close()
                continue
            self.conns[sock.fileno()] = Conn(sock)
            self.ep.register(sock.fileno(), select.EPOLLIN)

    def close(self, c: Conn) -> None:
        fd = c.sock.fileno()
        self.ep.unregister(fd)
        del self.conns[fd]
        c.sock.close()
        if c.pending is not None and c.pending in self.pins:
            # The client is gone mid-pin (killed?): the pin exists if it linked the file.
            self.pins[c.pending].pending = None
            if self.check(c.pending):
                self.to_standby(b"c", c.pending)

    def serve(self, c: Conn, drain: bool = False) -> None:
        """Answer one request (epoll reports the connection again if more wait), or all."""
        while True:
            fds: list[int] = []
            try:
                msg, fds, truncated = _recv(c.sock)
            except BlockingIOError:
                return
            except OSError:
                self.close(c)
                return
            try:
                if not msg and not fds:
                    self.close(c)  # EOF
                    return
                c.last = time.monotonic()
                reply: Reply
                if truncated:
                    reply = b"err %d" % (errno.EMFILE if not fds else errno.EINVAL)
                else:
                    try:
                        reply = self.request(c, msg, fds)
                    except OSError as exc:
                        reply = b"err %d" % (exc.errno or errno.EIO)
                if not self.send(c, reply) or not drain:
                    return
            finally:
                for fd in fds:
                    os.close(fd)

    def send(self, c: Conn, reply: Reply) -> bool:
        if reply == b"":
            return True
        try:
            if isinstance(reply, tuple):
                msg, fd, owned = reply
                try:
                    socket.send_fds(c.sock, [msg], [fd])
                finally:
                    if owned:
                        os.close(fd)
            else:
                c.sock.send(reply)
            return True
        except OSError:
            self.close(c)  # not reading its answers (buffer full), or gone
            return False

    def idle(self) -> None:
        cutoff = time.monotonic() - IDLE
        for c in [c for c in self.conns.values() if c.last < cutoff]:
            self.close(c)

    def run(self) -> None:
        listeners = {s.fileno(): s for s in self.listeners}
        next_sweep = time.monotonic() + SWEEP
        next_full = time.monotonic() + FULL_SWEEP
        busy = time.monotonic()
        while self.pins or self.conns or time.monotonic() - busy < GRACE:
            if self.pins or self.conns:
                busy = time.monotonic()
            if self.mirror is None and self.pins and time.monotonic() >= self.standby_retry:
                try:
                    self.start_standby()  # the child comes back here as the primary
                except OSError:  # no process to be had (RLIMIT_NPROC): try again later
                    self.standby_retry = time.monotonic() + SWEEP
            timeout = max(0.0, next_sweep - time.monotonic())
            try:
                events = self.ep.poll(timeout)
            except InterruptedError:
                continue
            for fd, _ in events:
                try:
                    if self.mirror is not None and fd == self.mirror.fileno():
                        self.lose_standby()  # it died (its end of the pair): a new one
                    elif fd in listeners:
                        self.accept(listeners[fd])
                    elif fd == self.ino:
                        self.inotify()
                    elif fd in self.conns:
                        self.serve(self.conns[fd])
                except Exception:  # a bug must not take every pin with it: drop the client
                    if fd in self.conns:
                        with contextlib.suppress(Exception):
                            self.close(self.conns[fd])
            now = time.monotonic()
            if now >= next_full:
                self.sweep()
                next_full = now + FULL_SWEEP
            if now >= next_sweep:
                self.sweep_unwatched()
                self.idle()
                next_sweep = now + SWEEP
        if self.mirror is not None:
            self.to_standby(b"q", (0, 0))  # nothing left to hold: the standby goes too


def main(name: str) -> None:
    ready_r, ready_w = os.pipe()
    if os.fork():
        # The first process reports for the daemon (its child) and exits, so the
        # daemon is nobody's child but init's (or a subreaper's).
        os.close(ready_w)
        line = os.read(ready_r, 200) or b"err %d\n" % errno.EIO
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        os._exit(0)
    os.close(ready_r)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    os.close(devnull)
    try:
        holder = Holder(name)  # listen() here: clients see this process in SO_PEERCRED
    except OSError as exc:
        code = errno.EEXIST if exc.errno == errno.EADDRINUSE else (exc.errno or errno.EIO)
        os.write(ready_w, b"err %d\n" % code)
        os._exit(0)
    os.write(ready_w, f"ok {holder.pid} {holder.instance}\n".encode())
    os.close(ready_w)
    holder.run()


if __name__ == "__main__":
    main(sys.argv[1])
