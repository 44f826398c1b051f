"""Elements: lookup, update, delete, get_next_key, keys, values and typed values.

Every entry point that takes a key, a value or flags refuses Python misuse with a
``TypeError``/``ValueError`` naming the argument (NumPy integers are keys, bools are
not), passes what is in range to the map so the kernel's errno decides, and maps
errno to the ``OSError`` subclasses. Also the container protocol (``m[k]``,
``len``, ``in``, ``items``) and typed values (ctypes structures and NumPy dtypes
over the same bytes).
"""

from __future__ import annotations

import array
import ctypes
import errno
import mmap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import both

import bpfmap
from bpfmap import BPF_F_MMAPABLE, ArrayMap, TypedArray
from bpfmap import _constants as C

MM = BPF_F_MMAPABLE


#: every API entry point that takes a key, as ``call(map, key)``
KEY_TAKERS: dict[str, Callable[[ArrayMap, Any], Any]] = {
    "lookup": lambda m, k: m.lookup(k),
    "lookup_into": lambda m, k: m.lookup_into(k, bytearray(4)),
    "update": lambda m, k: m.update(k, b"abcd"),
    "update-bytearray": lambda m, k: m.update(k, bytearray(b"abcd")),
    "delete": lambda m, k: m.delete(k),
    "lookup_and_delete": lambda m, k: m.lookup_and_delete(k),
    "get_next_key": lambda m, k: m.get_next_key(k),
    "lookup_batch-in_batch": lambda m, k: m.lookup_batch(1, in_batch=k),
    "update_batch": lambda m, k: m.update_batch([k], [b"abcd"]),
    "delete_batch": lambda m, k: m.delete_batch([k]),
    "getitem": lambda m, k: m[k],
    "setitem": lambda m, k: m.__setitem__(k, b"abcd"),
    "delitem": lambda m, k: m.__delitem__(k),
}


_KEY_NAME = {"lookup_batch-in_batch": "in_batch"}


@pytest.mark.parametrize("call", KEY_TAKERS)
@pytest.mark.parametrize("bad", ["1", 1.0, b"\x01", [1], object()], ids=lambda b: type(b).__name__)
def test_key_not_int(m: ArrayMap, call: str, bad: Any) -> None:
    with pytest.raises(TypeError, match=rf"{_KEY_NAME.get(call, 'key')} must be an int, not"):
        KEY_TAKERS[call](m, bad)


@pytest.mark.parametrize(
    "call", [c for c in KEY_TAKERS if c != "get_next_key" and "in_batch" not in c]
)
def test_key_none(m: ArrayMap, call: str) -> None:
    with pytest.raises(TypeError, match=r"key must be an int, not NoneType"):
        KEY_TAKERS[call](m, None)


def test_none_key_means_start(m: ArrayMap) -> None:
    assert m.get_next_key(None) == 0
    assert m.get_next_key() == 0
    assert list(m.lookup_batch(2, in_batch=None).keys) == [0, 1]


@pytest.mark.parametrize("call", KEY_TAKERS)
@pytest.mark.parametrize("bad", [-1, -(2**40), 2**32, 2**64, 2**100])
def test_key_out_of_u32(m: ArrayMap, call: str, bad: int) -> None:
    name = _KEY_NAME.get(call, "key")
    with pytest.raises(ValueError, match=rf"{name} must be in 0\.\.4294967295, got {bad}"):
        KEY_TAKERS[call](m, bad)


@pytest.mark.parametrize("call", KEY_TAKERS)
def test_key_u32_max_reaches_the_map(m: ArrayMap, call: str) -> None:
    """2**32 - 1 is a valid key: the map's errno decides, no Python error."""
    try:
        KEY_TAKERS[call](m, 2**32 - 1)
    except OSError as exc:
        assert exc.errno in (errno.ENOENT, errno.E2BIG, errno.EINVAL, C.ENOTSUPP)


# bool is an int subclass, and cffi would take True as key 1: every call refuses it.
@pytest.mark.parametrize("call", KEY_TAKERS)
def test_key_bool_refused(m: ArrayMap, call: str) -> None:
    with pytest.raises(TypeError, match=rf"{_KEY_NAME.get(call, 'key')} must be an int, not bool"):
        KEY_TAKERS[call](m, True)


