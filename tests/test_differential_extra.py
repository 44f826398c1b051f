"""The kernel cases the corpus's scenario language cannot express, on both backends.

Every other case of kernel-array-semantics.md is a scenario of
``bpfmap/scenarios/`` run by ``tests/test_differential.py``. These stay here,
each for a reason:

- I10 (map ids positive and unique): the language's ``info`` leaves the id out
  (it differs between backends and runs) and has no way to compare two maps.
- ``lookup_batch_into`` (BPF_MAP_LOOKUP_BATCH into the caller's buffers): the
  language has ``lookup_batch`` only; these check the same bytes and errno as
  ``lookup_batch`` and that the buffers past the elements written stay untouched,
  and the API's refusals of buffers it cannot fill (``TypeError``/``ValueError``).
- N01b's key iteration (``list(m)``, ``ArrayMap.__iter__``): the language has
  ``items`` but no op for the keys alone.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import pytest

from bpfmap import BPF_F_LOCK, BPF_F_WRONLY, ArrayMap, Batch

U32 = 2**32 - 1


def o(fn: Callable[[], Any]) -> tuple[Any, ...]:
    """("ok", result) / ("errno", n) / ("raise", type): what one call did."""
    try:
        r = fn()
    except OSError as exc:
        return ("errno", exc.errno)
    except (TypeError, ValueError) as exc:
        return ("raise", type(exc).__name__)
    if isinstance(r, Batch):
        return ("ok", ("batch", list(r.keys), bytes(r.values), r.out_batch, r.done))
    return ("ok", r)


def val(k: int, vs: int) -> bytes:
    return bytes((k * 7 + i + 1) & 0xFF for i in range(vs))


def on_both(create: dict[str, Any], op: Callable[[ArrayMap], Any]) -> Any:
    """``op`` on a map made on each backend: both must give the same result, returned."""
    got = []
    for be in ("emulated", "kernel"):
        m = ArrayMap(backend=be, **{"value_size": 12, "max_entries": 4, **create})
        try:
            got.append(op(m))
        finally:
            m.close()
    assert got[0] == got[1], "emulated (left) differs from the kernel (right)"
    return got[1]


def test_ids_are_unique_and_positive(kernel: None) -> None:
    """I10: every map gets an id > 0, different from every other live map's."""
    maps = [ArrayMap(8, 1, backend=be) for be in ("emulated", "emulated", "kernel", "kernel")]
    try:
        ids = [m.id for m in maps]
        assert all(i > 0 for i in ids)
        assert ids[0] != ids[1] and ids[2] != ids[3]
        assert [m.info().id for m in maps] == ids
    finally:
        for m in maps:
            m.close()


def test_iteration_gives_every_key(kernel: None) -> None:
    """N01b: ``list(m)`` walks BPF_MAP_GET_NEXT_KEY from NULL: every key, in order."""
    assert on_both({"max_entries": 3}, list) == [0, 1, 2]
    assert on_both({"max_entries": 1}, list) == [0]


# ------------------------------------------------ lookup_batch_into, both backends


def _into(m: ArrayMap, count: int, prefill: int = 0xEE, **kw: Any) -> Any:
    """lookup_batch_into on buffers pre-filled with ``prefill``: (result, keys, values)."""
    keys = array.array("I", [prefill]) * count
    values = bytearray([prefill]) * (count * m.value_size + 3)  # 3 spare bytes stay untouched
    return (m.lookup_batch_into(keys, values, **kw), list(keys), bytes(values))


INTO_CASES = [
    pytest.param({}, 4, {}, id="all"),
    pytest.param({}, 10, {}, id="count-over"),
    pytest.param({}, 0, {}, id="count-0"),
    pytest.param({}, 2, {"in_batch": 1}, id="in_batch-middle"),
    pytest.param({}, 4, {"in_batch": 3}, id="in_batch-last"),
    pytest.param({}, 2, {"in_batch": 100}, id="in_batch-past-end"),
    pytest.param({}, 9, {"in_batch": U32}, id="in_batch-u32max"),
    pytest.param({"value_size": 5, "max_entries": 3}, 3, {}, id="value_size-stride"),
    pytest.param({}, 4, {"elem_flags": BPF_F_LOCK}, id="elem_flags-LOCK"),
    pytest.param({}, 4, {"flags": 2**64 - 1}, id="flags-ignored"),
    pytest.param({"flags": BPF_F_WRONLY}, 2, {}, id="write-only"),
]


@pytest.mark.parametrize("create,count,kw", INTO_CASES)
def test_lookup_batch_into(
    create: dict[str, Any], count: int, kw: dict[str, Any], kernel: None
) -> None:
    """Same bytes and errno on both backends, and the same data as ``lookup_batch``."""

    def op(m: ArrayMap) -> Any:
        if m.access == "rw":
            for k in range(m.max_entries):
                m.update(k, val(k, m.value_size))
        plain = o(lambda: m.lookup_batch(count, **kw))
        try:
            (got, out_batch, done), keys, values = _into(m, count, **kw)
        except OSError as exc:
            assert plain == ("errno", exc.errno)
            return plain
        vs = m.value_size
        assert plain == ("ok", ("batch", keys[:got], values[: got * vs], out_batch, done))
        assert keys[got:] == [0xEE] * (count - got)
        assert values[got * vs :] == b"\xee" * ((count - got) * vs + 3)
        return plain

    on_both(create, op)


def test_lookup_batch_into_rejects_what_it_cannot_fill() -> None:
    m = ArrayMap(8, 4)
    with m:
        with pytest.raises(TypeError, match="writable uint32 buffer"):
            m.lookup_batch_into([0, 0], bytearray(16))
        with pytest.raises(TypeError, match="native uint32"):
            m.lookup_batch_into(bytearray(8), bytearray(16))
        with pytest.raises(TypeError, match="writable"):
            m.lookup_batch_into(memoryview(array.array("I", [0, 0])).toreadonly(), bytearray(16))
        with pytest.raises(TypeError, match="writable"):
            m.lookup_batch_into(array.array("I", [0, 0]), bytes(16))
        with pytest.raises(ValueError, match="at least 16 bytes, got 15"):
            m.lookup_batch_into(array.array("I", [0, 0]), bytearray(15))
