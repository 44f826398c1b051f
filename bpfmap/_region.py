"""MapRegion: a mapping of a map's values, an :class:`mmap.mmap`."""

from __future__ import annotations

import ctypes
import mmap as _mmap
from typing import Any, TypeVar

from ._args import check_uint

_CT = TypeVar("_CT", bound="ctypes._CData")


def holds_pointers(ctype: Any) -> bool:
    """Whether a ctypes type has pointer fields (c_void_p is a plain integer: it has not)."""
    func_ptr = ctypes.CFUNCTYPE(None).__mro__[1]  # ctypes._CFuncPtr, not in ctypes' stubs
    if issubclass(ctype, (ctypes._Pointer, func_ptr, ctypes.c_char_p, ctypes.c_wchar_p,
                          ctypes.py_object)):
        return True
    if issubclass(ctype, ctypes.Array):
        return holds_pointers(ctype._type_)
    if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
        return any(holds_pointers(field[1]) for field in getattr(ctype, "_fields_", ()))
    return False


class MapRegion(_mmap.mmap):
    """A mapping of a map's values: a :class:`mmap.mmap` whose offset 0 is value 0.

    Buffer protocol, slicing, ``len()``, ``close()``, ``closed`` and ``with``
    behave as for :class:`mmap.mmap`; closing while buffers are exported raises
    :class:`BufferError`. The mapping keeps the map alive after the map's own
    handle is closed, as a kernel mapping keeps its map.
    """

    map_offset: int
    writable: bool
    value_size: int
    elem_size: int
    max_entries: int

    def resize(self, newsize: int) -> None:
        raise OSError(22, "mremap of a map region: Invalid argument")

    def struct(self, ctype: type[_CT], key: int = 0) -> _CT:
        """A ctypes structure over value ``key`` (the map's index), live in the mapping.

        Only for writable regions: ctypes has no read-only objects, and a store
        into a read-only mapping would kill the process. Read a read-only
        region with :meth:`ndarray` and a structured dtype instead. While the
        structure lives, :meth:`close` raises BufferError, as for any export.
        """
        if not self.writable:
            raise TypeError(
                "ctypes structures need a writable region; "
                "use region.ndarray(dtype) for a read-only view"
            )
        size = ctypes.sizeof(ctype)
        if holds_pointers(ctype):
            # Any process sharing the map can write any bytes there: a pointer read
            # from it (char *, py_object, POINTER(...)) crashes the reader.
            raise TypeError(f"{ctype.__name__} holds pointers: shared memory cannot hold them")
        if size > self.value_size:
            raise ValueError(f"{ctype.__name__} is {size} bytes, the value is {self.value_size}")
        key = check_uint(key, 32, "key")
        start = key * self.elem_size - self.map_offset
        if key >= self.max_entries or start < 0 or start + size > len(self):
            raise ValueError(f"value {key} is not inside this region")
        return ctype.from_buffer(self, start)  # type: ignore[attr-defined,no-any-return]

    def ndarray(self, dtype: Any = None) -> Any:
        """A NumPy array with one item per value of the map in the region.

        The stride is the map's element stride ``round_up(value_size, 8)``; the
        dtype (default: ``value_size`` raw bytes) may be at most ``value_size``
        bytes. The page padding past ``max_entries`` is not part of it. While the
        array (or any view of it) lives, :meth:`close` raises BufferError.
        """
        np = _numpy()

        dt = np.dtype(dtype if dtype is not None else f"V{self.value_size}")
        if dt.hasobject:  # object items are PyObject pointers, read from shared memory
            raise TypeError(f"dtype {dt} holds Python objects: shared memory cannot hold them")
        if dt.itemsize > self.value_size:
            raise ValueError(
                f"dtype of {dt.itemsize} bytes does not fit a {self.value_size}-byte value"
            )
        # The first whole value in the region (offsets are page aligned).
        skip = (-self.map_offset) % self.elem_size
        usable = len(self) - skip
        count = 0 if usable < dt.itemsize else (usable - dt.itemsize) // self.elem_size + 1
        count = max(0, min(count, self.max_entries - (self.map_offset + skip) // self.elem_size))
        # np.frombuffer() holds a buffer export of the mapping (np.ndarray(buffer=self)
        # does not), and the strided array below keeps it as its base: close()
        # raises BufferError while any of them lives, instead of unmapping under it.
        flat = np.frombuffer(self, dtype=np.uint8)
        return np.ndarray(
            shape=(count,), dtype=dt, buffer=flat, offset=skip, strides=(self.elem_size,)
        )


def _numpy() -> Any:
    """NumPy, or an ImportError that says how to get it."""
    try:
        import numpy
    except ImportError as exc:
        raise ImportError(
            "NumPy views need NumPy, a dependency of bpfmap missing here: pip install numpy",
            name="numpy",
        ) from exc
    return numpy
