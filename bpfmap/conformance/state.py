"""What a session holds (handles, regions, children, a pin folder), and finding it by name."""

from __future__ import annotations

import contextlib
import mmap as _mmap
import os
import tempfile
import weakref
from dataclasses import dataclass
from typing import Any

from .._map import PAGE_SIZE, ArrayMap
from .language import Outcome, ScenarioError

P = PAGE_SIZE
BACKENDS = ("emulated", "kernel")
PIN_ROOT = "/sys/fs/bpf"


@dataclass
class Region:
    """A mapping the scenario holds, with the protection of each page."""

    obj: _mmap.mmap
    addr: int
    pages: list[str | None]  # "r", "rw", "none", ... or None: unmapped (a reserved hole)
    dontfork: list[bool]

    @property
    def span(self) -> int:
        return len(self.pages) * P


@dataclass
class Child:
    pid: int
    to_child: int
    from_child: int


class SessionState:
    """One backend's side of a scenario: the names its steps refer to."""

    _serial = 0

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.maps: dict[str, ArrayMap] = {}
        self.regions: dict[str, Region] = {}
        self.children: dict[str, Child] = {}
        self._pin_dir: str | None = None
        self.is_child = False
        SESSIONS.add(self)

    def run(self, step: dict[str, Any]) -> Outcome:
        raise NotImplementedError

    # -- pins ----------------------------------------------------------------

    def pin_path(self, name: str) -> str:
        if not name or "/" in name or name in (".", ".."):
            raise ScenarioError(f"bad pin name {name!r}")
        return f"{self._ensure_pin_dir()}/{name}"

    def _ensure_pin_dir(self) -> str:
        """The directory of this scenario's pins (children share their parent's)."""
        if self._pin_dir is None:
            SessionState._serial += 1
            if self.backend == "kernel":
                d = f"{PIN_ROOT}/bpfmap-conformance-{os.getpid()}-{SessionState._serial}"
                os.mkdir(d, 0o700)
            else:
                d = tempfile.mkdtemp(prefix="bpfmap-conformance-")
            self._pin_dir = d
        return self._pin_dir

    def _unpin(self, path: str) -> None:
        """Remove a pin: an emulated map's holder sees the path go and exits by itself."""
        os.unlink(path)

    # -- lookups of names --------------------------------------------------------

    def _map(self, step: dict[str, Any]) -> ArrayMap:
        name = step.get("map", "m")
        if name not in self.maps:
            raise LookupError(f"no map {name!r}")
        return self.maps[name]

    def _region(self, step: dict[str, Any]) -> Region:
        name = step["region"]
        if name not in self.regions:
            raise LookupError(f"no region {name!r}")
        return self.regions[name]

    # -- in a forked child --------------------------------------------------------

    def _close_handles(self) -> None:
        """Close every region and map handle this session holds (not its pins)."""
        for reg in self.regions.values():
            with contextlib.suppress(Exception):
                reg.obj.close()
        self.regions.clear()
        for m in self.maps.values():
            m.close()
        self.maps.clear()

    def _abandon(self) -> None:
        """In a forked child: drop what this (other) session holds, touching nothing shared."""
        self.is_child = True
        self._close_handles()
        self.children.clear()


SESSIONS: weakref.WeakSet[SessionState] = weakref.WeakSet()