FLAG_TAKERS: dict[str, tuple[str, Callable[[ArrayMap, Any], Any]]] = {
    "lookup": ("flags", lambda m, f: m.lookup(0, f)),
    "lookup_into": ("flags", lambda m, f: m.lookup_into(0, bytearray(4), f)),
    "update": ("flags", lambda m, f: m.update(0, b"abcd", f)),
    "lookup_and_delete": ("flags", lambda m, f: m.lookup_and_delete(0, f)),
    "lookup_batch-elem_flags": ("elem_flags", lambda m, f: m.lookup_batch(1, elem_flags=f)),
    "lookup_batch-flags": ("flags", lambda m, f: m.lookup_batch(1, flags=f)),
    "update_batch-elem_flags": (
        "elem_flags",
        lambda m, f: m.update_batch([0], [b"abcd"], elem_flags=f),
    ),
    "update_batch-flags": ("flags", lambda m, f: m.update_batch([0], [b"abcd"], flags=f)),
    "delete_batch-elem_flags": ("elem_flags", lambda m, f: m.delete_batch([0], elem_flags=f)),
}


@pytest.mark.parametrize("call", FLAG_TAKERS)
def test_flags_type_and_range(m: ArrayMap, call: str) -> None:
    name, fn = FLAG_TAKERS[call]
    with pytest.raises(TypeError, match=rf"{name} must be an int, not str"):
        fn(m, "0")
    with pytest.raises(TypeError, match=rf"{name} must be an int, not NoneType"):
        fn(m, None)
    with pytest.raises(ValueError, match=rf"{name} must be in 0\.\.{2**64 - 1}, got -1"):
        fn(m, -1)
    with pytest.raises(ValueError, match=rf"{name} must be in 0\.\.{2**64 - 1}, got {2**64}"):
        fn(m, 2**64)
    try:
        fn(m, 2**64 - 1)  # in range: the map's errno decides
    except OSError as exc:
        assert exc.errno in (errno.EINVAL, C.ENOTSUPP)


@pytest.mark.parametrize(
    "bad,exc,msg",
    [
        ("abcd", TypeError, r"value must be a bytes-like object, not str"),
        ([1, 2, 3, 4], TypeError, r"value must be a bytes-like object, not list"),
        (1234, TypeError, r"value must be a bytes-like object, not int"),
        (None, TypeError, r"value must be a bytes-like object, not NoneType"),
        (b"abc", ValueError, r"value must be 4 bytes, got 3"),
        (b"abcde", ValueError, r"value must be 4 bytes, got 5"),
        (b"", ValueError, r"value must be 4 bytes, got 0"),
        (bytearray(5), ValueError, r"value must be 4 bytes, got 5"),
        (memoryview(b"abcdabcd")[::2], ValueError, r"value must be a contiguous buffer"),
        (array.array("I", [1, 2]), ValueError, r"value must be 4 bytes, got 8"),
    ],
    ids=lambda x: x if isinstance(x, str) and len(x) < 12 else None,
)
def test_update_value_misuse(m: ArrayMap, bad: Any, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=msg):
        m.update(0, bad)
    with pytest.raises(exc, match=msg):
        m[1] = bad
    assert m.lookup(0) == m.lookup(1) == bytes(4)  # nothing was written


@pytest.mark.parametrize(
    "good",
    [
        b"wxyz",
        bytearray(b"wxyz"),
        memoryview(b"..wxyz")[2:],
        array.array("B", b"wxyz"),
        array.array("I", [int.from_bytes(b"wxyz", "little")]),
    ],
    ids=["bytes", "bytearray", "memoryview-slice", "array-B", "array-I"],
)
def test_update_value_buffers(m: ArrayMap, good: Any) -> None:
    m.update(2, good)
    assert m.lookup(2) == (
        b"wxyz" if not isinstance(good, array.array) or good.typecode == "B" else good.tobytes()
    )


