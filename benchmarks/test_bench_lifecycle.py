"""A whole map's life: create, mmap (read-only), freeze, close; for 1, 4K and 1M entries."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import bench


@pytest.mark.parametrize("case", cases("cycle"))
def test_cycle(benchmark: Any, case: bench.Case) -> None:
    run_case(benchmark, case)
