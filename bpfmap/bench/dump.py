"""``map dump`` against bpftool's: the whole command, as a user runs it, on a large map.

A map of ``entries`` 8-byte values (every value set) is pinned (kernel: on bpffs; emulated:
in a temporary folder) and dumped by ``python -m bpfmap map dump pinned PATH [MODE]`` and by
``bpftool map dump pinned PATH [MODE]``, output to ``/dev/null``; one operation is one whole
dump, interpreter start included (what a user waits for). On the kernel map the two outputs
are compared byte for byte first. Plain, ``-j`` and ``-p`` with ``--full``; ``-j`` (the mode
that was quadratic) otherwise.
"""

from __future__ import annotations

import array
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial

from .. import BPF_F_MMAPABLE, ArrayMap
from .core import Case, Prepared, Result

MODES = {"plain": [], "-j": ["-j"], "-p": ["-p"]}
TOOLS = ("bpftool", "dump-kernel", "dump-emulated")
TITLES = {"bpftool": "bpftool", "dump-kernel": "bpfmap kernel", "dump-emulated": "bpfmap emulated"}
REPEATS = 3  # a dump of 100,000 entries takes about a second: a few are enough


def _command(tool: str, path: str, mode: str) -> list[str]:
    if tool == "bpftool":
        return ["bpftool", "map", "dump", "pinned", path, *MODES[mode]]
    return [sys.executable, "-m", "bpfmap", "map", "dump", "pinned", path, *MODES[mode]]


def _filled(backend: str, entries: int) -> ArrayMap:
    m = ArrayMap(8, entries, flags=BPF_F_MMAPABLE, name="bpfmap_bench", backend=backend)
    try:
        keys = array.array("I", range(entries))
        values = array.array("Q", (k * 0x0101010101 for k in range(entries)))
        m.update_batch(keys, values)
    except BaseException:
        m.close()
        raise
    return m


def dump_case(tool: str, mode: str, entries: int) -> Prepared:
    backend = "emulated" if tool == "dump-emulated" else "kernel"
    m = _filled(backend, entries)
    folder = tempfile.mkdtemp(prefix="bpfmap-bench-dump-")
    if backend == "kernel":
        path = f"/sys/fs/bpf/bpfmap_bench_dump_{os.getpid()}_{tool.replace('-', '_')}"
    else:
        path = os.path.join(folder, "map")

    def cleanup() -> None:
        m.close()
        if os.path.lexists(path):
            os.unlink(path)
        shutil.rmtree(folder, ignore_errors=True)

    try:
        m.pin(path)
        cmd = _command(tool, path, mode)
        if tool == "dump-kernel" and shutil.which("bpftool"):
            mine = subprocess.run(cmd, capture_output=True, check=True).stdout
            theirs = subprocess.run(_command("bpftool", path, mode), capture_output=True).stdout
            if mine != theirs:
                raise RuntimeError(f"map dump {mode}: bpfmap's output differs from bpftool's")
    except BaseException:
        cleanup()
        raise

    def run(loops: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter_ns() - t0

    return Prepared(run, partial(run, 1), cleanup, repeats=REPEATS)


def dump_cases(full: bool, kernel_reason: str | None) -> list[Case]:
    entries = 100_000 if full else 10_000
    out = []
    for mode in MODES if full else ("-j",):
        for tool in TOOLS:
            skip = None
            if tool != "dump-emulated" and kernel_reason:
                skip = f"kernel backend unavailable: {kernel_reason}"
            elif tool == "bpftool" and shutil.which("bpftool") is None:
                skip = "bpftool is not installed (Debian: bpftool)"
            setup = None if skip else partial(dump_case, tool, mode, entries)
            out.append(
                Case(
                    "dump",
                    f"map dump {mode}",
                    tool,
                    {"entries": entries},
                    setup,
                    skip,
                    "one whole command, interpreter start included",
                )
            )
    return out


def table(results: Sequence[Result]) -> str:
    """Per mode: each tool's time for one dump, ns per element, and bpfmap / bpftool."""
    from .report import fmt_ns

    mine = [r for r in results if r.case.group == "dump"]
    if not mine:
        return ""
    by = {(r.case.label, r.case.backend): r for r in mine}
    labels = list(dict.fromkeys(r.case.label for r in mine))
    head = f"{'command':<32}" + "".join(f"  {TITLES[t]:>30}" for t in TOOLS)
    lines = [head, "-" * len(head)]
    for label in labels:
        base = by.get((label, "bpftool"))
        cells = []
        for t in TOOLS:
            r = by.get((label, t))
            if r is None or r.ns_per_op is None:
                cells.append(f"  {'' if r is None else 'skip':>30}")
                continue
            n = r.case.params["entries"]
            text = f"{fmt_ns(r.ns_per_op)} ({r.ns_per_op / n:.0f} ns/elem"
            if t != "bpftool" and base is not None and base.ns_per_op:
                text += f", {r.ns_per_op / base.ns_per_op:.1f}x bpftool"
            cells.append(f"  {text + ')':>30}")
        lines.append(f"{label:<32}" + "".join(cells))
    return "\n".join(lines)
