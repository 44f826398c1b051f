"""Batches: lookup_batch, update_batch and delete_batch from Python.

The count and key/value arguments are checked with a ``TypeError``/``ValueError``
naming what was expected (NumPy key arrays are accepted), and ``lookup_batch``
returns a ``Batch`` of keys, values, ``out_batch`` and ``done``. ``lookup_batch``
builds its result in buffers that are not zero-filled first
(``bpfmap._buffers.fresh_bytearray``): every byte it returns must be a value the map
holds, at every size (below and above the thresholds where the buffer changes kind:
16 KiB, uninitialized; 32 MiB, advised for huge pages), for padded and unpadded
values, whole and partial batches, on both backends. Keys and flags of
batch calls are covered with every other entry point in tests/test_elements.py;
the kernel's batch semantics, case by case, are in the corpus
(tests/test_differential.py) and tests/test_differential_extra.py.
"""

from __future__ import annotations

import array

import pytest
from conftest import require_kernel

from bpfmap import BPF_F_MMAPABLE, ArrayMap
from bpfmap._buffers import fresh_bytearray

MM = BPF_F_MMAPABLE


def test_batch_count(m: ArrayMap) -> None:
    with pytest.raises(TypeError, match=r"count must be an int, not str"):
        m.lookup_batch("2")
    with pytest.raises(ValueError, match=r"count must be in 0\.\.4294967295, got -1"):
        m.lookup_batch(-1)
    assert len(m.lookup_batch().keys) == 4  # None: all


def test_update_batch_values_misuse(m: ArrayMap) -> None:
    with pytest.raises(ValueError, match=r"values\[1\] must be 4 bytes, got 3"):
        m.update_batch([0, 1], [b"abcd", b"abc"])
    with pytest.raises(ValueError, match=r"values must be 8 bytes, got 4"):
        m.update_batch([0, 1], b"abcd")
    with pytest.raises(TypeError, match=r"values must be a bytes-like object"):
        m.update_batch([0], "abcd")
    assert [m.lookup(k) for k in range(4)] == [bytes(4)] * 4


def test_update_batch_keys_misuse(m: ArrayMap) -> None:
    with pytest.raises(TypeError, match=r"native uint32, not format 'i'"):
        m.update_batch(array.array("i", [0]), b"abcd")
    with pytest.raises(TypeError, match=r"native uint32"):
        m.update_batch(array.array("Q", [0]), b"abcd")
    with pytest.raises(TypeError):
        m.update_batch(5, b"abcd")
    with pytest.raises(TypeError, match=r"key must be an int, not str"):
        m.update_batch("ab", bytes(8))
    # Native uint32 buffers and iterables of ints work.
    assert m.update_batch(array.array("I", [3, 1]), b"3333" + b"1111") == 2
    assert m.update_batch(iter([2]), [b"2222"]) == 1
    assert m.update_batch(range(1), [b"0000"]) == 1
    assert [m.lookup(k) for k in range(4)] == [b"0000", b"1111", b"2222", b"3333"]


def test_update_batch_numpy_keys(m: ArrayMap) -> None:
    np = pytest.importorskip("numpy")
    assert m.update_batch(np.array([1, 2], dtype=np.uint32), b"aaaabbbb") == 2
    with pytest.raises(ValueError, match=r"contiguous"):
        m.update_batch(np.arange(4, dtype=np.uint32)[::2], b"aaaabbbb")
    with pytest.raises(TypeError, match=r"native uint32"):
        m.update_batch(np.array([1], dtype=np.int64), b"aaaa")
    assert m.lookup(2) == b"bbbb"


def test_lookup_batch_result(backend: str) -> None:
    with ArrayMap(2, 3, backend=backend) as m:
        m.update_batch([0, 1, 2], b"aabbcc")
        b = m.lookup_batch(2)
        assert list(b.keys) == [0, 1] and b.values == b"aabb" and b.out_batch == 1 and not b.done
        assert list(b.items()) == [(0, b"aa"), (1, b"bb")]
        assert [list(x.items()) for x in m.batches(2)] == [[(0, b"aa"), (1, b"bb")], [(2, b"cc")]]
        empty = m.lookup_batch(0)
        assert list(empty.items()) == [] and empty.out_batch is None


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
     (12, (32 << 20) // 12 + 5), (4, (32 << 20) // 4 + 3)],
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


@pytest.mark.parametrize(
    "nbytes", [0, 1, 100, (16 << 10) - 1, 16 << 10, 1 << 20, 32 << 20, (32 << 20) + 4097]
)
def test_fresh_bytearray_has_the_size_asked(nbytes: int) -> None:
    b = fresh_bytearray(nbytes)
    assert type(b) is bytearray and len(b) == nbytes
    b[:] = b"\x5a" * nbytes  # writable, resizable, an ordinary bytearray
    del b[nbytes // 2 :]
    b += b"\xa5"  # grows as any bytearray (from 32 MiB on it was cut at both ends)
    assert b == b"\x5a" * (nbytes // 2) + b"\xa5"


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_lookup_batch_keeps_no_unwritten_bytes(backend: str) -> None:
    _backend(backend)
    with ArrayMap(8, 8192, backend=backend, name="h_batch_fail") as m:
        with pytest.raises(OSError) as raised:
            m.lookup_batch(elem_flags=1)  # EINVAL from the C core or the kernel
        tb = raised.tb
        frames = []
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        (frame,) = [f for f in frames if f.f_code.co_name == "lookup_batch"]
        # The buffers made for the result were emptied before the raise.
        keys, values = frame.f_locals["keys"], frame.f_locals["values"]
        assert (type(keys), len(keys), type(values), len(values)) == (array.array, 0, bytearray, 0)
