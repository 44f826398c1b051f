"""``bpfmap bench --full`` (or ``--scale``): how the costs grow with the map, and with processes.

Sizes: ``max_entries`` 1e3..1e7 and ``value_size`` 8..4096 on both backends, every map
``BPF_F_MMAPABLE``, up to :data:`CAP` bytes of values per map (the larger ones are left out
and listed). For each: the time to create and to close a map, the first fill (one
``update_batch`` of every entry into a fresh map: ns per entry and GB/s), and the memory the
map holds after create and after the fill: the kernel's own charge (``memlock`` in
``/proc/self/fdinfo``) for a kernel map, the pages its memfd holds (``st_blocks``) for an
emulated one. Median of :data:`REPEATS` fresh maps.

Processes: N = 1, 2, 4, 8 forked processes each doing ``lookup`` (or ``update``) of its
own key (keys a cache line apart) for about :data:`SLICE_S` seconds of work, on one shared
map or on a map each; the aggregate throughput (the median of :data:`REPEATS` runs) says
what sharing costs. The machine's CPU count bounds what N processes can add.
"""

from __future__ import annotations

import array
import os
import statistics
import time
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import IO, Any

from .. import BPF_F_MMAPABLE, ArrayMap
from .core import start_workers

ENTRIES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
VALUE_SIZES = (8, 64, 512, 4096)
CAP = 512 << 20  # values per map: 1e7 x 4096 B would be 41 GB
REPEATS = 3
PROCESSES = (1, 2, 4, 8)
SLICE_S = 0.1  # the work of one process in the processes table
BACKENDS = ("emulated", "kernel")


def _new(backend: str, vs: int, n: int) -> ArrayMap:
    return ArrayMap(vs, n, flags=BPF_F_MMAPABLE, name="bpfmap_bench", backend=backend)


def memory(m: ArrayMap, backend: str) -> int:
    """What the map holds now: the kernel's memlock charge, or the memfd's pages."""
    if backend == "kernel":
        with open(f"/proc/self/fdinfo/{m.fd}") as f:
            for line in f:
                if line.startswith("memlock:"):
                    return int(line.split()[1])
        return 0
    return os.fstat(m.fd).st_blocks * 512


