"""Typed values for any ArrayMap: a ctypes type or a NumPy dtype instead of bytes.

``m.typed(Point)`` is the map seen through a value type, as bcc's ``table.Array`` users
expect: ``t[i]`` is a ``Point`` (a copy, read with one ``lookup``), ``t[i] = Point(...)`` an
``update``, ``t.values()`` every value as one NumPy array (one ``lookup_batch``). The map
itself keeps its bytes API; nothing here bypasses its checks or errno.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._region import holds_pointers
from ._typed import numpy

if TYPE_CHECKING:
    from ._map import ArrayMap


_CTYPES = (ctypes._SimpleCData, ctypes.Array, ctypes.Structure, ctypes.Union)


class TypedArray:
    """An :class:`ArrayMap` read and written as values of one ctypes type or NumPy dtype."""

    def __init__(self, amap: ArrayMap, vtype: Any) -> None:
        self.map = amap
        self._ctype: Any = None
        self._dtype: Any = None
        if isinstance(vtype, type) and issubclass(vtype, _CTYPES):
            if holds_pointers(vtype):
                raise TypeError(f"{vtype.__name__} holds pointers: shared memory cannot hold them")
            self._ctype = vtype
            size = ctypes.sizeof(vtype)
            name = vtype.__name__
        else:
            np = numpy()
            try:
                self._dtype = np.dtype(vtype)
            except TypeError:
                raise TypeError(
                    f"a value type is a ctypes type or a NumPy dtype, not {vtype!r}"
                ) from None
            if self._dtype.hasobject:
                raise TypeError(f"dtype {self._dtype} holds Python objects: shared memory "
                                "cannot hold them")
            size = self._dtype.itemsize
            name = str(self._dtype)
        if size != amap.value_size:
            raise ValueError(f"{name} is {size} bytes; the map's values are {amap.value_size}")
        self.type = vtype

    def __repr__(self) -> str:
        return f"<TypedArray of {self.map!r} as {self.type!r}>"

    def __len__(self) -> int:
        return len(self.map)

    def __getitem__(self, key: int) -> Any:
        raw = self.map.lookup(key)
        if self._ctype is not None:
            value = self._ctype.from_buffer_copy(raw)
            return value.value if isinstance(value, ctypes._SimpleCData) else value
        return numpy().frombuffer(raw, dtype=self._dtype)[0]

    def __setitem__(self, key: int, value: Any) -> None:
        self.map.update(key, self._encode(value))

    def __iter__(self) -> Iterator[Any]:
        for key in self.map:
            yield self[key]

    def items(self) -> Iterator[tuple[int, Any]]:
        for key in self.map:
            yield key, self[key]

    def values(self) -> Any:
        """Every value, as one NumPy array (a copy, from one ``BPF_MAP_LOOKUP_BATCH``)."""
        np = numpy()
        batch = self.map.lookup_batch()
        dtype = self._dtype if self._dtype is not None else np.dtype(self._ctype)
        return np.frombuffer(batch.values, dtype=dtype)

    def _encode(self, value: Any) -> bytes:
        size = self.map.value_size
        if self._ctype is not None:
            if isinstance(value, self._ctype):
                return bytes(value)
            if issubclass(self._ctype, ctypes._SimpleCData) and not isinstance(value, bytes):
                return self._encode_scalar(value)
        elif not isinstance(value, (bytes, bytearray, memoryview)):
            np = numpy()
            arr = np.asarray(value)
            if arr.dtype != self._dtype:
                raise TypeError(f"the values are {self._dtype}, not {arr.dtype}")
            return bytes(arr.tobytes())
        try:
            data = bytes(memoryview(value))
        except TypeError:
            raise TypeError(f"a value is a {self.type.__name__ if self._ctype else self._dtype} "
                            f"or {size} bytes, not {type(value).__name__}") from None
        if len(data) != size:
            raise ValueError(f"a value is {size} bytes, got {len(data)}")
        return data

    def _encode_scalar(self, value: Any) -> bytes:
        ctype = self._ctype
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"a {ctype.__name__} value takes a number, not {type(value).__name__}")
        converted = ctype(value)
        if isinstance(value, int) and converted.value != value:
            raise ValueError(f"{value!r} does not fit a {ctype.__name__}")
        return bytes(converted)
