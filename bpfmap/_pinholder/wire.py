"""What goes over the holder's sockets: requests, replies, and frames to the standby."""

from __future__ import annotations

import socket
import struct
from typing import Union

CRED = struct.Struct("3i")  # struct ucred
INT = struct.Struct("i")
# To the standby: b"a" added (+ memfd, pin file; pending), b"c" committed, b"d" dropped, b"q" quit.
MIRROR = struct.Struct("=c7xQQ")
# An answer, or an answer with a descriptor to pass (and whether it is ours to close after).
Reply = Union[bytes, tuple[bytes, int, bool]]
Key = tuple[int, int]  # a pin file's (st_dev, st_ino)


def recv(sock: socket.socket, size: int = 64) -> tuple[bytes, list[int], bool]:
    """One request and the descriptors that came with it (close-on-exec); truncated?"""
    msg, anc, flags, _ = sock.recvmsg(size, socket.CMSG_SPACE(4 * INT.size),
                                      socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % INT.size
            fds.extend(x[0] for x in INT.iter_unpack(data[:usable]))
    return msg, fds, bool(flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC))


def peer_uid(sock: socket.socket) -> int:
    """The user of the process at the other end (SO_PEERCRED, checked by the kernel)."""
    _, uid, _ = CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, CRED.size))
    return int(uid)
