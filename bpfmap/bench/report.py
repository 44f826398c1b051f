"""The report: one row per operation and one column per backend, the targets as ratios of
this run, the skipped cases with their reasons, and the JSON form of all of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import BPF_F_MMAPABLE, ArrayMap
from .cases import REGION_STYLES
from .core import (
    BACKEND_TITLES,
    BACKENDS,
    ELEMENT_VALUE_SIZE,
    TARGET_BATCH_VS_MEMCPY,
    TARGET_KERNEL_VS_BARE,
    TARGET_LOOKUP_VS_KERNEL,
    TARGET_LOOKUP_VS_NOOP,
    TARGET_REGION_VS_MMAP,
    TARGET_UPDATE_VS_KERNEL,
    Result,
)
from .peers import BARE, PEER_TITLES


def find(results: Sequence[Result], op: str, backend: str, **params: int) -> float | None:
    for r in results:
        c = r.case
        if (
            c.op == op
            and c.backend == backend
            and all(c.params.get(k) == v for k, v in params.items())
        ):
            return r.ns_per_op
    return None


def ratio_of(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def freeze_check() -> str:
    """Freeze stays exact after updates: succeeds, then update is EPERM."""
    m = ArrayMap(8, 4, flags=BPF_F_MMAPABLE)
    try:
        m.update(1, b"\x01" * 8)
        r = m.mmap(writable=True)
        try:
            m.freeze()
            return "FAILED: freeze succeeded with a writable mapping"
        except OSError as exc:
            if exc.errno != 16:
                return f"FAILED: freeze with a writable mapping gave errno {exc.errno}"
        finally:
            r.close()
        m.freeze()
        try:
            m.update(1, b"\x02" * 8)
            return "FAILED: update after freeze succeeded"
        except OSError as exc:
            if exc.errno != 1:
                return f"FAILED: update after freeze gave errno {exc.errno}"
        if m.lookup(1) != b"\x01" * 8:
            return "FAILED: value changed"
        return "ok (EBUSY with a writable mapping, then frozen; update after freeze: EPERM)"
    finally:
        m.close()


@dataclass
class Target:
    name: str
    value: float | None
    goal: float
    higher_is_better: bool
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def line(self) -> str:
        cmp = ">=" if self.higher_is_better else "<="
        status = {None: "skipped", True: "met", False: "MISSED"}[self.met]
        value = "n/a" if self.value is None else f"{self.value:.2f}"
        detail = f"  {self.detail}" if self.detail else ""
        return f"{self.name:<58} {value:>7} (target {cmp} {self.goal:g})  {status}{detail}"


def targets(results: Sequence[Result]) -> list[Target]:
    vs = {"value_size": ELEMENT_VALUE_SIZE}
    elook, klook = (
        find(results, "lookup", "emulated", **vs),
        find(results, "lookup", "kernel", **vs),
    )
    eupd, kupd = (
        find(results, "update", "emulated", **vs),
        find(results, "update", "kernel", **vs),
    )
    noop = find(results, "noop cffi call", "reference")
    memcpy = find(results, "memcpy (NumPy copy)", "reference")
    out = [
        Target(
            "lookup: kernel / emulated (x faster)",
            ratio_of(klook, elook),
            TARGET_LOOKUP_VS_KERNEL,
            True,
        ),
        Target(
            "lookup: emulated / no-op cffi call",
            ratio_of(elook, noop),
            TARGET_LOOKUP_VS_NOOP,
            False,
        ),
        Target(
            "update: kernel / emulated (x faster)",
            ratio_of(kupd, eupd),
            TARGET_UPDATE_VS_KERNEL,
            True,
        ),
    ]
    for style in REGION_STYLES:
        for rw in ("read", "write"):
            op = f"region {style} {rw}"
            ref = find(results, op, "mmap")
            for be in ("kernel-mmap", "emulated"):
                out.append(
                    Target(
                        f"{op}: {be} region / Python mmap",
                        ratio_of(find(results, op, be), ref),
                        TARGET_REGION_VS_MMAP,
                        False,
                    )
                )
    for op in ("lookup", "lookup_into", "update"):
        bare = [(v, p) for p in BARE if (v := find(results, op, p, **vs)) is not None]
        best = min(bare) if bare else None
        out.append(
            Target(
                f"{op}: kernel backend / fastest bare cffi route",
                ratio_of(find(results, op, "kernel", **vs), best[0] if best else None),
                TARGET_KERNEL_VS_BARE,
                False,
                f"({PEER_TITLES[best[1]]})" if best else "",
            )
        )
    for op in ("lookup_batch", "lookup_batch_into", "update_batch"):
        ratio = ratio_of(memcpy, find(results, op, "emulated", values=1 << 20))
        # A lookup batch also writes 1M 4-byte keys: 12 MiB moved for 8 MiB of values.
        detail = (
            f"({ratio * 1.5:.2f} counting the 4 MiB of keys it writes)"
            if ratio is not None and op != "update_batch"
            else ""
        )
        out.append(
            Target(
                f"{op} 1M x 8 B: memcpy time / emulated time",
                ratio,
                TARGET_BATCH_VS_MEMCPY,
                True,
                detail,
            )
        )
    return out


def _grid(results: Sequence[Result]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The backends used, and per operation one cell per backend: "ns (kernel ns / ns)"."""
    rows: dict[str, dict[str, Result]] = {}
    for r in results:
        if r.case.backend in BACKENDS:  # the peers, programs, dumps have tables of their own
            rows.setdefault(r.case.label, {})[r.case.backend] = r
    used = [b for b in BACKENDS if any(b in cols for cols in rows.values())]
    grid = []
    for label, cols in rows.items():
        kernel = cols.get("kernel")
        cells = []
        for b in used:
            res = cols.get(b)
            if res is None:
                cells.append("")
            elif res.ns_per_op is None:
                cells.append("skip")
            else:
                ratio = ratio_of(kernel.ns_per_op if kernel else None, res.ns_per_op)
                extra = f" ({times(ratio)})" if ratio is not None and b != "kernel" else ""
                cells.append(fmt_ns(res.ns_per_op) + extra)
        grid.append((label, cells))
    return used, grid


