"""Element operations of a map: lookup, update, delete, get_next_key, and the
container protocol built on them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ._args import bad_args, check_uint, exact_ints
from ._bindings import error, ffi, lib
from ._buffers import CHAR_ARRAY, Buffer, readable_buffer, writable_buffer
from ._handle import MapHandle, closed_error

# The fast paths take `flags is _NO_FLAGS`: the int 0, not False or 0.0.
_NO_FLAGS = 0
_BPF_ANY = 0


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
        if type(key) is int and flags is _NO_FLAGS and 0 <= key < f.reads:
            key *= f.stride
            return f.view[key : key + f.value_size]  # type: ignore[no-any-return]
        h = self._h
        if h is None:
            raise closed_error()
        vs = self._value_size
        buf = ffi.new(CHAR_ARRAY, vs)
        if type(key) is not int or type(flags) is not int:
            exact_ints(key, flags)
        try:
            rc = lib.bpfmap_lookup(h, key, buf, flags)
        except (TypeError, OverflowError):
            raise bad_args(key=(key, 32), flags=(flags, 64)) from None
        if rc:
            raise error(rc, "lookup")
        return ffi.unpack(buf, vs)  # type: ignore[no-any-return]

    def lookup_into(self, key: int, buffer: Buffer, flags: int = 0) -> None:
        """``BPF_MAP_LOOKUP_ELEM`` into a writable buffer of at least ``value_size`` bytes.

        Bytes past ``value_size`` are left untouched, as the kernel leaves them.
        """
        f = self._fast
        if (
            type(key) is int
            and flags is _NO_FLAGS
            and 0 <= key < f.reads
            and type(buffer) is bytearray
            and len(buffer) >= f.value_size
        ):
            vs = f.value_size
            key *= f.stride
            buffer[:vs] = f.view[key : key + vs]
            return
        h = self._handle()
        dst = writable_buffer(buffer, self._value_size, "buffer")
        try:  # the export of the caller's buffer must not outlive the call: see buffer_view
            exact_ints(key, flags)
            try:
                rc = lib.bpfmap_lookup(h, key, dst, flags)
            except (TypeError, OverflowError):
                raise bad_args(key=(key, 32), flags=(flags, 64)) from None
        finally:
            ffi.release(dst)
        if rc:
            raise error(rc, "lookup")

    def update(self, key: int, value: Buffer, flags: int = _BPF_ANY) -> None:
        """``BPF_MAP_UPDATE_ELEM``: ``value`` must be exactly ``value_size`` bytes."""
        f = self._fast
        if (
            type(value) is bytes
            and type(key) is int
            and flags is _NO_FLAGS
            and 0 <= key < f.writes
            and len(value) == f.value_size
        ):
            try:
                if os.pwrite(f.fd, value, f.offset + key * f.stride) == f.value_size:
                    return
            except OSError:
                pass  # e.g. EPERM once frozen: the C core below gives the errno
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
                rc = lib.bpfmap_update(h, key, src, flags)
            except (TypeError, OverflowError):
                raise bad_args(key=(key, 32), flags=(flags, 64)) from None
        finally:
            if src is not value:
                ffi.release(src)
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