def size_cell(backend: str, vs: int, n: int) -> dict[str, Any]:
    """create, close, first fill and memory of ``REPEATS`` fresh maps (medians)."""
    keys = array.array("I", range(n))
    values = bytes(range(256)) * (n * vs // 256) + bytes(n * vs % 256)
    create, close, fill, mem_created, mem_filled = [], [], [], [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        m = _new(backend, vs, n)
        t1 = time.perf_counter_ns()
        try:
            mem_created.append(memory(m, backend))
            t2 = time.perf_counter_ns()
            m.update_batch(keys, values)
            t3 = time.perf_counter_ns()
            mem_filled.append(memory(m, backend))
        finally:
            t4 = time.perf_counter_ns()
            m.close()
            t5 = time.perf_counter_ns()
        create.append(t1 - t0)
        fill.append(t3 - t2)
        close.append(t5 - t4)
    med = statistics.median
    return {
        "backend": backend,
        "value_size": vs,
        "max_entries": n,
        "create_ns": med(create),
        "close_ns": med(close),
        "fill_ns": med(fill),
        "fill_ns_per_entry": med(fill) / n,
        "fill_gb_s": n * vs / med(fill),
        "memory_after_create": int(med(mem_created)),
        "memory_after_fill": int(med(mem_filled)),
    }


# -- N processes on one map -----------------------------------------------------------------


def _worker(m: ArrayMap, op: str, key: int, count: int, conn: Connection) -> None:
    value = b"\x5a" * m.value_size
    lookup, update = m.lookup, m.update
    conn.send("ready")
    conn.recv()
    t0 = time.perf_counter_ns()
    if op == "lookup":
        for _ in range(count):
            lookup(key)
    else:
        for _ in range(count):
            update(key, value)
    conn.send(time.perf_counter_ns() - t0)
    conn.close()


def _per_op(m: ArrayMap, op: str) -> float:
    value = b"\x5a" * m.value_size
    t0 = time.perf_counter_ns()
    for _ in range(2000):
        if op == "lookup":
            m.lookup(0)
        else:
            m.update(0, value)
    return (time.perf_counter_ns() - t0) / 2000


def process_cells(backend: str, op: str, procs: int) -> list[dict[str, Any]]:
    """One shared map and a map each, :data:`REPEATS` runs of each taken in turn (so that
    another job's load falls on both alike); the median run of each, by throughput."""
    runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for _ in range(REPEATS):
        for shared in (True, False):
            runs[shared].append(process_run(backend, op, procs, shared))
    out = []
    for shared in (True, False):
        ranked = sorted(runs[shared], key=lambda c: float(c["ops_per_s"]))
        out.append(ranked[len(ranked) // 2])
    return out


def process_run(backend: str, op: str, procs: int, shared: bool) -> dict[str, Any]:
    """``procs`` processes each doing ``op`` on its own key: aggregate operations per second."""
    ctx = get_context("fork")  # the children inherit the maps' descriptors
    maps = [_new(backend, 8, 8 * PROCESSES[-1]) for _ in range(1 if shared else procs)]
    try:
        count = max(1000, int(SLICE_S * 1e9 / _per_op(maps[0], op)))
        conns, workers = start_workers(
            ctx, _worker, [(maps[0 if shared else i], op, 8 * i, count) for i in range(procs)],
            "a worker")
        t0 = time.perf_counter_ns()
        for c in conns:
            c.send("go")
        busy = [int(c.recv()) for c in conns]
        wall = time.perf_counter_ns() - t0
        for w in workers:
            w.join(10)
        for c in conns:
            c.close()
    finally:
        for m in maps:
            m.close()
    return {
        "backend": backend,
        "op": op,
        "processes": procs,
        "maps": "one shared" if shared else "one each",
        "ops_per_process": count,
        "wall_ns": wall,
        "ops_per_s": procs * count * 1e9 / wall,
        "ns_per_op_in_process": statistics.median(busy) / count,
    }


# -- the run and its report ----------------------------------------------------------------


def run(kernel_reason: str | None, progress: IO[str] | None = None) -> dict[str, Any]:
    """Every size cell and process cell; kernel ones skipped (with why) without bpf()."""
    backends = [b for b in BACKENDS if b == "emulated" or not kernel_reason]
    sizes: list[dict[str, Any]] = []
    left_out = []
    for backend in backends:
        for vs in VALUE_SIZES:
            for n in ENTRIES:
                if n * vs > CAP:
                    left_out.append(f"{n:.0e} x {vs} B")
                    continue
                if progress:
                    print(f"scale: {backend} value_size={vs} max_entries={n}", file=progress)
                sizes.append(size_cell(backend, vs, n))
    processes = []
    for backend in backends:
        for op in ("lookup", "update"):
            for procs in PROCESSES:
                if progress:
                    print(f"scale: {backend} {op} x{procs} processes", file=progress)
                processes += process_cells(backend, op, procs)
    skipped = [] if not kernel_reason else [f"kernel backend unavailable: {kernel_reason}"]
    return {
        "sizes": sizes,
        "processes": processes,
        "left_out": sorted(set(left_out), key=left_out.index),
        "cap_bytes": CAP,
        "cpus": os.cpu_count(),
        "skipped": skipped,
    }


def _bytes(n: float) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{n:.0f} B"


def _time(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.3g} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e3:.3g} us"


def _grid(head: list[str], rows: list[list[str]], md: bool) -> list[str]:
    if md:
        out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        return out + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*head), "-" * (sum(widths) + 2 * len(widths) - 2)] + [
        fmt.format(*r) for r in rows
    ]


def text(report: dict[str, Any], md: bool = False) -> str:
    lines = ["scale: create, close, first fill (update_batch of every entry), memory:"]
    head = ["backend", "value_size", "max_entries", "create", "close", "first fill",
            "ns/entry", "GB/s", "memory after create", "after fill"]  # fmt: skip
    rows = [
        [
            c["backend"],
            str(c["value_size"]),
            f"{c['max_entries']:,}",
            _time(c["create_ns"]),
            _time(c["close_ns"]),
            _time(c["fill_ns"]),
            f"{c['fill_ns_per_entry']:.1f}",
            f"{c['fill_gb_s']:.2f}",
            _bytes(c["memory_after_create"]),
            _bytes(c["memory_after_fill"]),
        ]  # fmt: skip
        for c in report["sizes"]
    ]
    lines += _grid(head, rows, md)
    if report["left_out"]:
        lines.append(
            f"left out (over {_bytes(report['cap_bytes'])} of values): "
            + ", ".join(report["left_out"])
        )
    lines.append("")
    lines.append(
        f"scale: N processes, each its own key, on one shared map or a map each "
        f"({report['cpus']} CPUs here; aggregate operations per second):"
    )
    head = ["backend", "op", "maps", *(f"N={n}" for n in PROCESSES)]
    by: dict[tuple[str, str, str], dict[int, float]] = {}
    for c in report["processes"]:
        by.setdefault((c["backend"], c["op"], c["maps"]), {})[c["processes"]] = c["ops_per_s"]
    rows = []
    for (b, op, maps), cells in sorted(by.items(), key=lambda kv: kv[0][:2]):
        rows.append(
            [b, op, maps, *(f"{cells[n] / 1e6:.2f} M/s" if n in cells else "" for n in PROCESSES)]
        )
        own = by.get((b, op, "one each"), {})
        if maps == "one each":  # after both: shared / own, 1.00 when sharing costs nothing
            shared = by.get((b, op, "one shared"), {})
            rows.append(
                [b, op, "shared / own"]
                + [
                    f"{shared[n] / own[n]:.2f}" if n in shared and n in own else ""
                    for n in PROCESSES
                ]
            )
    lines += _grid(head, rows, md)
    lines += [f"skipped: {s}" for s in report["skipped"]]
    return "\n".join(lines)
