"""Batch operations of a map: ``BPF_MAP_LOOKUP_BATCH``, ``BPF_MAP_UPDATE_BATCH``,
``BPF_MAP_DELETE_BATCH``."""

from __future__ import annotations

import array
import errno
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from ._args import check_uint
from ._bindings import batch_error, error, ffi, lib
from ._buffers import (
    U32_ARRAY,
    Buffer,
    fresh_bytearray,
    readable_buffer,
    u32_buffer,
    writable_buffer,
)
from ._handle import MapHandle

_NO_FLAGS = 0  # the fast checks take `flags is _NO_FLAGS`: the int 0, not False or 0.0


class Batch(NamedTuple):
    """One ``BPF_MAP_LOOKUP_BATCH`` result.

    ``keys`` holds the keys copied, ``values`` their values packed at a
    ``value_size`` stride (the kernel's layout, not the padded element stride).
    ``out_batch`` is the token to pass as ``in_batch`` to continue (``None`` if
    nothing was copied). ``done`` is the kernel's ENOENT: no key follows.
    """

    keys: array.array[int]
    values: bytearray
    out_batch: int | None
    done: bool

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(key, value) pairs, values as bytes."""
        n = len(self.keys)
        if not n:
            return
        size = len(self.values) // n
        for i, key in enumerate(self.keys):
            yield key, bytes(self.values[i * size : (i + 1) * size])


class BatchCount(NamedTuple):
    """One ``lookup_batch_into`` result: the caller's buffers hold the data.

    ``copied`` keys (and their values, at a ``value_size`` stride) were written
    to the front of the buffers: the kernel's ``attr->batch.count`` on return.
    ``out_batch`` and ``done`` as in ``Batch``.
    """

    copied: int
    out_batch: int | None
    done: bool


class BatchOps(MapHandle):
    """The batch commands on one handle; a failed update or delete raises
    :class:`bpfmap.BatchError`, which carries ``.count``."""

    __slots__ = ()

    def lookup_batch(
        self,
        count: int | None = None,
        *,
        in_batch: int | None = None,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> Batch:
        """``BPF_MAP_LOOKUP_BATCH``: up to ``count`` (default: all) keys after ``in_batch``.

        The kernel's ENOENT ("no more keys", possibly with data) is returned as
        ``Batch.done``; any other failure raises OSError.
        """
        h = self._handle()
        n = h.max_entries if count is None else check_uint(count, 32, "count")
        # No batch holds more than max_entries keys, and any count above that
        # behaves as max_entries + 1 (all keys, then ENOENT): allocate for that,
        # not for count (lookup_batch(2**32 - 1) would ask for 16 GiB of keys).
        n = min(n, int(h.max_entries) + 1)
        check_uint(elem_flags, 64, "elem_flags")
        check_uint(flags, 64, "flags")
        vs = self._value_size
        keys = array.array("I", [0]) * n  # filled by the C core
        # Not zero-filled: the C core (or the kernel) writes the values of the
        # keys it copies, and the rest is cut off below before anyone sees it.
        values = fresh_bytearray(n * vs)
        cnt = ffi.new("uint32_t *", n)
        out = ffi.new("uint32_t *")
        inb = (
            ffi.NULL
            if in_batch is None
            else ffi.new("uint32_t *", check_uint(in_batch, 32, "in_batch"))
        )
        key_buf = ffi.from_buffer(U32_ARRAY, keys, True)
        val_buf = ffi.from_buffer(values)
        try:  # our own buffers, but released at once all the same: see buffer_view
            rc = lib.bpfmap_lookup_batch(h, inb, out, key_buf, val_buf, cnt, elem_flags, flags)
        finally:
            ffi.release(key_buf)
            ffi.release(val_buf)
        if rc and rc != -errno.ENOENT:
            del keys[:], values[:]  # unwritten: not even a traceback's frame may show them
            raise error(rc, "lookup_batch")
        got = int(cnt[0])
        del keys[got:]
        del values[got * vs :]  # what was not written goes before anyone sees it
        return Batch(keys, values, int(out[0]) if got else None, rc == -errno.ENOENT)

    def lookup_batch_into(
        self,
        keys: Buffer,
        values: Buffer,
        *,
        in_batch: int | None = None,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> BatchCount:
        """``BPF_MAP_LOOKUP_BATCH`` into the caller's buffers, as the syscall does.

        ``keys``: a writable native ``uint32`` buffer (``array('I')``, a NumPy
        ``uint32`` array); its length is the batch's count. ``values``: a
        writable buffer of at least ``len(keys) * value_size`` bytes. Nothing is
        allocated, so a reused pair of buffers costs one copy of the values.
        """
        h = self._handle()
        if elem_flags is not _NO_FLAGS:
            check_uint(elem_flags, 64, "elem_flags")
        if flags is not _NO_FLAGS:
            check_uint(flags, 64, "flags")
        # count, out_batch and in_batch in one allocation: this call is for hot loops.
        io = ffi.new("uint32_t[3]")
        inb = ffi.NULL
        if in_batch is not None:
            io[2] = check_uint(in_batch, 32, "in_batch")
            inb = io + 2
        key_buf, n = u32_buffer(keys, writable=True)
        val_buf: Any = None
        cnt, out = io, io + 1
        try:  # no export of the caller's buffers may outlive the call: see buffer_view
            val_buf = writable_buffer(values, n * self._value_size, "values")
            cnt[0] = n
            # The C core copies straight from the map (emulated: one memcpy).
            rc = lib.bpfmap_lookup_batch(h, inb, out, key_buf, val_buf, cnt, elem_flags, flags)
        finally:
            ffi.release(key_buf)
            if val_buf is not None:
                ffi.release(val_buf)
        if rc and rc != -errno.ENOENT:
            del keys[:], values[:]  # unwritten: not even a traceback's frame may show them
            raise error(rc, "lookup_batch")
        got = int(cnt[0])
        return BatchCount(got, int(out[0]) if got else None, rc == -errno.ENOENT)

    def batches(self, count: int = 4096) -> Iterator[Batch]:
        """Every key and value, ``count`` at a time, through ``lookup_batch``."""
        token: int | None = None
        while True:
            batch = self.lookup_batch(count, in_batch=token)
            if batch.keys:
                yield batch
            if batch.done or batch.out_batch is None:
                return
            token = batch.out_batch

    def update_batch(
        self,
        keys: Iterable[int] | Buffer,
        values: Buffer | Sequence[bytes],
        *,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> int:
        """``BPF_MAP_UPDATE_BATCH``: returns the number of elements written.

        ``keys``: ints, or a buffer of native ``uint32`` (``array('I')``, a NumPy
        ``uint32`` array). ``values``: one buffer of ``len(keys) * value_size``
        bytes, or a sequence of ``value_size``-byte values. On failure the
        BatchError (an OSError) carries ``.count``, the elements written before it (the kernel
        does not roll back).
        """
        h = self._handle()
        check_uint(elem_flags, 64, "elem_flags")
        check_uint(flags, 64, "flags")
        key_buf, n = u32_buffer(keys)
        val_buf: Any = None
        try:  # no export of the caller's buffers may outlive the call: see buffer_view
            vs = self._value_size
            if isinstance(values, (list, tuple)):
                for i, v in enumerate(values):
                    if len(v) != vs:
                        raise ValueError(f"values[{i}] must be {vs} bytes, got {len(v)}")
                values = b"".join(values)
            val_buf = readable_buffer(values, n * vs, "values")
            cnt = ffi.new("uint32_t *", n)
            rc = lib.bpfmap_update_batch(h, key_buf, val_buf, cnt, elem_flags, flags)
        finally:
            ffi.release(key_buf)
            if val_buf is not None:
                ffi.release(val_buf)
        if rc:
            raise batch_error(rc, "update_batch", int(cnt[0]))
        return int(cnt[0])

    def delete_batch(
        self, keys: Iterable[int] | Buffer, *, elem_flags: int = 0, flags: int = 0
    ) -> int:
        """``BPF_MAP_DELETE_BATCH``: arrays refuse it (ENOTSUPP), as in the kernel."""
        h = self._handle()
        check_uint(elem_flags, 64, "elem_flags")
        check_uint(flags, 64, "flags")
        key_buf, n = u32_buffer(keys)
        cnt = ffi.new("uint32_t *", n)
        try:  # the export of the caller's keys must not outlive the call: see buffer_view
            rc = lib.bpfmap_delete_batch(h, key_buf, cnt, elem_flags, flags)
        finally:
            ffi.release(key_buf)
        if rc:
            raise batch_error(rc, "delete_batch", int(cnt[0]))
        return int(cnt[0])
