"""Element operations of a map: lookup, update, delete, get_next_key, and the
container protocol built on them."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from ._args import bad_args, check_uint, exact_ints
from ._bindings import error, ffi, lib
from ._buffers import CHAR_ARRAY, Buffer, readable_buffer, writable_buffer
from ._handle import MapHandle, closed_error

# The fast paths take `flags is _NO_FLAGS`: the int 0, not False or 0.0.
_NO_FLAGS = 0
_BPF_ANY = 0

# The hot calls' C functions, bound once: `lib.x` is an attribute lookup per call.
_lookup = lib.bpfmap_lookup
_update = lib.bpfmap_update
_new = ffi.new
_cbuffer = ffi.buffer
_from_buffer = ffi.from_buffer
_release = ffi.release


def _refusal(h: Any, key: object, flags: object) -> Exception:
    """What cffi's TypeError or OverflowError from an element call means: the map was
    closed (its handle is None), or the key or flags are out of their C type's range."""
    if h is None:
        return closed_error()
    return bad_args(key=(key, 32), flags=(flags, 64))


class ElementOps(MapHandle):
    """``BPF_MAP_*_ELEM`` and ``BPF_MAP_GET_NEXT_KEY`` on one handle.

    Each call first tries the emulated fast path (``self._fast``, see
    :mod:`bpfmap._fastpath`), which serves only the common case and otherwise
    serves nothing; then the C core decides, and its ``-errno`` is raised.
    """

    __slots__ = ()

    def lookup(self, key: int, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``: the value at ``key``, ``value_size`` bytes."""
        f = self._fast
        if type(key) is int and flags is _NO_FLAGS:
            if key < f.reads and key >= 0:  # the emulated fast path: a slice of the view
                key *= f.stride
                return f.view[key : key + f.value_size]  # type: ignore[no-any-return]
        elif self._h is None:
            raise closed_error()
        elif type(key) is not int or type(flags) is not int:
            exact_ints(key, flags)
        # The C core, into a buffer from this handle's spares (ffi.new() would cost a
        # fifth of a kernel lookup): pop() and append() are atomic, so no two threads
        # ever share one. A spare is (char[value_size], ffi.buffer of it), whose slice
        # is the value as bytes at half the cost of ffi.unpack().
        spare = self._spare
        try:
            pair = spare.pop()
        except IndexError:
            pair = self._new_spare()
        h = self._h
        try:
            rc = _lookup(h, key, pair[0], flags)
        except (TypeError, OverflowError):  # a closed handle (None) or a key cffi refused
            raise _refusal(h, key, flags) from None
        if rc:
            spare.append(pair)
            raise error(rc, "lookup")
        value: bytes = pair[1][:]
        spare.append(pair)
        return value

    def _new_spare(self) -> tuple[Any, Any]:
        buf = _new(CHAR_ARRAY, self._value_size)
        return buf, _cbuffer(buf)

    def lookup_into(self, key: int, buffer: Buffer, flags: int = 0) -> None:
        """``BPF_MAP_LOOKUP_ELEM`` into a writable buffer of at least ``value_size`` bytes.

        Bytes past ``value_size`` are left untouched, as the kernel leaves them.
        """
        f = self._fast
        if type(key) is int and flags is _NO_FLAGS:
            if key < f.reads and key >= 0:
                # The emulated fast path. pack_into() takes any writable contiguous
                # buffer of at least value_size bytes and refuses anything else before
                # writing: then the general path below says what is wrong.
                o = key * f.stride
                try:
                    f.pack_into(buffer, 0, f.view[o : o + f.value_size])
                    return
                except (TypeError, ValueError, BufferError, struct.error):
                    pass
            exact = True
        else:
            exact = False
        h = self._h
        if h is None:
            raise closed_error()
        vs = self._value_size
        if type(buffer) is bytearray and len(buffer) >= vs:
            # A bytearray is always writable: the one-argument from_buffer() (char[],
            # no writability check) costs ~18 ns less than from_buffer(CHAR_ARRAY, b, True).
            dst = _from_buffer(buffer)
        else:
            dst = writable_buffer(buffer, vs, "buffer")
        try:  # the export of the caller's buffer must not outlive the call: see buffer_view
            if not exact:
                exact_ints(key, flags)
            try:
                rc = _lookup(h, key, dst, flags)
            except (TypeError, OverflowError):
                raise _refusal(h, key, flags) from None
        finally:
            _release(dst)
        if rc:
            raise error(rc, "lookup")

    def update(self, key: int, value: Buffer, flags: int = _BPF_ANY) -> None:
        """``BPF_MAP_UPDATE_ELEM``: ``value`` must be exactly ``value_size`` bytes."""
        if (
            type(value) is bytes
            and type(key) is int
            and type(flags) is int
            and len(value) == self._value_size
        ):
            # The common call: exact types, a bytes value of the right size, straight to
            # the C core. (An emulated update is one pwrite() there, after the
            # RLIMIT_FSIZE check that keeps a value whole: a Python pwrite() would need the
            # same getrlimit() and measured no faster, so there is no Python fast path.)
            h = self._h
            try:
                rc = _update(h, key, value, flags)
            except (TypeError, OverflowError):  # a closed handle (None) or an int cffi refused
                raise _refusal(h, key, flags) from None
            if rc:
                raise error(rc, "update")
            return
        h = self._h
        if h is None:
            raise closed_error()
        vs = self._value_size
        if type(value) is bytes:
            if len(value) != vs:
                raise ValueError(f"value must be {vs} bytes, got {len(value)}")
            src: Any = value
        else:
            src = readable_buffer(value, vs, "value")
        try:  # the export of the caller's buffer must not outlive the call: see buffer_view
            if type(key) is not int or type(flags) is not int:
                exact_ints(key, flags)
            try:
                rc = _update(h, key, src, flags)
            except (TypeError, OverflowError):
                raise _refusal(h, key, flags) from None
        finally:
            if src is not value:
                _release(src)
        if rc:
            raise error(rc, "update")

    def delete(self, key: int) -> None:
        """``BPF_MAP_DELETE_ELEM``: arrays refuse it (EINVAL), as in the kernel."""
        h = self._handle()
        check_uint(key, 32, "key")
        rc = lib.bpfmap_delete(h, key)
        if rc:
            raise error(rc, "delete")

    def lookup_and_delete(self, key: int, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM``: arrays refuse it (ENOTSUPP)."""
        h = self._handle()
        check_uint(key, 32, "key")
        check_uint(flags, 64, "flags")
        buf = ffi.new(CHAR_ARRAY, self._value_size)
        rc = lib.bpfmap_lookup_and_delete(h, key, buf, flags)
        if rc:
            raise error(rc, "lookup_and_delete")
        return ffi.unpack(buf, self._value_size)  # type: ignore[no-any-return]

    def get_next_key(self, key: int | None = None) -> int:
        """``BPF_MAP_GET_NEXT_KEY``; ``None`` (or an out-of-range key) starts at 0."""
        h = self._handle()
        nxt = ffi.new("uint32_t *")
        if key is None:
            rc = lib.bpfmap_get_next_key(h, ffi.NULL, nxt)
        else:
            cur = ffi.new("uint32_t *", check_uint(key, 32, "key"))
            rc = lib.bpfmap_get_next_key(h, cur, nxt)
        if rc:
            raise error(rc, "get_next_key")
        return int(nxt[0])

    # -- container protocol -------------------------------------------------

    def __len__(self) -> int:
        return int(self._handle().max_entries)

    def __getitem__(self, key: int) -> bytes:
        return self.lookup(key)

    def __setitem__(self, key: int, value: Buffer) -> None:
        self.update(key, value)

    def __delitem__(self, key: int) -> None:
        self.delete(key)

    def __iter__(self) -> Iterator[int]:
        """The keys, in ``get_next_key`` order."""
        key: int | None = None
        while True:
            try:
                key = self.get_next_key(key)
            except FileNotFoundError:
                return
            yield key

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(key, value) pairs in ``get_next_key`` order, each value a ``lookup``."""
        key: int | None = None
        f = self._fast
        if f.reads:
            # The emulated fast path: get_next_key of an array is key + 1 and
            # each lookup is a slice of the view. Once the handle is closed, the
            # general loop below takes over after the last key yielded, and
            # raises as it would have.
            view, stride, vs = f.view, f.stride, f.value_size
            for k in range(f.reads):
                if self._fast is not f:
                    break
                off = k * stride
                yield k, view[off : off + vs]
                key = k
            else:
                if self._fast is f:
                    return
        while True:
            try:
                key = self.get_next_key(key)
            except FileNotFoundError:
                return
            yield key, self.lookup(key)
