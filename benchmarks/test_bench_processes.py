"""A writer process feeding a reader process through one map: a 64-slot ring with
head and tail counters in the map itself, both sides polling (no sleeps); the
reader checks every value. One round is 1000 messages."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import bench


@pytest.mark.parametrize("case", cases("stream"))
def test_writer_to_reader(benchmark: Any, case: bench.Case) -> None:
    run_case(benchmark, case, rounds=5)
