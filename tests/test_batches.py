"""Batches: lookup_batch, update_batch and delete_batch from Python.

The count and key/value arguments are checked with a ``TypeError``/``ValueError``
naming what was expected (NumPy key arrays are accepted), and ``lookup_batch``
returns a ``Batch`` of keys, values, ``out_batch`` and ``done``. Keys and flags of
batch calls are covered with every other entry point in tests/test_elements.py;
the kernel's batch semantics, case by case, are in the corpus
(tests/test_differential.py) and tests/test_differential_extra.py.
"""

from __future__ import annotations

import array
from collections.abc import Iterator

import pytest

from bpfmap import BPF_F_MMAPABLE, ArrayMap

MM = BPF_F_MMAPABLE


@pytest.fixture
def m(backend: str) -> Iterator[ArrayMap]:
    mp = ArrayMap(4, 4, flags=MM, backend=backend)
    try:
        yield mp
    finally:
        mp.close()


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
