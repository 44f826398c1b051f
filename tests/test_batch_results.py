"""lookup_batch() builds its result in buffers that are not zero-filled first
(bpfmap._buffers.fresh_bytearray): every byte it returns must be a value the map
holds, at every size (below and above the thresholds where the buffer changes kind:
16 KiB, uninitialized; 32 MiB, advised for huge pages), for padded and unpadded
values, whole and partial batches, on both backends."""

from __future__ import annotations

import array

import pytest
from conftest import require_kernel

from bpfmap import ArrayMap
from bpfmap._buffers import fresh_bytearray

BACKENDS = ["emulated", "kernel"]


def _backend(backend: str) -> None:
    if backend == "kernel":
        require_kernel()


def _filled(backend: str, value_size: int, entries: int) -> tuple[ArrayMap, bytes]:
    m = ArrayMap(value_size, entries, backend=backend, name="h_batch_res")
    # Every value distinct and non-zero, so a zero or stale byte shows.
    pattern = bytes((i * 7 + 1) % 251 + 1 for i in range(value_size * 256))
    values = (pattern * (entries // 256 + 1))[: entries * value_size]
    m.update_batch(array.array("I", range(entries)), values)
    return m, values


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("value_size", "entries"),
    [(8, 3), (8, 2048), (8, 2049), (12, 1500), (4, 5000), (8, (32 << 20) // 8 + 77),
     (12, (32 << 20) // 12 + 5)],
)
def test_lookup_batch_returns_exactly_the_values(backend: str, value_size: int,
                                                 entries: int) -> None:
    _backend(backend)
    if backend == "kernel" and entries > 100_000:
        entries = 100_000  # the kernel copies one element at a time: keep it short
    m, values = _filled(backend, value_size, entries)
    with m:
        whole = m.lookup_batch()
        assert type(whole.keys) is array.array and whole.keys.typecode == "I"
        assert type(whole.values) is bytearray
        assert whole.values == values
        assert whole.keys == array.array("I", range(entries))
        # count == max_entries: all of them, and no ENOENT (the kernel's too).
        assert not whole.done and whole.out_batch == entries - 1
        # A count past the end: the buffers were sized for entries + 1 values.
        over = m.lookup_batch(entries + 10)
        assert over.values == values and over.done
        # A partial batch from the middle, then the tail that ends with ENOENT.
        half = entries // 2
        first = m.lookup_batch(half)
        assert first.values == values[: half * value_size] and not first.done
        if half:
            rest = m.lookup_batch(entries, in_batch=first.out_batch)
            assert rest.values == values[half * value_size :] and rest.done
            assert rest.keys == array.array("I", range(half, entries))


@pytest.mark.parametrize("nbytes", [0, 1, 100, (16 << 10) - 1, 16 << 10, 1 << 20, 32 << 20])
def test_fresh_bytearray_has_the_size_asked(nbytes: int) -> None:
    b = fresh_bytearray(nbytes)
    assert type(b) is bytearray and len(b) == nbytes
    b[:] = b"\x5a" * nbytes  # writable, resizable, an ordinary bytearray
    del b[nbytes // 2 :]
    assert b == b"\x5a" * (nbytes // 2)
