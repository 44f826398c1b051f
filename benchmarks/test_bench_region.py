"""Per-element reads and writes through a mapping: struct.unpack_from/pack_into,
memoryview slices, NumPy items; MapRegion against Python's own mmap of a kernel
map's fd and against multiprocessing.shared_memory."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import bench


@pytest.mark.parametrize("case", cases("region"))
def test_region(benchmark: Any, case: bench.Case) -> None:
    run_case(benchmark, case)
