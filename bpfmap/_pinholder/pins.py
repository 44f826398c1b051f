"""The pins one holder keeps, and how it learns that a pin file lost its last link.

Per pin: the map's memfd and a descriptor of the pin file, keyed by the file's
inode. A pin whose file has no link left is dropped: at once when inotify reports
the link count change (one instance for all pins), else at the sweep of
unwatched pins every SWEEP seconds, and of all every FULL_SWEEP seconds (the
holder's loop runs them).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import time
from typing import Callable, Optional

from .wire import Key

SWEEP = 1.0  # seconds between checks of the pins inotify does not watch
FULL_SWEEP = 30.0  # seconds between checks of every pin (a network filesystem's removals)
IN_ATTRIB = 0x4  # a link count changed (also chmod, touch: then the check finds links)
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000
EVENT = struct.Struct("iIII")  # struct inotify_event without its name
# Told of every pin added (b"a", with its descriptors), committed (b"c") or dropped (b"d").
Tell = Callable[[bytes, Key, Optional[list[int]]], None]


class Pin:
    __slots__ = ("map_fd", "file_fd", "wd", "pending", "orphan")

    def __init__(self, map_fd: int, file_fd: int, pending: object) -> None:
        self.map_fd = map_fd
        self.file_fd = file_fd
        self.wd = -1
        self.pending = pending  # the connection that is linking the file, until "done"
        # In a standby: pending in the primary. After a takeover its client may still
        # link the file (its "done" can reach the dying primary): judged a bit later.
        self.orphan = False


class PinTable:
    """The pins, keyed by their file's (st_dev, st_ino), and their inotify watches."""

    def __init__(self, tell: Tell) -> None:
        self.pins: dict[Key, Pin] = {}
        self.by_wd: dict[int, Key] = {}
        self.tell = tell  # the standby, while one runs
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.ino = -1  # the inotify descriptor, or -1: the sweeps alone notice
        self.orphans_until = 0.0  # after a takeover: when pins pending then are judged

    def __len__(self) -> int:
        return len(self.pins)

    def __contains__(self, key: Key) -> bool:
        return key in self.pins

    def __getitem__(self, key: Key) -> Pin:
        return self.pins[key]

    def add(self, key: Key, map_fd: int, file_fd: int, pending: object) -> Pin:
        """Keep duplicates of the two descriptors (the caller closes its own)."""
        mine = os.dup(map_fd)
        try:
            p = Pin(mine, os.dup(file_fd), pending)
        except OSError:
            os.close(mine)
            raise
        self.pins[key] = p
        self.tell(b"a", key, [p.map_fd, p.file_fd])
        self.watch(key)
        return p

    def adopt(self, key: Key, map_fd: int, file_fd: int) -> None:
        """In a standby: a pin the primary added (its descriptors are ours now), and
        is still making: judged once this process takes over."""
        p = Pin(map_fd, file_fd, None)
        p.orphan = True
        self.pins[key] = p

    def orphan_pending(self) -> None:
        """In a new standby: the pins the primary is making are its clients' to finish."""
        for p in self.pins.values():
            p.orphan, p.pending = p.orphan or p.pending is not None, None

    def drop(self, key: Key) -> None:
        p = self.pins.pop(key)
        self.tell(b"d", key, None)
        if p.wd >= 0:
            self.by_wd.pop(p.wd, None)
            self.libc.inotify_rm_watch(self.ino, p.wd)
        os.close(p.file_fd)
        os.close(p.map_fd)  # the map lives on in its other handles and mappings, if any

    def check(self, key: Key) -> bool:
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

    def commit(self, key: Key) -> None:
        """The client is done linking the file: held from now on, if it has a link."""
        self.pins[key].pending = None
        if self.check(key):  # removed already? dropped now
            self.tell(b"c", key, None)

    def check_all(self) -> None:
        for key in list(self.pins):
            self.check(key)

    def check_unwatched(self) -> None:
        for key in [k for k, p in self.pins.items() if p.wd < 0 or p.orphan]:
            self.check(key)

    # -- inotify ------------------------------------------------------------

    def start_watching(self, ep: select.epoll) -> None:
        """Watch every pin file through one new inotify instance, polled by ``ep``."""
        self.ino = int(self.libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK))
        if self.ino >= 0:
            ep.register(self.ino, select.EPOLLIN)
        for key in self.pins:
            self.watch(key)

    def stop_watching(self) -> None:
        if self.ino >= 0:
            os.close(self.ino)
        self.ino = -1
        self.by_wd.clear()
        for p in self.pins.values():
            p.wd = -1

    def watch(self, key: Key) -> None:
        p = self.pins[key]
        if self.ino < 0:
            return  # no inotify: the sweep alone notices
        wd = int(self.libc.inotify_add_watch(self.ino, f"/proc/self/fd/{p.file_fd}".encode(),
                                             IN_ATTRIB))
        if wd >= 0:  # else (ENOSPC: the user's watches are used up) the sweep notices
            p.wd = wd
            self.by_wd[wd] = key

    def read_events(self) -> bool:
        """Check the pins inotify reports on; False if events were lost (check them all)."""
        try:
            data = os.read(self.ino, 65536)
        except BlockingIOError:
            return True
        complete = True
        at = 0
        while at + EVENT.size <= len(data):
            wd, mask, _, length = EVENT.unpack_from(data, at)
            at += EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                complete = False
                continue
            key = self.by_wd.get(wd)
            if key is None:
                continue
            if mask & IN_IGNORED:  # the watch is gone (filesystem unmounted): sweep only
                del self.by_wd[wd]
                self.pins[key].wd = -1
            if key in self.pins:
                self.check(key)
        return complete
