"""The standby: a forked copy of the holder, told of every pin added or dropped.

It shares the holder's listening sockets and takes over when the holder is
killed (its end of the link reads end of file); then it starts a standby of its
own. The frames (``wire.MIRROR``): b"a" a pin added (with its memfd and pin
file), b"c" committed (its client linked the file), b"d" dropped, b"q" quit.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket

from .pins import PinTable
from .wire import MIRROR, Key, recv


class Mirror:
    """The primary's end of the link to its standby (no standby while ``sock`` is None)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.pid = 0
        self.retry = 0.0  # when to try again to fork one (RLIMIT_NPROC)
        self.ep: select.epoll | None = None  # where the primary polls ``sock``

    def attach(self, sock: socket.socket, pid: int, ep: select.epoll) -> None:
        self.sock, self.pid = sock, pid  # lose() undoes both, whatever fails next
        sock.setblocking(False)
        ep.register(sock.fileno(), select.EPOLLIN)  # readable: the standby died
        self.ep = ep

    def forget(self) -> None:
        """In a new standby: no standby of its own yet (the primary's state, not ours)."""
        self.sock, self.pid, self.ep = None, 0, None

    def send(self, what: bytes, key: Key, fds: list[int] | None = None) -> None:
        if self.sock is None:
            return
        try:
            frame = MIRROR.pack(what, *key)
            sent = socket.send_fds(self.sock, [frame], fds) if fds else self.sock.send(frame)
            if sent != len(frame):
                raise BlockingIOError
        except OSError:  # stopped (its buffer is full) or gone: a fresh copy replaces it
            self.lose()

    def lose(self) -> None:
        if self.sock is not None:
            if self.ep is not None:
                with contextlib.suppress(OSError):
                    self.ep.unregister(self.sock.fileno())
            self.sock.close()
            self.sock, self.ep = None, None
        if self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(self.pid, 0)  # our child: reaped, never a zombie
            self.pid = 0


def follow(sock: socket.socket, table: PinTable) -> None:
    """In the standby: apply the primary's frames to ``table`` until the primary is gone.

    Returns when it is (end of file: take over); exits when the primary quits.
    """
    while True:
        fds: list[int] = []
        try:
            frame, fds, _ = recv(sock, MIRROR.size)
            while frame and len(frame) < MIRROR.size:
                more = sock.recv(MIRROR.size - len(frame))
                frame = frame + more if more else b""  # b"": it died in the middle of a frame
        except OSError:
            frame = b""
        if len(frame) < MIRROR.size:  # end of file, whole or in a frame: take over
            for fd in fds:
                os.close(fd)
            break
        what, dev, ino = MIRROR.unpack(frame)
        if what == b"a" and len(fds) == 2:
            table.adopt((dev, ino), fds[0], fds[1])
            continue
        for fd in fds:
            os.close(fd)
        if what == b"d" and (dev, ino) in table:
            table.drop((dev, ino))
        elif what == b"c" and (dev, ino) in table:
            table[(dev, ino)].orphan = False
        elif what == b"q":
            os._exit(0)
    sock.close()
