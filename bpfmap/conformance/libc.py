"""The libc calls the region steps make that Python's mmap does not offer."""

from __future__ import annotations

import ctypes
import mmap as _mmap

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long,
]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
MAP_FAILED = 2**64 - 1 if ctypes.sizeof(ctypes.c_void_p) == 8 else 2**32 - 1
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_PRIVATE = _mmap.MAP_PRIVATE
MAP_SHARED = _mmap.MAP_SHARED


def plug(addr: int, length: int) -> None:
    """Keep an unmapped hole reserved (PROT_NONE, anonymous, never a writer of any map),
    so no later mapping lands inside a region that its close() will munmap."""
    libc.mmap(addr, length, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
