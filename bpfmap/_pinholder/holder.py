"""The holder's server: its sockets, its clients' requests, and its loop.

Clients of the holder's user (and root) connect to SOCK_SEQPACKET sockets in the
abstract namespace (no file for a /tmp cleaner to remove); one message is one
request (the list is in ``__init__``), served without ever blocking: a silent or
non-reading client is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import select
import socket
import stat
import time

from .pins import FULL_SWEEP, SWEEP, PinTable
from .standby import Mirror, follow
from .wire import Key, Reply, peer_uid, recv

IDLE = 60.0  # seconds after which a silent client connection is closed
GRACE = 5.0  # seconds a holder with no pin and no client waits before it exits
FD_MARGIN = 32  # descriptors kept free for connections and replies


class Conn:
    __slots__ = ("sock", "last", "pending")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.last = time.monotonic()
        self.pending: Key | None = None  # the pin this client is linking, until "done"


class Holder:
    def __init__(self, name: str) -> None:
        self.me = os.getuid()
        self.pid = os.getpid()
        self.instance = f"{name}/{os.urandom(8).hex()}"
        self.conns: dict[int, Conn] = {}
        self.sweeping = False
        self.mirror = Mirror()
        self.table = PinTable(self.mirror.send)
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
        self.ep = self.poll_listeners()
        self.table.start_watching(self.ep)

    def poll_listeners(self) -> select.epoll:
        ep = select.epoll()
        for s in self.listeners:
            ep.register(s.fileno(), select.EPOLLIN)
        return ep

    def sweep(self, asking: Conn | None = None) -> None:
        """Drop every pin whose file has no link left."""
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
        self.table.check_all()

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
            return (f"ok {self.pid} {self.instance} {len(self.table)} "
                    f"{self.mirror.pid}").encode()
        if verb == b"sweep" and not fds:
            self.sweep(c)
            return f"ok {len(self.table)}".encode()
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
        if key in self.table:
            p = self.table[key]
            if not p.orphan:
                return b"err %d" % errno.EEXIST
            # Its client asks again, after the primary died before answering: ours now.
            p.orphan, p.pending, c.pending = False, c, key
            return f"ok {self.instance} {self.pid}".encode()
        if 2 * len(self.table) + len(self.conns) + FD_MARGIN >= self.fd_limit:
            return b"full"  # the client asks the next holder
        self.table.add(key, map_fd, file_fd, c)
        c.pending = key
        return f"ok {self.instance} {self.pid}".encode()

    def done(self, c: Conn, linked: bool) -> None:
        key, c.pending = c.pending, None
        if key is None or key not in self.table:
            return
        if linked:
            self.table.commit(key)
        else:
            self.table.drop(key)

    def get(self, mode: bytes, file_fd: int) -> Reply:
        # The client sends the pin file opened with the access it asks for: the
        # kernel checked the file's permissions at that open, as BPF_OBJ_GET does.
        acc = fcntl.fcntl(file_fd, fcntl.F_GETFL) & os.O_ACCMODE
        if (mode, acc) not in ((b"rw", os.O_RDWR), (b"r", os.O_RDONLY), (b"r", os.O_RDWR)):
            return b"err %d" % errno.EACCES
        st = os.fstat(file_fd)
        key = (st.st_dev, st.st_ino)
        if key not in self.table:
            return b"err %d" % errno.EACCES  # a file that is not one of our pins
        if not self.table.check(key):
            return b"err %d" % errno.ENOENT  # unlinked since the client opened it
        fd = self.table[key].map_fd
        if mode == b"r":
            try:
                return b"ok", os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC), True
            except OSError as exc:
                return b"err %d" % (exc.errno or errno.EIO)
        return b"ok", fd, False  # the pin's own descriptor: kept after sending

    # -- the standby --------------------------------------------------------

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
            try:
                self.mirror.attach(ours, pid, self.ep)
            except OSError:  # not polled, it could not be told dead: none rather than that
                self.mirror.lose()
                raise
            return
        ours.close()
        try:
            self.stand_by(theirs)
        except BaseException:
            os._exit(1)

    def stand_by(self, link: socket.socket) -> None:
        # Our own session: a signal to the holder's process group spares the standby.
        os.setsid()
        self.ep.close()
        for c in self.conns.values():
            c.sock.close()  # the primary's clients: their end of file must not wait for us
        self.conns.clear()
        self.mirror.forget()
        self.table.stop_watching()
        self.table.orphan_pending()
        follow(link, self.table)
        # The primary is gone. Its listening sockets are ours too: their clients wait
        # in the backlog, and see us from now on.
        self.pid = os.getpid()
        self.ep = self.poll_listeners()
        self.table.start_watching(self.ep)
        # A pin the primary was making when it died: its client may link it still (its
        # "done" may reach the dying primary's socket): judged at the sweeps after SWEEP.
        self.table.orphans_until = time.monotonic() + SWEEP
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
            if peer_uid(sock) not in (self.me, 0):
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
        if c.pending is not None and c.pending in self.table:
            # The client is gone mid-pin (killed?): the pin exists if it linked the file.
            self.table.commit(c.pending)

    def serve(self, c: Conn, drain: bool = False) -> None:
        """Answer one request (epoll reports the connection again if more wait), or all."""
        while True:
            fds: list[int] = []
            try:
                msg, fds, truncated = recv(c.sock)
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

    # -- the loop -----------------------------------------------------------

    def run(self) -> None:
        listeners = {s.fileno(): s for s in self.listeners}
        next_sweep = time.monotonic() + SWEEP
        next_full = time.monotonic() + FULL_SWEEP
        busy = time.monotonic()
        while self.table.pins or self.conns or time.monotonic() - busy < GRACE:
            if self.table.pins or self.conns:
                busy = time.monotonic()
            if (self.mirror.sock is None and self.table.pins
                    and time.monotonic() >= self.mirror.retry):
                try:
                    self.start_standby()  # the child comes back here as the primary
                except OSError:  # no process to be had (RLIMIT_NPROC): try again later
                    self.mirror.retry = time.monotonic() + SWEEP
            timeout = max(0.0, next_sweep - time.monotonic())
            try:
                events = self.ep.poll(timeout)
            except InterruptedError:
                continue
            for fd, _ in events:
                self.dispatch(fd, listeners)
            now = time.monotonic()
            if now >= next_full:
                self.sweep()
                next_full = now + FULL_SWEEP
            if now >= next_sweep:
                self.table.check_unwatched()
                self.idle()
                next_sweep = now + SWEEP
        if self.mirror.sock is not None:
            self.mirror.send(b"q", (0, 0))  # nothing left to hold: the standby goes too

    def dispatch(self, fd: int, listeners: dict[int, socket.socket]) -> None:
        try:
            if self.mirror.sock is not None and fd == self.mirror.sock.fileno():
                self.mirror.lose()  # it died (its end of the pair): a new one
            elif fd in listeners:
                self.accept(listeners[fd])
            elif fd == self.table.ino:
                if not self.table.read_events():
                    self.sweep()  # events were lost: look at every pin
            elif fd in self.conns:
                self.serve(self.conns[fd])
        except Exception:  # a bug must not take every pin with it: drop the client
            if fd in self.conns:
                with contextlib.suppress(Exception):
                    self.close(self.conns[fd])
