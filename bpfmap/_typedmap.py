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

from ._typed import numpy

if TYPE_CHECKING:
    from ._map import ArrayMap


_CDATA: Any = ctypes.c_int.__mro__[-2]  # ctypes._CData: every ctypes type, pointers too
_FUNC_PTR = ctypes.CFUNCTYPE(None).__mro__[1]  # ctypes._CFuncPtr, not in ctypes' stubs
_POINTERS = (ctypes._Pointer, _FUNC_PTR, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_wchar_p,
             ctypes.py_object)
_NO_POINTERS = ("a pointer means nothing in memory another process (or a BPF program) "
                "shares: a value type holds plain data (integers, floats, arrays, structs)")


def _pointer_in(ctype: Any, where: str) -> str | None:
    """Where ``ctype`` holds a pointer (``where`` names ``ctype``), or None."""
    if issubclass(ctype, _POINTERS):
        named = where == ctype.__name__
        return f"{where} is a pointer type" if named else f"{where} is a pointer ({ctype.__name__})"
    if issubclass(ctype, ctypes.Array):
        return _pointer_in(ctype._type_, f"{where}[]")
    if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
        for klass in ctype.__mro__:  # a subclass's _fields_ add to its bases' fields
            for field in vars(klass).get("_fields_", ()):
                found = _pointer_in(field[1], f"{where}.{field[0]}")
                if found:
                    return found
    return None


class TypedArray:
    """An :class:`ArrayMap` read and written as values of one ctypes type or NumPy dtype."""

    def __init__(self, amap: ArrayMap, vtype: Any) -> None:
        self.map = amap
        self._ctype: Any = None
        self._dtype: Any = None
        np = numpy()
        if isinstance(vtype, type) and issubclass(vtype, _CDATA):
            found = _pointer_in(vtype, vtype.__name__)
            if found:
                raise TypeError(f"{found}, refused: {_NO_POINTERS}")
            try:
                np.dtype(vtype)  # values() is one NumPy array of them
            except Exception as exc:  # NumPy raises TypeError or NotImplementedError
                raise TypeError(f"{vtype.__name__} has no NumPy dtype ({exc}): a value type "
                                "is a ctypes type NumPy can hold, or a NumPy dtype") from None
            self._ctype = vtype
            size = ctypes.sizeof(vtype)
            name = vtype.__name__
        else:
            try:
                self._dtype = np.dtype(vtype)
            except Exception:  # TypeError, ValueError, NotImplementedError... from NumPy
                raise TypeError(
                    f"a value type is a ctypes type or a NumPy dtype, not {vtype!r}"
                ) from None
            if self._dtype.hasobject:
                raise TypeError(f"dtype {self._dtype} holds Python objects, refused: an object "
                                "reference means nothing in memory another process (or a BPF "
                                "program) shares: a value type holds plain data")
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