@pytest.mark.parametrize(
    "buf,exc,msg",
    [
        (bytearray(3), ValueError, r"buffer must hold at least 4 bytes, got 3"),
        (bytearray(0), ValueError, r"buffer must hold at least 4 bytes, got 0"),
        (b"abcd", TypeError, r"buffer must be writable"),
        (memoryview(bytearray(4)).toreadonly(), TypeError, r"buffer must be writable"),
        (memoryview(bytearray(8))[::2], ValueError, r"buffer must be a contiguous buffer"),
        ("abcd", TypeError, r"buffer must be a writable bytes-like object, not str"),
        (None, TypeError, r"buffer must be a writable bytes-like object, not NoneType"),
        # NumPy refuses these exports with its own ValueError: the message is still ours
        (np.frombuffer(bytes(4), np.uint8), TypeError, r"buffer must be writable"),
        (np.zeros(8, np.uint8)[::2], ValueError, r"buffer must be a contiguous buffer"),
        (np.zeros((2, 2), np.uint8, order="F"), ValueError, r"must be a contiguous buffer"),
    ],
    ids=["too-small", "empty", "bytes", "readonly-view", "strided", "str", "None",
         "numpy-readonly", "numpy-strided", "numpy-fortran"],
)
def test_lookup_into_misuse(m: ArrayMap, buf: Any, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=msg):
        m.lookup_into(0, buf)


def test_lookup_into_buffers(m: ArrayMap) -> None:
    m.update(1, b"wxyz")
    big = bytearray(b"\xee" * 9)
    m.lookup_into(1, big)
    assert big == b"wxyz" + b"\xee" * 5  # bytes past value_size untouched (L01b)
    view = memoryview(bytearray(6))[1:5]
    m.lookup_into(1, view)
    assert view.tobytes() == b"wxyz"
    arr = array.array("B", bytes(4))
    m.lookup_into(1, arr)
    assert arr.tobytes() == b"wxyz"
    words = np.zeros(1, np.uint32)  # any writable contiguous buffer, whatever its format
    m.lookup_into(1, words)
    assert words.tobytes() == b"wxyz"


def test_container_protocol(backend: str) -> None:
    with ArrayMap(3, 5, backend=backend) as m:
        assert len(m) == 5
        assert list(m) == [0, 1, 2, 3, 4]
        assert 4 in m and 5 not in m
        m[2] = b"abc"
        assert m[2] == b"abc" and m[1] == bytes(3)
        assert dict(m.items()) == {0: bytes(3), 1: bytes(3), 2: b"abc", 3: bytes(3), 4: bytes(3)}
        with pytest.raises(FileNotFoundError):  # ENOENT, as the kernel says
            m[5]
        with pytest.raises(OSError) as info:
            m[5] = b"abc"
        assert info.value.errno == errno.E2BIG
        with pytest.raises(OSError) as info:
            del m[0]
        assert info.value.errno == errno.EINVAL
        assert m[0] == bytes(3)


def test_errno_exception_classes(backend: str) -> None:
    ro_flag = bpfmap.BPF_F_RDONLY
    with ArrayMap(4, 2, flags=ro_flag, backend=backend) as ro, pytest.raises(PermissionError):
        ro.update(0, b"abcd")
    with ArrayMap(4, 2, backend=backend) as m:
        with pytest.raises(FileExistsError):
            m.update(0, b"abcd", bpfmap.BPF_NOEXIST)
        with pytest.raises(OSError, match=r"ENOTSUPP") as info:
            m.lookup_and_delete(0)
        assert info.value.errno == bpfmap.ENOTSUPP == 524
        with pytest.raises(OSError) as info:
            m.update_batch([0, 7], [b"abcd", b"efgh"])
        assert info.value.errno == errno.E2BIG and info.value.count == 1
        assert isinstance(info.value, bpfmap.BatchError)  # a subclass, no attribute patched in


PAGE = mmap.PAGESIZE


def new_map(backend: str, value_size: int = 8, max_entries: int = 8) -> ArrayMap:
    return ArrayMap(value_size, max_entries, flags=BPF_F_MMAPABLE, backend=backend)


@pytest.mark.parametrize("kind", [np.uint32, np.int64, np.uint8, np.intp])
def test_numpy_integer_keys(backend: str, kind: type) -> None:
    m = new_map(backend, 8, 8)
    key = kind(3)
    m[key] = b"numpykey"
    assert m[key] == m[3] == b"numpykey"
    m.update(key, b"again...", np.uint64(0))
    buf = bytearray(8)
    m.lookup_into(key, buf)
    assert buf == b"again..."
    assert m.get_next_key(key) == 4
    assert m.update_batch([kind(1), kind(2)], b"x" * 16) == 2
    assert m.lookup_batch(np.uint32(2), in_batch=kind(0)).keys.tolist() == [1, 2]
    region = m.mmap(offset=np.int64(0), length=np.int64(PAGE))
    region.struct(ctypes.c_uint64, key=kind(5)).value = 1
    assert m[5] == (1).to_bytes(8, "little")
    with pytest.raises(OSError) as info:  # the kernel's E2BIG past max_entries
        m[kind(8)] = bytes(8)
    assert info.value.errno == errno.E2BIG


