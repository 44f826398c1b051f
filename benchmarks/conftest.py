"""pytest-benchmark suite: the cases of ``bpfmap bench``, one test per operation and backend.

Full run:  python -m pytest benchmarks
Short run (CI): python -m pytest benchmarks --benchmark-disable -q   (each case once)

Kernel cases skip with the reason when this process cannot use bpf(); an
operation with no meaning for a backend skips with its own reason.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # idle BLAS threads would spin on 2 cores

from typing import Any

import pytest

import bpfmap
from bpfmap import bench

KERNEL_UNAVAILABLE = bpfmap.kernel_unavailable_reason()
_ALL = bench.cases(full=False, kernel_reason=KERNEL_UNAVAILABLE)


def cases(*groups: str) -> list[Any]:
    """pytest params for the catalogue's cases of ``groups``, named after the case."""
    return [pytest.param(c, id=c.id) for c in _ALL if c.group in groups]


def run_case(benchmark: Any, case: bench.Case, *, rounds: int = 0) -> object:
    """Set the case up, benchmark one operation of it, tear it down; return its last result."""
    if case.skip or case.setup is None:
        pytest.skip(case.skip or "no setup")
    try:
        prepared = case.setup()
    except bench.Skip as exc:  # the case found at setup that it cannot run here
        pytest.skip(str(exc))
    try:
        benchmark.group = case.label
        benchmark.extra_info.update(backend=case.backend, note=case.note, **case.params)
        if rounds:
            return benchmark.pedantic(prepared.once, rounds=rounds, iterations=1)
        return benchmark(prepared.once)
    finally:
        prepared.cleanup()
