"""Seeded random differential test: the generator of ``bpfmap conformance --random``.

Random map shapes (valid and invalid sizes, flags and names), then random
sequences of every map operation (keys in range, just past the end and far out;
valid and invalid flags; batches; freezes; second handles and calls on closed
ones), mappings with random offsets and lengths and their reads, writes,
mprotect, partial munmap and MADV_DONTFORK, forked children and pins, each step
on both backends in lockstep (``bpfmap.conformance.RandomRun``). Every outcome
must be equal; at the end of each sequence every value through every handle
and every byte of every live mapping are compared too. A divergence is shown
as a scenario in the corpus format, to replay with
``bpfmap conformance --corpus FILE``.

The seeds are fixed, so a run is the same every time:

    BPFMAP_SEED=<n>          run this seed instead (``--random N --seed n`` replays it too)
    BPFMAP_RANDOM_OPS=<n>    operations per seed (default 1500)
"""

from __future__ import annotations

import os
import platform

import pytest

from bpfmap.conformance import Divergence, RandomRun, dump_topic

SEEDS = [int(os.environ["BPFMAP_SEED"])] if "BPFMAP_SEED" in os.environ else [1, 2, 3]
OPS = int(os.environ.get("BPFMAP_RANDOM_OPS", "1500"))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_differential(seed: int, kernel: None) -> None:
    run = RandomRun(seed, OPS, platform.release())
    try:
        stats = run.run()
    except Divergence as d:
        pytest.fail(
            f"seed {seed}: the emulation gave {d.emulated} at step {d.step}; replay with "
            f"bpfmap conformance --corpus FILE:\n{dump_topic(d.scenario)}"
        )
    print(f"seed {seed}: {stats}")
    assert stats["ops"] >= OPS
    # The run reached what it is meant to cover.
    assert stats["maps"] > 10 and stats["errors"] > OPS // 10
    drawn = set(run.counts)
    assert drawn >= {"create", "lookup", "update", "update_batch", "lookup_batch", "mmap"}
    assert drawn >= {"write", "read", "fork", "dup", "freeze", "get_next_key", "pin"}
