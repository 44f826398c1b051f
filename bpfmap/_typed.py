"""Typed values over raw bytes: how a BTF type (or a ctypes type) is read and written.

Reads are live where the buffer is: integers and floats come back as Python numbers, arrays as
NumPy views of the buffer, structs and unions as ctypes objects over it. A read-only buffer
(a frozen map's mapping) gives a read-only NumPy view and a copy of a struct: ctypes has no
read-only objects, and a frozen map never changes again. Writes are encoded to the value's
exact bytes first, with TypeError/ValueError saying what was expected, so a refused write
never touches the buffer.
"""

from __future__ import annotations

import operator
import struct
import sys
from typing import Any

from ._btf import BtfType

_INT_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}
_FLOAT_FORMATS = {4: "f", 8: "d"}
_BYTEORDER = sys.byteorder  # objects are built for the host (clang -target bpf)


def numpy() -> Any:
    try:
        import numpy as np
    except ImportError:
        raise ImportError(
            "typed arrays are NumPy views, and NumPy (a dependency of bpfmap) is missing here: "
            "pip install numpy"
        ) from None
    return np


def _exact_int(value: object, what: str) -> int:
    if isinstance(value, (bool, float)):
        raise TypeError(f"{what} takes an int, not {type(value).__name__}")
    try:
        return operator.index(value)  # type: ignore[arg-type]  # int, NumPy integers, anything with __index__
    except TypeError:
        raise TypeError(f"{what} takes an int, not {type(value).__name__}") from None


class Codec:
    """Reads and writes one value of ``btype`` at an offset of a buffer."""

    def __init__(self, btype: BtfType, what: str) -> None:
        self.type = btype
        self.what = what  # names the value in error messages
        self.size = btype.size
        self._struct: struct.Struct | None = None
        if btype.kind in ("int", "enum", "pointer") and btype.size in _INT_FORMATS:
            fmt = _INT_FORMATS[btype.size]
            self._struct = struct.Struct("=" + (fmt if btype.signed else fmt.upper()))
        elif btype.kind == "float":
            self._struct = struct.Struct("=" + _FLOAT_FORMATS[btype.size])

    # -- reading ------------------------------------------------------------

    def read(self, buf: Any, offset: int, writable: bool) -> Any:
        if self._struct is not None:
            return self._struct.unpack_from(buf, offset)[0]
        t = self.type
        if t.scalar:  # a 16-byte integer
            raw = bytes(memoryview(buf)[offset : offset + t.size])
            return int.from_bytes(raw, _BYTEORDER, signed=t.signed)
        if t.kind == "array":
            np = numpy()
            assert t.element is not None
            dtype = np.dtype(t.element.ctype)
            count = t.size // dtype.itemsize
            # frombuffer holds the buffer's export (np.ndarray(buffer=...) does not): the
            # mapping cannot be closed under the view.
            flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
            return flat.reshape(t.shape)
        if writable:
            return t.ctype.from_buffer(buf, offset)
        return t.ctype.from_buffer_copy(buf, offset)

    # -- writing ------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        """The value's exact bytes; TypeError/ValueError when it does not fit the type."""
        t = self.type
        if t.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{self.what} is {t.name}: it takes a float, "
                                f"not {type(value).__name__}")
            assert self._struct is not None
            return self._struct.pack(value)
        if t.scalar:
            return self._encode_int(value)
        if isinstance(value, t.ctype):
            return bytes(memoryview(value).cast("B"))
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._exact_bytes(value)
        if t.kind == "array":
            return self._encode_array(value)
        raise TypeError(f"{self.what} is {t.name} ({t.size} bytes): it takes a "
                        f"{t.ctype.__name__} or {t.size} bytes, not {type(value).__name__}")

    def _encode_int(self, value: Any) -> bytes:
        t = self.type
        if t.kind == "enum" and isinstance(value, str):
            if value not in t.enumerators:
                names = ", ".join(t.enumerators)
                raise ValueError(f"{self.what} is {t.name}: {value!r} is not one of {names}")
            value = t.enumerators[value]
        number = _exact_int(value, f"{self.what} ({t.name})")
        bits = t.size * 8
        if t.signed:
            low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            low, high = 0, (1 << bits) - 1
        if not low <= number <= high:
            raise ValueError(f"{self.what} is {t.name}: it takes {low}..{high}, got {number}")
        return number.to_bytes(t.size, _BYTEORDER, signed=t.signed)

    def _exact_bytes(self, value: Any) -> bytes:
        data = bytes(value)
        if len(data) != self.size:
            raise ValueError(f"{self.what} is {self.type.name}: it takes {self.size} bytes, "
                             f"got {len(data)}")
        return data

    def _encode_array(self, value: Any) -> bytes:
        np = numpy()
        t = self.type
        assert t.element is not None
        dtype = np.dtype(t.element.ctype)
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{self.what} is {t.name}: {exc}") from None
        if arr.ndim == 0 or arr.dtype.kind in "OSUV":  # a scalar, str, or not numbers at all
            items = "integers" if dtype.kind in "iu" else f"{dtype} items"
            got = type(value).__name__
            if arr.ndim:
                got += " of " + {"U": "str", "S": "bytes"}.get(arr.dtype.kind, "objects")
            raise TypeError(f"{self.what} is {t.name}: it takes a sequence or array of "
                            f"{items} of shape {t.shape}, or {t.size} bytes, not {got}")
        if arr.shape != t.shape:
            raise ValueError(f"{self.what} is {t.name}: it takes shape {t.shape}, "
                             f"got {arr.shape}")
        if dtype.kind in "iu":
            if arr.dtype.kind not in "iu" and arr.size:
                raise TypeError(f"{self.what} is {t.name}: it takes integers, "
                                f"not {arr.dtype}")
            info = np.iinfo(dtype)
            if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
                raise ValueError(f"{self.what} is {t.name}: every item must be in "
                                 f"{info.min}..{info.max}")
        elif arr.dtype != dtype and dtype.kind not in "f":
            raise TypeError(f"{self.what} is {t.name}: it takes an array of {dtype}, "
                            f"not {arr.dtype}")
        return bytes(np.ascontiguousarray(arr, dtype=dtype).tobytes())



