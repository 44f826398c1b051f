"""The peers a user would pick instead of bpfmap for the kernel's map: bpfmap's C core and
libbpf called bare through cffi, a ctypes ``bpf()`` wrapper, pylibbpf, bpfmaps and bcc
(skipped with the reason when not installed); lookup, lookup_into and update of 8 bytes.
Compare each group with ``lookup value_size=8`` of test_bench_elements."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cases, run_case

from bpfmap import bench


@pytest.mark.parametrize("case", cases("peers"))
def test_peer(benchmark: Any, case: bench.Case) -> None:
    result = run_case(benchmark, case)
    if case.op == "lookup" and isinstance(result, bytes):
        assert result == b"\x5a" * 8
