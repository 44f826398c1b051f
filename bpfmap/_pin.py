"""Pinning: bpffs for kernel maps; for emulated maps, a pin file and the user's pin holder.

An emulated pin is a regular file, mode 0600, that names the holder process
keeping its map (``_pinholder/``: one per user, not one per pin). The holder
knows the pin by the file's inode, so the pin lives exactly as long as a link to
that file exists, whatever it is renamed to, as a bpffs pin does. Opening the pin
sends the holder the file opened with the access asked for (so the file's
permissions decide, as BPF_OBJ_GET checks the pin's), and the holder answers
with the map's descriptor (SCM_RIGHTS).

Pinning is whole or nothing: the file is made unnamed (O_TMPFILE), registered
with the holder, then linked at the path (linkat(), which gives the kernel's
own EEXIST, ENOENT, ENOTDIR... for the path); if the pinning process dies on
the way, the holder keeps the pin if and only if the link was made.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path

from ._bindings import error, kernel_unavailable_reason, lib
from ._constants import BPF_F_RDONLY
from ._pinholder import LAUNCH, MARK

HOLDER_DIR = str(Path(__file__).with_name("_pinholder"))  # what the holder runs
PYTHON = sys.executable  # runs the holder: any Python 3.9+ (it needs the stdlib only)
MAGIC = b"bpfmap emulated pin\n"
PATH_MAX = 4096
TIMEOUT = 10.0  # seconds a request may wait for the holder (it never blocks: only a stopped one)
SLOTS = 16  # holders per user at most (one more starts when one is full of descriptors)
_CRED = struct.Struct("3i")
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
_O_TMPFILE = getattr(os, "O_TMPFILE", 0o20200000)


def _error(code: int | None, what: str, detail: str | None = None) -> OSError:
    """OSError(code, "what: detail"); detail defaults to the errno's text."""
    code = code or errno.EIO
    return OSError(code, f"{what}: {detail or os.strerror(code)}")


def bpffs_rc(path: str) -> int:
    """The one rule of where a pin lives: 1 for a path on bpffs (a kernel map's pin), 0
    anywhere else (an emulated map's), -errno if neither ``path`` nor its folder can be seen."""
    return int(lib.bpfmap_on_bpffs(os.fsencode(path)))


def on_bpffs(path: str) -> bool:
    """:func:`bpffs_rc` as a bool; an ``OSError`` where it cannot tell."""
    rc = bpffs_rc(path)
    if rc < 0:
        raise error(rc, f"pin {path}")
    return bool(rc)


def pin_kernel(fd: int, path: str) -> None:
    rc = lib.bpfmap_obj_pin(fd, os.fsencode(path))
    if rc == -errno.EPERM and bpffs_rc(path) == 0 and kernel_unavailable_reason() is None:
        # bpf_obj_do_pin()'s EPERM for a folder that is not bpffs' (bpf() itself works
        # here: its own EPERM, unprivileged_bpf_disabled, is not the reason)
        raise _error(errno.EPERM, f"pin {path}", f"{os.strerror(errno.EPERM)} (a kernel map "
                     "is pinned on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf); "
                     f"{path} is not on one)")
    if rc:
        raise error(rc, f"pin {path}")


def get_kernel(path: str, readonly: bool) -> int:
    fd = lib.bpfmap_obj_get(os.fsencode(path), BPF_F_RDONLY if readonly else 0)
    if fd < 0:
        raise error(fd, f"open pinned {path}")
    return int(fd)


# ------------------------------------------------------------ connections
#
# One connection per holder, kept for the process's next requests (a request is
# then one message each way: tens of microseconds). A forked child starts
# without them: two processes must never share one.

_lock = threading.Lock()
_pin_lock = threading.Lock()  # one pin at a time per process: the holder's "done" is per connection
_conns: dict[str, socket.socket] = {}


def _forget_connections() -> None:
    global _lock, _pin_lock
    _lock = threading.Lock()
    _pin_lock = threading.Lock()
    for sock in _conns.values():
        sock.close()
    _conns.clear()


os.register_at_fork(after_in_child=_forget_connections)


