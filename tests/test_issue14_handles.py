"""Issue 14 section 3: descriptors and handles (regions, keys, from_fd, headers, pickle).

Every test runs the real thing: real mappings, real bpf() descriptors, real
processes; the kernel backend answers where it can.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle

import pytest

from bpfmap import BPF_F_MMAPABLE, ArrayMap


def new_map(backend: str, value_size: int = 8, max_entries: int = 8) -> ArrayMap:
    return ArrayMap(value_size, max_entries, flags=BPF_F_MMAPABLE, backend=backend)


# ------------------------------------------------------------------ pickle


def _child_writes(m: ArrayMap) -> None:
    m[2] = b"from-kid"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_still_passes_the_map(backend: str, method: str) -> None:
    m = new_map(backend)
    ctx = mp.get_context(method)
    proc = ctx.Process(target=_child_writes, args=(m,))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert m[2] == b"from-kid"


def test_subclasses_pass_through_multiprocessing_too() -> None:
    class Mine(ArrayMap):
        __slots__ = ()

    base = ArrayMap(8, 8)
    m = Mine.from_fd(os.dup(base.fd))
    from multiprocessing.reduction import ForkingPickler

    other = ForkingPickler.loads(ForkingPickler.dumps(m))
    m[0] = b"subclass"
    assert other[0] == b"subclass"
    with pytest.raises(TypeError):
        pickle.dumps(m)
