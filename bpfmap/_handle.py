"""A map handle's life and attributes: the base of :class:`bpfmap.ArrayMap`."""

from __future__ import annotations

import os
from typing import Any, NamedTuple, TypeVar

from ._args import decode_name
from ._bindings import BACKEND_NAMES, error, ffi, lib
from ._fastpath import OFF, FastPath


class MapInfo(NamedTuple):
    """The fields of the kernel's ``struct bpf_map_info`` that bpfmap reports."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str


def closed_error() -> ValueError:
    return ValueError("I/O operation on closed map")


_H = TypeVar("_H", bound="MapHandle")

_ACCESS = {os.O_RDWR: "rw", os.O_RDONLY: "r", os.O_WRONLY: "w"}


class MapHandle:
    """One open handle on a map (``struct bpfmap``), as a file descriptor is.

    ``_h`` is the C core's handle (``None`` once closed), ``_fast`` the emulated
    fast path (:mod:`bpfmap._fastpath`), ``_value_size`` cached for the calls,
    ``_spare`` C buffers of ``value_size`` bytes that lookup reuses.
    """

    __slots__ = ("_h", "_value_size", "_fast", "_spare", "__weakref__")

    _h: Any
    _value_size: int
    _fast: FastPath
    _spare: list[Any]  # spares for the C core path of lookup: see ElementOps._new_spare

    def _adopt(self, raw: Any) -> None:
        # The handle is released (fd closed, view unmapped) when the last
        # reference goes: close() drops ours, a call in flight in another
        # thread keeps its own, so a racing close never unmaps under it.
        self._h = h = ffi.gc(raw, lib.bpfmap_release)
        self._value_size = int(raw.value_size)
        self._spare = []
        self._fast = FastPath.serve(h)

    def _handle(self) -> Any:
        h = self._h
        if h is None:
            raise closed_error()
        return h

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close this handle. Mappings made from it stay valid, as in the kernel."""
        # The fast path first: from here on every call goes through the C core
        # path, which raises.
        self._fast = OFF
        self._h = None

    @property
    def closed(self) -> bool:
        return self._h is None

    def __enter__(self: _H) -> _H:
        self._handle()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._h is None:
            return f"<{type(self).__name__} closed>"
        h = self._h
        return (
            f"<{type(self).__name__} {BACKEND_NAMES[h.backend]} id={h.id} name={self.name!r} "
            f"value_size={h.value_size} max_entries={h.max_entries} flags={h.map_flags:#x}>"
        )

    # -- attributes ---------------------------------------------------------

    @property
    def fd(self) -> int:
        return int(self._handle().fd)

    @property
    def backend(self) -> str:
        return BACKEND_NAMES[self._handle().backend]

    @property
    def key_size(self) -> int:
        return int(self._handle().key_size)

    @property
    def value_size(self) -> int:
        return int(self._handle().value_size)

    @property
    def max_entries(self) -> int:
        return int(self._handle().max_entries)

    @property
    def flags(self) -> int:
        """The map's flags as the kernel reports them (BPF_F_RDONLY/WRONLY belong to handles)."""
        return int(self._handle().map_flags)

    @property
    def name(self) -> str:
        return decode_name(ffi.string(self._handle().name, 16))

    @property
    def id(self) -> int:
        return int(self._handle().id)

    @property
    def access(self) -> str:
        """This handle's access mode: ``"rw"``, ``"r"`` (BPF_F_RDONLY) or ``"w"`` (BPF_F_WRONLY)."""
        return _ACCESS[self._handle().access]

    @property
    def frozen(self) -> bool:
        rc = lib.bpfmap_frozen(self._handle())
        if rc < 0:
            raise error(rc, "frozen")
        return bool(rc)

    def info(self) -> MapInfo:
        """``BPF_OBJ_GET_INFO_BY_FD``."""
        h = self._handle()
        info = ffi.new("struct bpfmap_info *")
        rc = lib.bpfmap_info(h, info)
        if rc:
            raise error(rc, "map info")
        return MapInfo(
            info.type,
            info.id,
            info.key_size,
            info.value_size,
            info.max_entries,
            info.map_flags,
            decode_name(ffi.string(info.name, 16)),
        )