def _connect(name: str) -> tuple[socket.socket, int, int]:
    """A connection to the holder bound at ``name``, and the holder's (pid, uid)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect("\0" + name)
        pid, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                   _CRED.size))
    except BaseException:
        sock.close()
        raise
    return sock, pid, uid


def _recv(sock: socket.socket, what: str) -> tuple[bytes, int | None]:
    """An answer, with the descriptor it carries (close-on-exec), if any."""
    size = struct.calcsize("i")
    msg, anc, flags, _ = sock.recvmsg(256, socket.CMSG_SPACE(size), socket.MSG_CMSG_CLOEXEC)
    fds = [struct.unpack_from("i", data, i)[0]
           for level, kind, data in anc
           if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
           for i in range(0, len(data) - size + 1, size)]
    if flags & socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        # The kernel drops descriptors it cannot install: no free slot here.
        raise _error(errno.EMFILE, what)
    if len(fds) > 1:
        for fd in fds:
            os.close(fd)
        raise _error(errno.EPROTO, what, "the pin holder sent more than one descriptor")
    return msg, fds[0] if fds else None


class _Squatted(PermissionError):
    """Another user's socket has the name: it never gets our pins nor gives us a map."""


def _request(name: str, msg: bytes, fds: list[int], what: str,
             uid: int) -> tuple[bytes, int | None]:
    """Send one request to the holder at ``name`` run by ``uid``; its answer.

    A connection kept from earlier and closed by the holder since (idle) is
    replaced once. ConnectionRefusedError: no holder has that name.
    """
    with _lock:
        for attempt in (0, 1):
            sock = _conns.pop(name, None)
            fresh = sock is None
            if sock is None:
                if msg.startswith(b"done"):
                    # "done" belongs to the connection that registered the pin: a new
                    # one would reach another holder, if any; this one is gone.
                    raise _error(errno.ENOENT, what, "its pin holder is gone")
                sock, _, peer = _connect(name)
                if peer != uid:
                    sock.close()
                    raise _Squatted(errno.EACCES, f"{what}: the pin holder's name is taken "
                                    f"by uid {peer}, not the pin's owner {uid}")
            try:
                if fds:
                    socket.send_fds(sock, [msg], fds)
                else:
                    sock.send(msg)
                if msg.startswith(b"done"):
                    _conns[name] = sock
                    return b"", None
                answer = _recv(sock, what)
            except (BrokenPipeError, ConnectionResetError):
                sock.close()
                if fresh or attempt or msg.startswith(b"done"):
                    raise _error(errno.ENOENT, what, "its pin holder is gone") from None
                continue
            except socket.timeout:
                sock.close()
                raise _error(errno.ETIMEDOUT, what, "the pin holder does not answer") from None
            except BaseException:
                sock.close()
                raise
            if answer[0] == b"" and answer[1] is None:  # EOF: the holder exited (idle)
                sock.close()
                if fresh or attempt:
                    raise _error(errno.ENOENT, what, "its pin holder is gone")
                continue
            _conns[name] = sock
            return answer
    raise AssertionError("unreachable")


def _answer_errno(answer: bytes, what: str) -> OSError:
    words = answer.split()
    if len(words) == 2 and words[0] == b"err" and words[1].isdigit():
        return _error(int(words[1]), what)
    return _error(errno.EPROTO, what, f"unexpected answer from the pin holder: {answer[:40]!r}")


# ------------------------------------------------------------ the holder


def _base_name() -> str:
    """Where this user's holders are found; BPFMAP_PIN_HOLDER picks a holder of one's own."""
    tag = os.environ.get("BPFMAP_PIN_HOLDER", "default")
    if not tag or not set(os.fsencode(tag)) <= _NAME_CHARS - {ord("/")}:
        raise ValueError(f"BPFMAP_PIN_HOLDER must be letters, digits, '_', '.' or '-': {tag!r}")
    return f"bpfmap-pins/{os.getuid()}/{tag}"


