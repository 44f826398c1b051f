"""lookup_batch, lookup_batch_into and update_batch of 1, 64, 4096 and 1M 8-byte values (mmap and
shared_memory: a copy of the same bytes out of or into the mapping)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import Batch, BatchCount, bench


@pytest.mark.parametrize("case", cases("batch"))
def test_batch(benchmark: Any, case: bench.Case) -> None:
    result = run_case(benchmark, case)
    count = case.params["values"]
    if case.op == "lookup_batch_into":
        if isinstance(result, BatchCount):
            assert result.copied == count and result.out_batch == count - 1
    elif case.op == "lookup_batch":
        if isinstance(result, Batch):
            assert len(result.keys) == count and result.keys[-1] == count - 1
            result = result.values
        assert len(result) == 8 * count  # type: ignore[arg-type]
    elif case.backend in ("emulated", "kernel"):
        assert result == count
