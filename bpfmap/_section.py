"""A data section of a BPF object (``.bss``, ``.data``, ``.rodata``, ``.data.*``, ...).

Its global variables are attributes: ``sec.NAME`` reads, ``sec.NAME = value`` writes. Before
load they are the section's initial value (bpfmap's own copy, handed to the map at load);
after load they are the live map: through a mapping of it where the map is mmapable (no
syscall), else through ``lookup``/``update``. A write the map refuses raises the backend's
own errno: the kernel's ``EPERM`` for a frozen ``.rodata``, for example.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import Any, NamedTuple, NoReturn

from ._btf import BtfError, BtfType, BtfVar
from ._map import ArrayMap, MapRegion
from ._typed import Codec


class Variable(NamedTuple):
    """A global variable: its name, offset in the section, size and type (``type.name`` is
    the C spelling, e.g. ``const volatile __u64`` or ``struct config``)."""

    name: str
    offset: int
    size: int
    type: BtfType


# Names that are the Section's own; a variable of the same name is reached as sec["name"].
_OWN = frozenset({"name", "size", "flags", "variables", "map", "access", "readonly",
                  "raw", "close"})


class Section:
    """One data section: variables by name, the initial value, the map once loaded."""

    def __init__(self, name: str, flags: int, initial: bytes, variables: list[BtfVar]) -> None:
        object.__setattr__(self, "_state", _Initial(bytearray(initial)))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "size", len(initial))
        for v in variables:
            # libbpf fixes offsets from the symbol table but does not check them against the
            # section: a corrupted object could place a variable outside it.
            if v.offset < 0 or v.type.size > v.size or v.offset + v.size > len(initial):
                raise BtfError(f"{name}: variable {v.name!r} ({v.size} bytes at offset "
                               f"{v.offset}) does not fit in the section ({len(initial)} bytes)")
        vs = {v.name: Variable(v.name, v.offset, v.size, v.type) for v in variables}
        object.__setattr__(self, "variables", vs)
        object.__setattr__(self, "_codecs", {n: Codec(v.type, n) for n, v in vs.items()})

    name: str
    flags: int
    size: int
    variables: dict[str, Variable]
    _state: _Initial | _Loaded | _Closed
    _codecs: dict[str, Codec]

    # -- state --------------------------------------------------------------

    @property
    def map(self) -> ArrayMap | None:
        """The section's map once loaded (None before)."""
        return self._state.map

    @property
    def access(self) -> str:
        """How variables are reached: ``"initial"`` before load, then ``"mmap"`` (through a
        mapping of the map) or ``"syscall"`` (``lookup``/``update``, where not mmapable)."""
        return self._state.access

    @property
    def readonly(self) -> bool:
        """Whether writes are refused now (after load, a frozen or read-only map)."""
        return self._state.readonly

    def raw(self) -> bytes:
        """The whole section's bytes as they are now."""
        return self._state.read_all()

    def _loaded(self, amap: ArrayMap) -> None:
        object.__setattr__(self, "_state", _Loaded(amap))

    def close(self) -> None:
        """With its object: the map and its mapping are released, and every later access is
        a ValueError. A view of the mapping the caller still holds (an array variable's NumPy
        view, a struct) keeps that memory mapped until it goes: it is never unmapped under
        it, but the section no longer reads or writes through it."""
        self._state.close()
        object.__setattr__(self, "_state", _Closed(self.name))

    # -- variables ----------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        codec = self._codec(name)
        buf, base, writable = self._state.buffer()
        return codec.read(buf, base + self.variables[name].offset, writable)

    def __setitem__(self, name: str, value: Any) -> None:
        data = self._codec(name).encode(value)
        if self.name == ".kconfig" and self.map is None:
            raise ValueError(f".kconfig.{name}: the kernel's config and version fill "
                             ".kconfig at load; it has no initial value to set")
        try:
            self._state.write(self.variables[name].offset, data)
        except OSError as exc:
            raise OSError(exc.errno, f"{self.name}.{name}: {exc.strerror}") from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name not in self.variables:
            raise AttributeError(f"section {self.name} has no variable {name!r}")
        return self[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            raise AttributeError(f"{name!r} is the section's own attribute; "
                                 f"write a variable of that name as sec[{name!r}]")
        if name not in self.variables:
            raise AttributeError(f"section {self.name} has no variable {name!r}")
        self[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.variables))

    def __repr__(self) -> str:
        state = "closed" if isinstance(self._state, _Closed) else self.access
        return (f"<Section {self.name} {self.size} bytes, {len(self.variables)} variables, "
                f"{state}>")

    def _codec(self, name: str) -> Codec:
        try:
            return self._codecs[name]
        except KeyError:
            raise KeyError(f"section {self.name} has no variable {name!r}") from None


class _Initial:
    """Before load: bpfmap's copy of the initial value, handed to the map at load."""

    map = None
    access = "initial"
    readonly = False

    def __init__(self, data: bytearray) -> None:
        self.data = data

    def buffer(self) -> tuple[Any, int, bool]:
        return self.data, 0, True

    def read_all(self) -> bytes:
        return bytes(self.data)

    def write(self, offset: int, data: bytes) -> None:
        self.data[offset : offset + len(data)] = data

    def close(self) -> None:
        pass


class _Loaded:
    """After load: the live map, through a mapping where it is mmapable."""

    def __init__(self, amap: ArrayMap) -> None:
        self.map: ArrayMap = amap
        self.region: MapRegion | None = None
        self.access = "syscall"
        if amap.flags & 0x400:  # BPF_F_MMAPABLE
            self.region = _map_region(amap)
            self.access = "mmap"

    @property
    def readonly(self) -> bool:
        return self.map.frozen or (self.region is not None and not self.region.writable)

    def buffer(self) -> tuple[Any, int, bool]:
        if self.region is not None:
            return self.region, 0, self.region.writable
        return bytearray(self.map.lookup(0)), 0, False

    def read_all(self) -> bytes:
        if self.region is not None:
            return bytes(self.region[: self.map.value_size])
        return self.map.lookup(0)

    def write(self, offset: int, data: bytes) -> None:
        region = self.region
        if region is not None and region.writable:
            region[offset : offset + len(data)] = data
            return
        # No writable mapping (frozen, read-only to programs, or not mmapable): the map's own
        # update decides, with its own errno (EPERM once frozen).
        value = bytearray(self.read_all())
        value[offset : offset + len(data)] = data
        self.map.update(0, value)

    def close(self) -> None:
        if self.region is not None:
            # Views of it still alive keep the mapping: it goes with the last of them.
            with contextlib.suppress(BufferError):
                self.region.close()
        self.map.close()


class _Closed:
    """After the object's close(): every access refused (the map is closed, the mapping
    released, or kept only by views the caller holds)."""

    def __init__(self, name: str) -> None:
        self.message = f"section {name}: operation on a closed BpfObject"

    def _refuse(self) -> NoReturn:
        raise ValueError(self.message)

    map = property(_refuse)
    access = property(_refuse)
    readonly = property(_refuse)

    def buffer(self) -> tuple[Any, int, bool]:
        self._refuse()

    def read_all(self) -> bytes:
        self._refuse()

    def write(self, offset: int, data: bytes) -> None:
        self._refuse()

    def close(self) -> None:
        pass


def _map_region(amap: ArrayMap) -> MapRegion:
    """A writable mapping where the map allows one, else a read-only one (frozen maps give
    EPERM and BPF_F_RDONLY_PROG maps EACCES for a writable mapping, in the kernel too)."""
    try:
        return amap.mmap(writable=True)
    except PermissionError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES):
            raise
    return amap.mmap(writable=False)
