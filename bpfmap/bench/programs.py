"""The program side: a BPF program's own map accesses, beside bpfmap's Python paths.

``bpfmap/bpf/bench.bpf.o`` (built from ``bench.bpf.c``) has four XDP programs: ``empty``,
and three that each make :data:`ACCESSES` accesses to a map value: ``global_increment``
(a ``.bss`` global, a direct load and store), ``lookup_increment`` (``bpf_map_lookup_elem``
then an increment through the pointer) and ``update_helper`` (``bpf_map_update_elem``).
One access costs ``(test_run(repeat=N).duration_ns - empty's) / ACCESSES``: the kernel times
the N runs itself (``BPF_PROG_TEST_RUN``), and the empty program's time takes away what
every run pays (the context, the dispatch).

Backends: ``kernel-prog`` (the kernel's JIT, through :class:`bpfmap.BpfObject` with
``backend="kernel"``) and ``vm-prog`` (the emulated backend's :meth:`Program.test_run`, an
interpreter; skipped with its own message while that raises ``NotImplementedError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .core import Case, Prepared, Result, Skip

ACCESSES = 100  # what bench.bpf.c's ACCESSES is
OBJECT = Path(__file__).resolve().parent.parent / "bpf" / "bench.bpf.o"
PACKET = bytes(64)  # an Ethernet frame's worth: XDP test runs refuse less than ETH_HLEN
PROGRAMS = {
    "global_increment": ".bss global += 1 (direct load/store)",
    "lookup_increment": "bpf_map_lookup_elem + increment",
    "update_helper": "bpf_map_update_elem",
}
BACKEND_OF = {"kernel-prog": "kernel", "vm-prog": "emulated"}
TITLES = {"kernel-prog": "kernel program (JIT)", "vm-prog": "emulated (interpreter)"}
#: the Python rows shown beside each program row: (op, backend) of the main table
PYTHON_ROWS = {
    "global_increment": (("region numpy write", "kernel-mmap"), ("region numpy write", "emulated")),
    "lookup_increment": (("lookup", "kernel"), ("lookup", "emulated")),
    "update_helper": (("update", "kernel"), ("update", "emulated")),
}


def program_case(backend: str, name: str) -> Prepared:
    """Load the bench object on ``backend``; one operation is one access of ``name``."""
    from .. import BpfObject

    obj = BpfObject.open(str(OBJECT), backend=BACKEND_OF[backend])
    try:
        obj.load()
        prog, empty = obj.programs[name], obj.programs["empty"]
        try:
            before = obj.bss.counter
            prog.test_run(PACKET)
        except NotImplementedError as exc:  # the hook for an interpreter: until it runs
            raise Skip(str(exc)) from None
        if name == "global_increment" and obj.bss.counter - before != ACCESSES:
            raise RuntimeError(f"{name}: counter moved by {obj.bss.counter - before}")
    except BaseException:
        obj.close()
        raise

    def run(loops: int) -> int:
        ran = prog.test_run(PACKET, repeat=loops).duration_ns
        base = empty.test_run(PACKET, repeat=loops).duration_ns
        # At least 1 ns a run, so that calibration ends even if noise hides the accesses.
        return max(ran - base, 1) * loops

    def once() -> Any:
        return prog.test_run(PACKET)

    return Prepared(run, once, obj.close, ops=ACCESSES)


def program_cases(kernel_reason: str | None) -> list[Case]:
    out = []
    for name, what in PROGRAMS.items():
        for backend in BACKEND_OF:
            skip = None
            if backend == "kernel-prog" and kernel_reason:
                skip = f"kernel backend unavailable: {kernel_reason}"
            if not OBJECT.exists():
                skip = f"{OBJECT} is missing (build it with clang from bench.bpf.c)"
            setup = None if skip else partial(program_case, backend, name)
            note = f"{what}, per access ({ACCESSES} a run, the empty program's time taken away)"
            out.append(Case("program", name, backend, {}, setup, skip, note))
    return out


def table(results: Sequence[Result]) -> str:
    """ns per access: the program on each backend, and the same access made from Python."""
    from .report import fmt_ns

    mine = [r for r in results if r.case.group == "program"]
    if not mine:
        return ""
    by = {(r.case.op, r.case.backend): r for r in mine}
    lines = []
    head = f"{'program (ns per access)':<52}"
    head += "".join(f"  {TITLES[b]:>22}" for b in BACKEND_OF) + "  the same access from Python"
    lines += [head, "-" * len(head)]
    for name, what in PROGRAMS.items():
        cells = []
        for b in BACKEND_OF:
            r = by.get((name, b))
            cell = "" if r is None else ("skip" if r.ns_per_op is None else _fine(r.ns_per_op))
            cells.append(f"  {cell:>22}")
        py = []
        for op, be in PYTHON_ROWS[name]:
            ns = next(
                (
                    r.ns_per_op
                    for r in results
                    if r.case.op == op
                    and r.case.backend == be
                    and r.case.params.get("value_size", 8) == 8
                    and r.ns_per_op is not None
                ),
                None,
            )
            if ns is not None:
                py.append(f"{op} [{be}] {fmt_ns(ns)}")
        lines.append(f"{name + ': ' + what:<52}" + "".join(cells) + "  " + "; ".join(py))
    return "\n".join(lines)


def _fine(ns: float) -> str:
    return f"{ns:.2f} ns" if ns < 100 else f"{ns:.0f} ns"
