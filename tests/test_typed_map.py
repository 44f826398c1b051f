"""Typed values for plain ArrayMaps: ctypes types and NumPy dtypes over the same bytes."""

from __future__ import annotations

import ctypes
import errno

import numpy as np
import pytest
from conftest import both

from bpfmap import ArrayMap, TypedArray


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32), ("w", ctypes.c_uint64)]


POINT = np.dtype([("x", "<i4"), ("y", "<i4"), ("w", "<u8")])


def test_ctypes_structure_values(backend: str) -> None:
    with ArrayMap(16, 4, backend=backend) as m:
        t = m.typed(Point)
        t[1] = Point(3, -4, 2**64 - 1)
        p = t[1]
        assert (p.x, p.y, p.w) == (3, -4, 2**64 - 1)
        assert m[1] == bytes(Point(3, -4, 2**64 - 1))  # the bytes API sees the same value
        values = t.values()
        assert values.shape == (4,) and values["y"].tolist() == [0, -4, 0, 0]
        assert [v.x for v in t] == [0, 3, 0, 0] and dict(t.items())[1].w == 2**64 - 1


def test_numpy_dtype_and_scalar_values(backend: str) -> None:
    with ArrayMap(16, 3, backend=backend) as m:
        t = TypedArray(m, POINT)
        t[2] = np.array((7, 8, 9), dtype=POINT)
        assert t[2]["w"] == 9 and t.values()["x"].tolist() == [0, 0, 7]
    with ArrayMap(8, 2, backend=backend) as m:
        u = m.typed(ctypes.c_uint64)
        u[0] = 2**64 - 1
        assert u[0] == 2**64 - 1 and u.values().tolist() == [2**64 - 1, 0]
        with pytest.raises(ValueError):
            u[1] = -1
        with pytest.raises(TypeError):
            u[1] = "1"


def test_misuse() -> None:
    with ArrayMap(16, 2) as m:
        with pytest.raises(ValueError, match="8 bytes"):
            m.typed(ctypes.c_uint64)
        with pytest.raises(TypeError, match="pointers"):
            m.typed(ctypes.POINTER(ctypes.c_int) * 2)
        with pytest.raises(TypeError, match="Python objects"):
            m.typed(np.dtype([("a", object), ("b", object)]))
        with pytest.raises(TypeError):
            m.typed("not a type at all")
        t = m.typed(Point)
        with pytest.raises(ValueError, match="16 bytes"):
            t[0] = b"short"
        with pytest.raises(TypeError):
            t[0] = 5


def test_errno_is_the_maps_own() -> None:
    def op(m: ArrayMap) -> object:
        t = m.typed(Point)
        t[1] = Point(1, 2, 3)
        m.freeze()
        t[1] = Point(4, 5, 6)
        return None

    emu, ker = both(lambda be: ArrayMap(16, 2, backend=be), op)
    assert emu == ker == ("errno", errno.EPERM)
    out = both(lambda be: ArrayMap(16, 2, backend=be), lambda m: m.typed(Point)[2])
    assert out[0] == out[1] == ("errno", errno.ENOENT)
