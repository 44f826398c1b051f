"""The caller's buffers as C arrays for the C core, without copies.

Every cdata made here holds an export of the caller's object: the caller
``ffi.release()``s it before returning or raising (see :func:`buffer_view`).
"""

from __future__ import annotations

import array
import sys
from collections.abc import Callable
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


# -- result buffers ------------------------------------------------------------------

#: Below this many bytes ``bytearray(n)`` (zero-filled) is cheaper than a ctypes call.
_UNINIT_MIN = 16 << 10
#: glibc serves every allocation of this size or more from its own fresh mmap() (its
#: dynamic mmap threshold never rises above it), so the pages are new on every call and
#: each 4 KiB page costs a fault on first touch; below it, freed memory is reused.
_HUGE_MIN = 32 << 20
_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14


def _ctypes_routes() -> tuple[Callable[..., Any] | None, Callable[..., Any] | None]:
    """CPython's PyByteArray_FromStringAndSize and libc's madvise, or None where absent."""
    try:
        import ctypes

        new = ctypes.pythonapi.PyByteArray_FromStringAndSize
        new.restype = ctypes.py_object
        new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    except (ImportError, AttributeError, OSError):
        return None, None  # no ctypes, or not CPython
    try:
        madvise = ctypes.CDLL(None).madvise
        madvise.restype = ctypes.c_int
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    except (AttributeError, OSError):
        return new, None
    return new, madvise


_new_bytearray, _madvise = _ctypes_routes()


def address_of(buf: Any) -> int:
    """The address of a buffer's bytes (the export is released at once: the caller keeps
    ``buf`` alive, and unresized, for as long as it uses the address)."""
    c = ffi.from_buffer(buf)
    try:
        return int(ffi.cast("uintptr_t", c))
    finally:
        ffi.release(c)


def _advise_huge(addr: int, nbytes: int) -> None:
    """MADV_HUGEPAGE on the 2 MiB pages wholly inside [addr, addr + nbytes), from 32 MiB."""
    if _madvise is None or nbytes < _HUGE_MIN:
        return
    start = (addr + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
    end = (addr + nbytes) & ~(_HUGE_PAGE - 1)
    if end > start:
        _madvise(start, end - start, _MADV_HUGEPAGE)  # a hint: its result changes nothing


def fresh_bytearray(nbytes: int) -> bytearray:
    """A new ``bytearray`` of ``nbytes`` whose contents are NOT initialized.

    For result buffers that the C core (or the kernel) overwrites before anyone sees
    them: the caller must write every byte it keeps and cut the rest off (``del
    b[n:]``) before returning, and drop the buffer on any error. Why: ``bytearray(n)``
    writes n zeros first, and for a large result that first pass is where the page
    faults happen; the copy into the buffer then touches every byte again.

    From 32 MiB on, the buffer is glibc's own new mapping (see ``_HUGE_MIN``): it is
    advised ``MADV_HUGEPAGE`` before its first touch, so that the kernel backs it with
    2 MiB pages (one fault and one clear per 2 MiB instead of 512 faults), as NumPy
    does for its own large arrays. The hint changes no byte and fails harmlessly. It
    is made 4 MiB larger, then cut at both ends, so that its bytes start and end on
    2 MiB boundaries: a partial 2 MiB page at either end would be faulted 4 KiB at a
    time (the first one is touched by glibc's chunk header before any advice). A cut
    at the front only moves ``bytearray``'s logical start, and one of less than half
    at the end keeps its allocation: neither moves a byte.
    """
    if _new_bytearray is None or nbytes < _UNINIT_MIN:
        return bytearray(nbytes)
    if nbytes < _HUGE_MIN or _madvise is None:
        buf: bytearray = _new_bytearray(None, nbytes)
        return buf
    buf = _new_bytearray(None, nbytes + 2 * _HUGE_PAGE)
    addr = address_of(buf)
    _advise_huge(addr, nbytes + 2 * _HUGE_PAGE)
    del buf[: -addr % _HUGE_PAGE]  # to the first 2 MiB boundary
    del buf[nbytes:]
    return buf
