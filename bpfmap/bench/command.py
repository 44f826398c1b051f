"""``bpfmap bench``'s command line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence

from .. import kernel_available
from .cases import cases
from .core import Case
from .plot import plot
from .report import freeze_check, markdown, skipped_lines, table, targets, to_json
from .runner import Progress, run_cases


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bpfmap bench",
        description="Benchmark the emulated and kernel backends against each other and "
        "multiprocessing.shared_memory: a median ns/op table with the ratio to the kernel "
        "syscall path, and the project's performance targets.",
    )
    p.add_argument(
        "--full", action="store_true", help="every case, more repeats, longer runs (minutes)"
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        nargs="?",
        const="-",
        help="write the results as JSON to FILE (or stdout with no FILE)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the results with matplotlib (pip install bpfmap[plot])",
    )
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument(
        "-k",
        "--filter",
        metavar="TEXT",
        action="append",
        default=[],
        help="only cases whose name contains TEXT (repeatable)",
    )
    p.add_argument("--repeats", type=int, help="repeats per case (default: 5, --full: 9)")
    p.add_argument(
        "--min-time", type=float, help="seconds per repeat (default: 0.005, --full: 0.05)"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p


def _selected(all_cases: Sequence[Case], filters: Sequence[str]) -> Iterator[Case]:
    for c in all_cases:
        if not filters or any(f in c.id for f in filters):
            yield c


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # idle BLAS threads spin on 2 cores
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "bpfmap bench: --plot needs matplotlib: pip install 'bpfmap[plot]'", file=sys.stderr
            )
            return 2
    reason = kernel_available()
    all_cases = list(_selected(cases(args.full, reason), args.filter))
    if args.list:
        for c in all_cases:
            print(c.id + (f"  (skip: {c.skip})" if c.skip else ""))
        return 0
    repeats = args.repeats or (9 if args.full else 5)
    target_ns = int((args.min_time or (0.05 if args.full else 0.005)) * 1e9)
    started = time.time()
    results = run_cases(all_cases, repeats, target_ns, Progress(len(all_cases)))
    tgts = targets(results)
    meta = {
        "mode": "full" if args.full else "quick",
        "repeats": repeats,
        "min_time_s": target_ns / 1e9,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "kernel_backend": reason or "available",
        "seconds": round(time.time() - started, 1),
        "freeze_check": freeze_check(),
    }
    if args.json == "-":
        json.dump(to_json(results, tgts, meta), sys.stdout, indent=1)
        print()
    else:
        print(markdown(results) if args.markdown else table(results))
        print()
        print("(x) = kernel syscall ns / this ns: above 1 is faster than the kernel syscall path")
        print(
            f"mode {meta['mode']}: median of {repeats} repeats of >= {target_ns / 1e6:g} ms,"
            f" {meta['seconds']} s in all"
        )
        print()
        print("targets (ratios from this run):")
        for t in tgts:
            print("  " + t.line())
        print(f"  freeze after fast-path updates: {meta['freeze_check']}")
        for line in skipped_lines(results):
            print(line)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(to_json(results, tgts, meta), f, indent=1)
            print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr if args.json == "-" else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
