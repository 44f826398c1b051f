"""Pinning: bpffs for kernel maps, a holder process at the path for emulated maps."""

from __future__ import annotations

import array
import errno
import os
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

from ._bindings import error, lib
from ._constants import BPF_F_RDONLY

HOLDER = str(Path(__file__).with_name("_pinholder.py"))


def on_bpffs(path: str) -> bool:
    rc = lib.bpfmap_on_bpffs(os.fsencode(path))
    if rc < 0:
        raise error(rc, f"pin {path}")
    return bool(rc)


def pin_kernel(fd: int, path: str) -> None:
    rc = lib.bpfmap_obj_pin(fd, os.fsencode(path))
    if rc:
        raise error(rc, f"pin {path}")


def get_kernel(path: str, readonly: bool) -> int:
    fd = lib.bpfmap_obj_get(os.fsencode(path), BPF_F_RDONLY if readonly else 0)
    if fd < 0:
        raise error(fd, f"open pinned {path}")
    return int(fd)


def pin_emulated(fd: int, path: str) -> None:
    """Start a holder for ``fd`` at ``path``; returns once the pin exists."""
    if os.path.lexists(path):
        raise OSError(errno.EEXIST, f"pin {path}: {os.strerror(errno.EEXIST)}")
    if on_bpffs(path):
        # What BPF_OBJ_PIN answers for a descriptor that is not a BPF object.
        raise OSError(errno.EINVAL, f"pin {path}: an emulated map cannot live on bpffs")
    holder = subprocess.Popen(
        [sys.executable, "-I", HOLDER, os.path.abspath(path), str(fd)],
        pass_fds=(fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline().decode().strip()
    holder.stdout.close()
    holder.wait()
    if line == "ok":
        return
    code = int(line.split()[1]) if line.startswith("err ") else errno.EIO
    raise OSError(code, f"pin {path}: {os.strerror(code)}")


def _connect(path: str) -> socket.socket:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise OSError(exc.errno, f"open pinned {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        # BPF_OBJ_GET on an inode that is not a BPF object.
        raise OSError(errno.EACCES, f"open pinned {path}: {os.strerror(errno.EACCES)}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except ConnectionRefusedError:
        sock.close()
        raise OSError(
            errno.ENOENT, f"open pinned {path}: stale pin, its holder is gone"
        ) from None
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"open pinned {path}: {exc.strerror}") from None
    # Only a holder run by this user (or root) serves our pins: in a shared
    # directory another user could bind a socket of its own at the path and
    # hand out its own map. Root may open any user's pin, as on bpffs.
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    _, uid, _ = struct.unpack("3i", creds)
    me = os.getuid()
    if me != 0 and uid not in (me, 0):
        sock.close()
        raise OSError(errno.EACCES, f"open pinned {path}: served by uid {uid}, not by its owner")
    return sock


def _recv_fds_cloexec(sock: socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """socket.recv_fds() with MSG_CMSG_CLOEXEC (3.11's recv_fds() drops its flags)."""
    size = array.array("i").itemsize
    msg, ancdata, _, _ = sock.recvmsg(
        bufsize, socket.CMSG_SPACE(maxfds * size), socket.MSG_CMSG_CLOEXEC
    )
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % size])
    return msg, list(fds)


def get_emulated(path: str, readonly: bool) -> int:
    with _connect(path) as sock:
        sock.send(b"r" if readonly else b"rw")
        msg, fds = _recv_fds_cloexec(sock, 16, 1)
    if msg != b"ok" or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise OSError(errno.EACCES, f"open pinned {path}: {os.strerror(errno.EACCES)}")
    return fds[0]


def holder_pid(path: str) -> int:
    """The pid of the process holding an emulated pin (for tests and tools)."""
    with _connect(path) as sock:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        sock.send(b"ping")
    return int(struct.unpack("3i", creds)[0])
