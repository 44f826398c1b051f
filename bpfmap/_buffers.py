"""The caller's buffers as C arrays for the C core, without copies.

Every cdata made here holds an export of the caller's object: the caller
``ffi.release()``s it before returning or raising (see :func:`buffer_view`).
"""

from __future__ import annotations

import array
import sys
from typing import Any, Union

from ._args import check_uint
from ._bindings import ffi

#: What the API takes as a buffer: anything with the buffer protocol.
Buffer = Union[bytes, bytearray, memoryview, Any]

# ffi.from_buffer() with a ctype object and positional flags: half the cost of a type string.
U32_ARRAY = ffi.typeof("uint32_t[]")
CHAR_ARRAY = ffi.typeof("char[]")


def buffer_view(value: Any, what: str, writable: bool) -> tuple[int, bool]:
    """(nbytes, readonly) of a contiguous buffer; the view is released at once.

    The C core gets ``ffi.from_buffer(value)`` of the object itself, never of a
    memoryview: a cdata holding a memoryview's export can meet that memoryview
    in a reference cycle, and clearing the cycle would crash the interpreter.
    The caller's own object may be a memoryview, so every such cdata is also
    ``ffi.release()``d before the call returns or raises: a traceback would keep
    it alive, and ``except OSError as e: err = e`` makes that a cycle.
    """
    kind = "a writable bytes-like object" if writable else "a bytes-like object"
    try:
        view = memoryview(value)
    except TypeError:
        raise TypeError(f"{what} must be {kind}, not {type(value).__name__}") from None
    with view:
        if not view.c_contiguous:
            raise ValueError(f"{what} must be a contiguous buffer")
        if writable and view.readonly:
            raise TypeError(f"{what} must be writable")
        return view.nbytes, view.readonly


def readable_buffer(value: Any, size: int, what: str) -> Any:
    # bytes and bytearray are contiguous: their length is their size (no view needed).
    t = type(value)
    nbytes = len(value) if t is bytes or t is bytearray else buffer_view(value, what, False)[0]
    if nbytes != size:
        raise ValueError(f"{what} must be {size} bytes, got {nbytes}")
    return ffi.from_buffer(value)


def writable_buffer(value: Any, size: int, what: str) -> Any:
    nbytes = len(value) if type(value) is bytearray else buffer_view(value, what, True)[0]
    if nbytes < size:
        raise ValueError(f"{what} must hold at least {size} bytes, got {nbytes}")
    return ffi.from_buffer(CHAR_ARRAY, value, True)


def u32_buffer(keys: Any, writable: bool = False) -> tuple[Any, int]:
    """Keys as a C uint32_t array: native uint32 buffers are used in place.

    ``writable``: the C core fills them, so they must be a writable buffer.
    """
    if type(keys) is array.array and keys.typecode == "I" and keys.itemsize == 4:
        # The common case, without a memoryview: always contiguous and writable.
        return ffi.from_buffer(U32_ARRAY, keys, writable), len(keys)
    try:
        view = memoryview(keys)
    except TypeError:
        if writable:
            raise TypeError(
                f"keys must be a writable uint32 buffer (array('I'), numpy uint32), "
                f"not {type(keys).__name__}"
            ) from None
        items = [check_uint(k, 32, "key") for k in keys]
        arr = array.array("I", items)
        return ffi.from_buffer(U32_ARRAY, arr), len(items)
    with view:
        native = ("I", "=I", "@I", "<I" if sys.byteorder == "little" else ">I")
        if view.format not in native or view.itemsize != 4:
            raise TypeError(f"a keys buffer must hold native uint32, not format {view.format!r}")
        if not view.c_contiguous:
            raise ValueError("a keys buffer must be contiguous")
        if writable and view.readonly:
            raise TypeError("a keys buffer must be writable")
        n = view.nbytes // 4
    return ffi.from_buffer(U32_ARRAY, keys, writable), n
