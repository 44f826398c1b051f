"""The program side: a BPF program's own map accesses, beside bpfmap's Python paths.

``bpfmap/bpf/bench.bpf.o`` (built from ``bench.bpf.c``) has four XDP programs: ``empty``,
and three that each make :data:`ACCESSES` accesses to a map value: ``global_increment``
(a ``.bss`` global, a direct load and store), ``lookup_increment`` (``bpf_map_lookup_elem``
then an increment through the pointer) and ``update_helper`` (``bpf_map_update_elem``).
One access costs ``(test_run(repeat=N).duration_ns - empty's) / ACCESSES``: the kernel times
the N runs itself (``BPF_PROG_TEST_RUN``), and the empty program's time takes away what
every run pays (the context, the dispatch).

Backends: ``kernel-prog`` (the kernel's JIT, through :class:`bpfmap.BpfObject` with
``backend="kernel"``) and ``vm-prog`` (the emulated backend's :meth:`Program.test_run`: bpfmap's
eBPF interpreter, against the object's emulated maps, in the same run).

The ``alu_loop`` row is the interpreter's ns per instruction beside the JIT's: an ALU loop
(:func:`bpfmap._vm_bench.alu_loop`, 6 instructions an iteration) timed on both
(:class:`bpfmap._vm_bench.InsnLoop`), one operation an executed instruction. The table gives
each row's ratio, interpreter / JIT.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .core import Case, Prepared, Result

ACCESSES = 100  # what bench.bpf.c's ACCESSES is
OBJECT = Path(__file__).resolve().parent.parent / "bpf" / "bench.bpf.o"
PACKET = bytes(64)  # an Ethernet frame's worth: XDP test runs refuse less than ETH_HLEN
INSN_LOOP = "alu_loop"
INSN_NOTE = "an ALU loop, per instruction executed"
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
        before = obj.bss.counter
        prog.test_run(PACKET)
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


def insn_case(backend: str) -> Prepared:
    """The ALU loop on ``backend``; one operation is one executed instruction."""
    from .._vm_bench import InsnLoop

    loop = InsnLoop(BACKEND_OF[backend])
    return Prepared(loop.run, lambda: loop.run(1), loop.close, ops=loop.executed)


def program_cases(kernel_reason: str | None) -> list[Case]:
    out = []
    for backend in BACKEND_OF:
        skip = None
        if backend == "kernel-prog" and kernel_reason:
            skip = f"kernel backend unavailable: {kernel_reason}"
        setup = None if skip else partial(insn_case, backend)
        out.append(Case("program", INSN_LOOP, backend, {}, setup, skip, INSN_NOTE))
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
    head = f"{'program (ns per access; alu_loop: per instruction)':<52}"
    head += "".join(f"  {TITLES[b]:>22}" for b in BACKEND_OF)
    head += f"  {'interpreter/JIT':>15}  the same access from Python"
    lines += [head, "-" * len(head)]
    for name, what in {INSN_LOOP: INSN_NOTE, **PROGRAMS}.items():
        if not any((name, b) in by for b in BACKEND_OF):
            continue
        cells = []
        for b in BACKEND_OF:
            r = by.get((name, b))
            cell = "" if r is None else ("skip" if r.ns_per_op is None else _fine(r.ns_per_op))
            cells.append(f"  {cell:>22}")
        ratio = interpreter_ratio(results, name)
        cells.append(f"  {'' if ratio is None else f'x{ratio:.1f}':>15}")
        py = []
        for op, be in PYTHON_ROWS.get(name, ()):
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
        row = f"{name + ': ' + what:<52}" + "".join(cells) + "  " + "; ".join(py)
        lines.append(row.rstrip())
    return "\n".join(lines)


def interpreter_ratio(results: Sequence[Result], name: str) -> float | None:
    """How many times the JIT's time the interpreter takes for row ``name`` (None: a side is
    missing or skipped)."""
    ns = {r.case.backend: r.ns_per_op for r in results
          if r.case.group == "program" and r.case.op == name}
    vm, jit = ns.get("vm-prog"), ns.get("kernel-prog")
    return None if vm is None or not jit else vm / jit


def interpreter_json(results: Sequence[Result]) -> dict[str, dict[str, float | None]]:
    """Each row's interpreter and JIT ns and their ratio, for ``bench --json``."""
    out: dict[str, dict[str, float | None]] = {}
    for name in (INSN_LOOP, *PROGRAMS):
        ns = {r.case.backend: r.ns_per_op for r in results
              if r.case.group == "program" and r.case.op == name}
        if ns:
            out[name] = {"interpreter_ns": ns.get("vm-prog"), "jit_ns": ns.get("kernel-prog"),
                         "ratio": interpreter_ratio(results, name)}
    return out


def _fine(ns: float) -> str:
    return f"{ns:.2f} ns" if ns < 100 else f"{ns:.0f} ns"
