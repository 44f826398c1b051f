"""``bpfmap map dump`` of 1,000, 10,000 and 100,000 entries, in every output mode, on both
backends, run in-process (no interpreter start): the time per entry stays flat as the map
grows ten and a hundred times, which shows the dump is linear (it was quadratic in ``-j``:
an output buffer that re-joined everything on every write, waiting for a newline).
``ns_per_entry`` is in each benchmark's extra_info; compare the rows of one mode."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import KERNEL_UNAVAILABLE

from bpfmap import cli
from bpfmap.bench.dump import _filled

SIZES = (1_000, 10_000, 100_000)


@contextlib.contextmanager
def pinned(backend: str, entries: int) -> Iterator[str]:
    m = _filled(backend, entries)
    with tempfile.TemporaryDirectory(prefix="bpfmap-bench-dump-") as folder:
        if backend == "kernel":
            path = f"/sys/fs/bpf/bpfmap_bench_dump_{os.getpid()}_{entries}"
        else:
            path = os.path.join(folder, "map")
        try:
            m.pin(path)
            yield path
        finally:
            m.close()
            if os.path.lexists(path):
                os.unlink(path)


@pytest.mark.parametrize("entries", SIZES)
@pytest.mark.parametrize("mode", ["plain", "-j", "-p"])
@pytest.mark.parametrize("backend", ["emulated", "kernel"])
def test_map_dump(benchmark: Any, backend: str, mode: str, entries: int) -> None:
    if backend == "kernel" and KERNEL_UNAVAILABLE:
        pytest.skip(f"kernel backend unavailable: {KERNEL_UNAVAILABLE}")
    argv = ["map", "dump", "pinned", "PATH"] + ([] if mode == "plain" else [mode])
    with pinned(backend, entries) as path, open(os.devnull, "w") as devnull:
        argv[3] = path

        def dump() -> int:
            saved, sys.stdout = sys.stdout, devnull
            try:
                return cli.main(argv)
            finally:
                sys.stdout = saved

        benchmark.group = f"map dump {mode} [{backend}]"
        benchmark.extra_info.update(backend=backend, mode=mode, entries=entries)
        rc = benchmark.pedantic(dump, rounds=3 if entries < 100_000 else 1, iterations=1)
        assert rc == 0
        stats = getattr(benchmark, "stats", None)
        if stats is not None:
            benchmark.extra_info["ns_per_entry"] = stats.stats.median * 1e9 / entries
