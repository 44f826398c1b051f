"""The emulated backend's fast path: the common calls served without the C core.

For an emulated map, the C core reads a value from the handle's private
read-only view of the memfd (csrc/arraymap.c). When a read is the common case
(an exact int key in range, flags 0, a readable handle), Python can do the very
same: slice the view (lookup, lookup_into, items, get_next_key). Anything else
goes through the C core, which decides the errno. Writes always go through the
C core: its one ``pwrite()`` comes after the ``RLIMIT_FSIZE`` check that keeps a
value whole, and Python doing the same measured no faster.

:class:`FastPath` holds everything those calls use. An ``ArrayMap`` has one:
``FastPath.serve(handle)`` for an emulated handle, :data:`OFF` for a kernel map,
a closed map, or when the fast path is switched off (``BPFMAP_FAST_PATH=0`` in
the environment, read at import, or :func:`set_enabled`): then every call goes
through the C core, and the conformance corpus checks that both ways give the
same bytes and errno.

A FastPath keeps the handle alive (``handle``): a call that took it cannot have
the view unmapped or the descriptor closed (and its number reused) under it by
a racing ``close()``.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from ._bindings import BACKENDS, ffi

_EMULATED = BACKENDS["emulated"]

#: Whether new handles get a fast path (``BPFMAP_FAST_PATH=0`` switches it off).
enabled = os.environ.get("BPFMAP_FAST_PATH", "1") != "0"


def set_enabled(on: bool) -> None:
    """Switch the fast path on or off for maps opened from now on."""
    global enabled
    enabled = bool(on)


class _ClosedView:
    """What a fast path with no readable view slices: it raises, like a closed map."""

    __slots__ = ()

    def __getitem__(self, index: object) -> bytes:
        raise ValueError("I/O operation on closed map")


class FastPath:
    """What the emulated fast paths of one handle use.

    ``reads``: how many keys the read fast paths serve (0: none, every call goes
    through the C core). ``view``: the values, as a buffer whose slices are bytes
    (value ``k`` at ``k * stride``); ``base``: the same as a cffi pointer.
    ``pack_into(buffer, 0, value)`` copies a value into the front of a buffer.
    """

    __slots__ = ("reads", "view", "base", "stride", "value_size", "pack_into", "handle")

    reads: int
    view: Any
    base: Any
    stride: int
    value_size: int
    pack_into: Any
    handle: Any

    def __init__(self) -> None:
        self.reads = 0
        self.view = _ClosedView()
        self.base = ffi.NULL
        self.stride = self.value_size = 0
        self.pack_into = None
        self.handle = None

    @classmethod
    def serve(cls, h: Any) -> FastPath:
        """The fast path of handle ``h`` (a ``ffi.gc``'d ``struct bpfmap *``), or :data:`OFF`."""
        if not enabled or h.backend != _EMULATED:
            return OFF
        f = cls()
        f.handle = h
        f.stride = int(h.elem_size)
        f.value_size = int(h.value_size)
        # lookup_into's copy: struct's "Ns" writes exactly the N bytes of a value
        # into the caller's buffer, the cheapest copy between two buffers Python has.
        f.pack_into = struct.Struct(f"{f.value_size}s").pack_into
        if h.view != ffi.NULL:
            f.reads = int(h.max_entries)
            f.base = h.view + h.page_size
            # The buffer keeps `keeper` alive and `keeper` keeps the handle, so
            # no slice of the view can outlive the mapping, even when close()
            # races the slice in another thread.
            keeper = ffi.gc(ffi.cast("char *", f.base), lambda _p, _h=h: None)
            f.view = ffi.buffer(keeper, f.reads * f.stride)
        return f


#: The fast path that serves nothing: kernel maps, closed maps, fast path off.
OFF = FastPath()