@pytest.mark.parametrize("bad", [True, np.bool_(True), 3.0, np.float64(3), "3", None])
def test_non_integer_keys_are_refused(backend: str, bad: object) -> None:
    m = new_map(backend)
    with pytest.raises(TypeError):
        m[bad]  # type: ignore[index]
    with pytest.raises(TypeError):
        m[bad] = bytes(8)  # type: ignore[index]
    if bad is not None:  # get_next_key(None) is the first key
        with pytest.raises(TypeError):
            m.get_next_key(bad)  # type: ignore[arg-type]


def test_numpy_integer_out_of_range_is_a_value_error(backend: str) -> None:
    m = new_map(backend)
    with pytest.raises(ValueError):
        m[np.int64(-1)]
    with pytest.raises(ValueError):
        m[np.uint64(2**32)]


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
        with pytest.raises(TypeError, match=r"LP_c_int_Array_2\[\] is a pointer"):
            m.typed(ctypes.POINTER(ctypes.c_int) * 2)
        with pytest.raises(TypeError, match="Python objects"):
            m.typed(np.dtype([("a", object), ("b", object)]))
        with pytest.raises(TypeError, match="a ctypes type or a NumPy dtype, not 'not a"):
            m.typed("not a type at all")
        t = m.typed(Point)
        with pytest.raises(ValueError, match="16 bytes"):
            t[0] = b"short"
        with pytest.raises(TypeError):
            t[0] = 5


class _Base(ctypes.Structure):
    _fields_ = [("where", ctypes.c_void_p)]


class _Derived(_Base):  # its own _fields_ add to _Base's: the pointer is still there
    _fields_ = [("n", ctypes.c_uint64)]


class _Inner(ctypes.Structure):
    _fields_ = [("n", ctypes.c_uint32), ("callback", ctypes.CFUNCTYPE(None))]


class _Outer(ctypes.Structure):
    _fields_ = [("inner", _Inner * 1)]


class _Either(ctypes.Union):
    _fields_ = [("n", ctypes.c_uint64), ("text", ctypes.c_char_p)]


@pytest.mark.parametrize(("vtype", "where"), [
    (ctypes.c_void_p, "c_void_p is a pointer type"),
    (ctypes.POINTER(ctypes.c_int), "LP_c_int is a pointer type"),
    (ctypes.CFUNCTYPE(None), "CFunctionType is a pointer type"),
    (ctypes.c_char_p, "c_char_p is a pointer type"),
    (ctypes.py_object, "py_object is a pointer type"),
    (ctypes.c_void_p * 2, r"c_void_p_Array_2\[\] is a pointer \(c_void_p\)"),
    (_Derived, r"_Derived.where is a pointer \(c_void_p\)"),
    (_Outer, r"_Outer.inner\[\].callback is a pointer \(CFunctionType\)"),
    (_Either, r"_Either.text is a pointer \(c_char_p\)"),
])
def test_types_holding_pointers_are_refused(vtype: object, where: str) -> None:
    """Every ctypes type is taken as one (never "not a ctypes type"), and every pointer in
    it, however deep, is refused before its size is even looked at."""
    with ArrayMap(16, 2) as m, pytest.raises(TypeError, match=where + ", refused: a pointer"):
        m.typed(vtype)


@pytest.mark.parametrize("dtype", [object, np.dtype([("n", "<u8"), ("o", "O")]),
                                   np.dtype([("n", "<u8"), ("o", "O", (1,))])])
def test_dtypes_holding_objects_are_refused(dtype: object) -> None:
    with ArrayMap(16, 2) as m, pytest.raises(TypeError, match="holds Python objects, refused"):
        m.typed(dtype)


def test_types_numpy_cannot_hold_are_a_type_error() -> None:
    with ArrayMap(8, 2) as m:
        with pytest.raises(TypeError, match="c_wchar_Array_2 has no NumPy dtype"):
            m.typed(ctypes.c_wchar * 2)
        with pytest.raises(TypeError, match="a ctypes type or a NumPy dtype, not 'x8'"):
            m.typed("x8")
        assert m.typed(ctypes.c_uint64 * 1).values().shape == (2, 1)  # the plain ones are taken


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
