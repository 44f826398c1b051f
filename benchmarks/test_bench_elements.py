"""lookup, lookup_into and update of one element, and how they grow with value_size;
plus the references they are measured against (a no-op cffi call, a NumPy copy)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import bench


@pytest.mark.parametrize("case", cases("reference"))
def test_reference(benchmark: Any, case: bench.Case) -> None:
    run_case(benchmark, case)


@pytest.mark.parametrize("case", cases("elements", "value_size"))
def test_element(benchmark: Any, case: bench.Case) -> None:
    result = run_case(benchmark, case)
    if case.op == "lookup":
        assert bytes(result) == b"\x5a" * case.params["value_size"]  # type: ignore[call-overload]