def _start_holder(name: str, what: str) -> None:
    """Start a holder bound at ``name``; returns once it listens (or another one does)."""
    proc = subprocess.Popen(
        [PYTHON, "-I", "-B", "-c", LAUNCH, HOLDER_DIR, name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode(errors="replace").split()
    proc.stdout.close()
    proc.wait()
    if line[:1] == ["ok"] or line == ["err", str(errno.EEXIST)]:
        return  # ours, or a holder that another process started at the same time
    code = int(line[1]) if len(line) == 2 and line[1].isdigit() else errno.EIO
    raise _error(code, what, f"cannot start the pin holder: {os.strerror(code)}")


def _register(fds: list[int], what: str) -> tuple[str, bytes, bytes]:
    """Register a pin with this user's holder (started if need be): name, instance, pid."""
    base, me = _base_name(), os.getuid()
    for slot in range(SLOTS):
        name = f"{base}/{slot}"
        for attempt in (0, 1, 2):
            try:
                answer, _ = _request(name, b"pin", fds, what, me)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                pass  # no holder yet
            except _Squatted:
                answer = b"full"  # another user took this slot's name: the next slot
                break
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                # ENOENT: it exited (idle) as we came, before it took the pin
            if attempt == 2:
                raise _error(errno.EIO, what, "the pin holder exits as soon as it starts")
            _start_holder(name, what)
        words = answer.split()
        if (len(words) == 3 and words[0] == b"ok" and set(words[1]) <= _NAME_CHARS
                and words[2].isdigit()):
            return name, words[1], words[2]
        if answer != b"full":
            raise _answer_errno(answer, what)
    raise _error(errno.EMFILE, what, f"{SLOTS} pin holders are full")


# ------------------------------------------------------------ pin and open


def _check_path(path: str, what: str) -> None:
    raw = os.fsencode(path)
    if not raw:
        raise _error(errno.ENOENT, what)  # getname() of "": as BPF_OBJ_PIN and BPF_OBJ_GET
    if len(raw) >= PATH_MAX:
        raise _error(errno.ENAMETOOLONG, what)


def pin_emulated(fd: int, path: str) -> None:
    """Pin the emulated map ``fd`` at ``path``; returns once the pin exists."""
    path = os.fsdecode(path)
    what = f"pin {path}"
    _check_path(path, what)
    # The kernel's order (filename_create()): the folders, then EEXIST for any
    # existing name (a dangling symlink too), then ENOENT for a trailing slash.
    last = path.rstrip("/") or "/"
    try:
        os.lstat(last)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _error(exc.errno, what) from None
    else:
        raise _error(errno.EEXIST, what)
    if on_bpffs(path):
        # What BPF_OBJ_PIN answers for a descriptor that is not a BPF object.
        raise _error(errno.EINVAL, what, "an emulated map cannot live on bpffs")
    folder = os.path.dirname(last) or "."
    try:
        tmp = os.open(folder, _O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        named = None
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise _error(exc.errno, what) from None
        tmp, named = _named_tmpfile(folder, what)  # a filesystem without O_TMPFILE
    try:
        os.fchmod(tmp, 0o600)  # whatever the umask, as a bpffs pin
        with _pin_lock:
            _pin_registered(fd, tmp, path, named, what)
    finally:
        os.close(tmp)
        if named is not None and os.path.lexists(named):
            os.unlink(named)


def _pin_registered(fd: int, tmp: int, path: str, named: str | None, what: str) -> None:
    """Register the unnamed pin file ``tmp`` for map ``fd``, then link it at ``path``."""
    holder, instance, pid = _register([fd, tmp], what)
    try:
        # The text names the holder's instance: opening the pin goes there, and
        # finds a pin of a holder that died stale, never another holder's map.
        os.pwrite(tmp, MAGIC + b"holder " + instance + b"\npid " + pid + b"\n", 0)
        _link(tmp, path)
    except OSError as exc:
        _request(holder, b"done %d" % (exc.errno or errno.EIO), [], what, os.getuid())
        raise _error(exc.errno, what) from None
    if named is not None:
        os.unlink(named)
    try:
        _request(holder, b"done 0", [], what, os.getuid())
    except OSError:
        # The holder died under us: the file would be a stale pin. Ours, unless
        # something replaced it already.
        with contextlib.suppress(OSError):
            st, mine = os.lstat(path), os.fstat(tmp)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                os.unlink(path)
        raise


def _link(fd: int, path: str) -> None:
    """linkat(/proc/self/fd/FD, path, AT_SYMLINK_FOLLOW): names an O_TMPFILE file.

    os.link() calls link() unless a directory descriptor is given, and link()
    would link the /proc symlink itself (EXDEV).
    """
    proc = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _named_tmpfile(folder: str, what: str) -> tuple[int, str]:
    for _ in range(100):
        name = os.path.join(folder, f".bpfmap-pin-{os.urandom(6).hex()}")
        try:
            return os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600), name
        except FileExistsError:
            continue
        except OSError as exc:
            raise _error(exc.errno, what) from None
    raise _error(errno.EEXIST, what)


def _open_pin_file(path: str, readonly: bool, what: str) -> tuple[int, os.stat_result]:
    """The pin file opened r or rw (following symlinks, as the kernel does), and its stat."""
    _check_path(path, what)
    try:
        opath = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            try:
                os.stat(path)  # the kernel looks the path up before it takes a descriptor
            except OSError as first:
                raise _error(first.errno, what) from None
        raise _error(exc.errno, what) from None
    try:
        st = os.fstat(opath)
        if not stat.S_ISREG(st.st_mode):
            # BPF_OBJ_GET on an inode that is not a BPF object.
            raise _error(errno.EACCES, what, "not a pinned map")
        flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC | os.O_NOCTTY
        try:
            fd = os.open(f"/proc/self/fd/{opath}", flags)
        except OSError as exc:
            raise _error(exc.errno, what) from None
    finally:
        os.close(opath)
    return fd, st


def _read_pin_file(fd: int, what: str) -> str:
    """The holder name a pin file gives; EACCES for any other file."""
    try:
        text = os.pread(fd, 512, 0)
    except OSError as exc:
        raise _error(exc.errno, what) from None
    lines = text.split(b"\n")
    if (text[: len(MAGIC)] != MAGIC or len(lines) < 3 or not lines[1].startswith(b"holder ")
            or not set(lines[1][7:]) <= _NAME_CHARS or not lines[1][7:]):
        raise _error(errno.EACCES, what, "not a pinned map")
    return os.fsdecode(lines[1][7:])


def get_emulated(path: str, readonly: bool) -> int:
    """A descriptor of the emulated map pinned at ``path``."""
    path = os.fsdecode(path)
    what = f"open pinned {path}"
    fd, st = _open_pin_file(path, readonly, what)
    try:
        holder = _read_pin_file(fd, what)
        me = os.getuid()
        if me not in (0, st.st_uid):
            raise _error(errno.EACCES, what, f"pinned by uid {st.st_uid}, served to it only")
        try:
            answer, mfd = _request(holder, b"get r" if readonly else b"get rw", [fd], what,
                                   st.st_uid)
        except (ConnectionRefusedError, FileNotFoundError):
            raise _error(errno.ENOENT, what, _why_unreachable(fd)) from None
    finally:
        os.close(fd)
    if answer == b"ok" and mfd is not None:
        return mfd
    if mfd is not None:
        os.close(mfd)
    if answer == b"err %d" % errno.EACCES:
        raise _error(errno.EACCES, what, "not a pinned map: its holder knows no pin by this "
                     "file (a copy of one?)")
    raise _answer_errno(answer, what)


def _why_unreachable(fd: int) -> str:
    """Why no holder answers at the name a pin file gives (it is gone, mostly)."""
    lines = os.pread(fd, 512, 0).split(b"\n")
    pid = lines[2][4:] if len(lines) > 2 and lines[2].startswith(b"pid ") else b""
    if pid.isdigit():
        try:
            theirs = os.readlink(f"/proc/{int(pid)}/ns/net")
            with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
                holder = MARK in f.read()
            if holder and theirs != os.readlink("/proc/self/ns/net"):
                return (f"its holder (pid {int(pid)}) runs in another network namespace, "
                        "whose sockets cannot be reached from this one")
        except OSError:
            pass
    return ("stale pin: the holder that kept its map is gone (killed?), and the map "
            "with it; remove the file")


def _holder_of(path: str) -> tuple[str, int]:
    what = f"open pinned {path}"
    fd, st = _open_pin_file(path, True, what)
    try:
        name = _read_pin_file(fd, what)
    finally:
        os.close(fd)
    return name, st.st_uid


def holder_pid(path: str) -> int:
    """The pid of the process holding an emulated pin (for tests and tools)."""
    name, uid = _holder_of(path)
    answer, _ = _request(name, b"ping", [], f"open pinned {path}", uid)
    return int(answer.split()[1])


def holder_pid_of(name: str) -> int:
    """The pid of the holder bound at ``name`` (for tests and tools)."""
    answer, _ = _request(name, b"ping", [], f"ping {name}", os.getuid())
    return int(answer.split()[1])


def holder_name(path: str) -> str:
    """The socket name of the holder of an emulated pin (for tests and tools)."""
    return _holder_of(path)[0]


def sweep(name: str) -> int:
    """Make the holder at ``name`` drop its unlinked pins now; how many it still holds."""
    answer, _ = _request(name, b"sweep", [], f"sweep {name}", os.getuid())
    words = answer.split()
    if len(words) != 2 or words[0] != b"ok":
        raise _answer_errno(answer, f"sweep {name}")
    return int(words[1])
