"""The program side: XDP programs of bpfmap/bpf/bench.bpf.o making 100 map accesses a run
(a .bss global, bpf_map_lookup_elem, bpf_map_update_elem), one test_run each, on the kernel's
JIT and on bpfmap's interpreter; and an ALU loop timed per executed instruction."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import bench


@pytest.mark.parametrize("case", cases("program"))
def test_program(benchmark: Any, case: bench.Case) -> None:
    result = run_case(benchmark, case)
    if case.op == "alu_loop":
        assert isinstance(result, int) and result >= 0  # ns the loop took
    else:
        assert result.retval == 2  # type: ignore[attr-defined]  # XDP_PASS