def table(results: Sequence[Result]) -> str:
    """One row per operation, one column per backend: median ns/op (kernel syscall ns / this)."""
    used, grid = _grid(results)
    titles = [BACKEND_TITLES[b] for b in used]
    first = max([len("operation")] + [len(label) for label, _ in grid])
    widths = [max([len(t)] + [len(cells[i]) for _, cells in grid]) for i, t in enumerate(titles)]
    head = f"{'operation':<{first}}" + "".join(f"  {t:>{w}}" for t, w in zip(titles, widths))
    lines = [head, "-" * len(head)]
    lines += [
        f"{label:<{first}}" + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths))
        for label, cells in grid
    ]
    return "\n".join(lines)


def markdown(results: Sequence[Result]) -> str:
    """The same table in Markdown."""
    used, grid = _grid(results)
    lines = [
        "| operation | " + " | ".join(BACKEND_TITLES[b] for b in used) + " |",
        "|---" * (len(used) + 1) + "|",
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in grid]
    return "\n".join(lines)


def times(ratio: float) -> str:
    """A ratio as "12.4x", "172x" or "0.52x": three significant digits, never an exponent."""
    if ratio >= 100:
        return f"{ratio:.0f}x"
    return f"{ratio:.3g}x" if ratio >= 1 else f"{ratio:.2f}x"


def fmt_ns(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.3g} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.3g} us"
    return f"{ns:.0f} ns"


def skipped_lines(results: Sequence[Result]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for r in results:
        if r.skipped:
            seen.setdefault(r.skipped, []).append(r.case.id)
    return [f"skipped {len(ids)} case(s): {reason} (e.g. {ids[0]})" for reason, ids in seen.items()]


def to_json(
    results: Sequence[Result], tgts: Sequence[Target], meta: dict[str, Any]
) -> dict[str, Any]:
    return {
        "meta": meta,
        "results": [
            {
                "group": r.case.group,
                "op": r.case.op,
                "backend": r.case.backend,
                "params": r.case.params,
                "label": r.case.label,
                "note": r.case.note,
                "ns_per_op": r.ns_per_op,
                "repeats_ns_per_op": r.repeats,
                "loops": r.loops,
                "skipped": r.skipped,
            }
            for r in results
        ],
        "targets": [
            {
                "name": t.name,
                "value": t.value,
                "goal": t.goal,
                "higher_is_better": t.higher_is_better,
                "met": t.met,
            }
            for t in tgts
        ],
    }
