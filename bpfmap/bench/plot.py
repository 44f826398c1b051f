"""``--plot``: the results drawn with matplotlib (optional: ``pip install bpfmap[plot]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import BACKEND_TITLES, BACKENDS, Result


def plot(results: Sequence[Result], path: str, scale: dict[str, Any] | None = None) -> None:
    """ns/op per operation and backend (log scale), and cost against value_size and max_entries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if scale and not any(r.case.backend in BACKENDS for r in results):
        _plot_scale(scale, path, beside=False)  # --scale: the scale figure is the plot
        return

    colors = {
        "emulated": "tab:blue",
        "kernel": "tab:red",
        "kernel-mmap": "tab:orange",
        "mmap": "tab:gray",
        "shared_memory": "tab:green",
        "reference": "black",
    }
    fig = plt.figure(figsize=(15, 13))
    grid = fig.add_gridspec(2, 2, height_ratios=[2.2, 1])
    ax = fig.add_subplot(grid[0, :])
    bars = [
        r
        for r in results
        if r.ns_per_op is not None and r.case.group != "value_size" and r.case.backend in BACKENDS
    ]
    labels: list[str] = []
    for r in bars:
        if r.case.label not in labels:
            labels.append(r.case.label)
    backends = [b for b in BACKENDS if any(r.case.backend == b for r in bars)]
    width = 0.8 / max(len(backends), 1)
    for i, b in enumerate(backends):
        xs: list[float] = []
        ys: list[float] = []
        for r in bars:
            if r.case.backend == b and r.ns_per_op is not None:
                xs.append(labels.index(r.case.label) + (i - (len(backends) - 1) / 2) * width)
                ys.append(r.ns_per_op)
        ax.bar(xs, ys, width, label=BACKEND_TITLES[b], color=colors[b])
    ax.set_yscale("log")
    ax.set_ylabel("ns per operation (median, log scale)")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("bpfmap: cost per operation and backend")
    ax.grid(axis="y", which="both", alpha=0.3)

    for col, (ops, param, title) in enumerate(
        (
            (("lookup", "update"), "value_size", "lookup / update against value_size"),
            (("create+mmap+freeze+close", "lookup_batch"), None, "cost against max_entries"),
        )
    ):
        sub = fig.add_subplot(grid[1, col])
        for op in ops:
            for b in BACKENDS:
                pts = []
                for r in results:
                    c = r.case
                    if c.op != op or c.backend != b or r.ns_per_op is None:
                        continue
                    x = (
                        c.params.get(param)
                        if param
                        else c.params.get("max_entries", c.params.get("values"))
                    )
                    if x is not None:
                        pts.append((x, r.ns_per_op))
                if len(pts) > 1:
                    pts.sort()
                    style = "-o" if op in ("lookup", "create+mmap+freeze+close") else "--s"
                    sub.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        style,
                        color=colors[b],
                        label=f"{op} ({BACKEND_TITLES[b]})",
                        markersize=4,
                    )
        sub.set_xscale("log", base=2)
        sub.set_yscale("log")
        sub.set_xlabel(param or "max_entries (lookup_batch: all of them)")
        sub.set_ylabel("ns per operation")
        sub.set_title(title)
        sub.grid(which="both", alpha=0.3)
        sub.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if scale:
        _plot_scale(scale, path)


def _plot_scale(scale: dict[str, Any], path: str, beside: bool = True) -> None:
    """Fill and create against max_entries, and N processes: beside ``path``
    (``NAME-scale.png``), or at ``path`` itself when there is nothing else to draw."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    styles = {"emulated": "-o", "kernel": "--s"}
    for key, ax, title in (
        ("fill_ns_per_entry", axes[0], "first fill: ns per entry"),
        ("create_ns", axes[1], "create: ns"),
    ):
        series: dict[tuple[str, int], list[tuple[int, float]]] = {}
        for c in scale["sizes"]:
            series.setdefault((c["backend"], c["value_size"]), []).append(
                (c["max_entries"], c[key])
            )
        for (backend, vs), pts in series.items():
            if len(pts) > 1:
                ax.plot(*zip(*sorted(pts)), styles[backend], label=f"{backend} {vs} B", ms=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("max_entries")
        ax.set_title(title)
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[2]
    lines: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for c in scale["processes"]:
        lines.setdefault((c["backend"], c["op"], c["maps"]), []).append(
            (c["processes"], c["ops_per_s"] / 1e6)
        )
    for (backend, op, maps), pts in lines.items():
        style = styles[backend] if maps == "one shared" else styles[backend].replace("o", "x")
        ax.plot(*zip(*sorted(pts)), style, label=f"{backend} {op}, {maps}", ms=4)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("processes")
    ax.set_ylabel("M operations/s, all processes")
    ax.set_title(f"N processes ({scale['cpus']} CPUs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    stem, dot, ext = path.rpartition(".")
    if beside:
        path = f"{stem}-scale.{ext}" if dot else f"{path}-scale"
    fig.savefig(path, dpi=110)
    plt.close(fig)
