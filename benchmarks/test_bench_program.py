"""The program side: XDP programs of bpfmap/bpf/bench.bpf.o making 100 map accesses a run
(a .bss global, bpf_map_lookup_elem, bpf_map_update_elem), one test_run each; the emulated
backend's rows skip with test_run's own reason until programs run there."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import bench


@pytest.mark.parametrize("case", cases("program"))
def test_program(benchmark: Any, case: bench.Case) -> None:
    result = run_case(benchmark, case)
    assert result.retval == 2  # type: ignore[attr-defined]  # XDP_PASS
