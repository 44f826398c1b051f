"""``bpfmap bench``'s command line.

Every error is one line on stderr and a non-zero exit: a bad option value (``--repeats -1``,
``--min-time -1``), a ``-k`` that matches no case, a ``--json`` file that cannot be written
(checked before the run, not after it). A reader that goes away (``bench --list | head``) is
the command registry's quiet exit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from .. import kernel_unavailable_reason
from ..cli.common import EXIT_USAGE, OneLineParser
from . import dump, peers, programs
from .cases import cases
from .core import Case, Result
from .report import freeze_check, markdown, skipped_lines, table, targets, to_json
from .runner import Progress, run_cases


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 3600:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="bpfmap bench",
        description="Benchmark the emulated and kernel backends against each other, "
        "multiprocessing.shared_memory and the peers a user would pick instead (libbpf, "
        "ctypes, pylibbpf, bpfmaps, bcc): a median ns/op table with the ratio to the kernel "
        "syscall path, the program side, map dump against bpftool, and the project's "
        "performance targets.",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="every case, more repeats, longer runs, and the scale tables (minutes)",
    )
    p.add_argument(
        "--scale",
        action="store_true",
        help="only the scale tables (create, first fill, memory; N processes on one map)",
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
    p.add_argument("--repeats", type=_count, help="repeats per case (default: 5, --full: 9)")
    p.add_argument(
        "--min-time", type=_seconds, help="seconds per repeat (default: 0.005, --full: 0.05)"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p


def _selected(all_cases: Sequence[Case], filters: Sequence[str]) -> list[Case]:
    return [c for c in all_cases if not filters or any(f in c.id for f in filters)]


def _fail(message: str) -> int:
    print(f"bpfmap bench: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # idle BLAS threads spin on 2 cores
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _fail("--plot needs matplotlib: pip install 'bpfmap[plot]'")
    reason = kernel_unavailable_reason()
    all_cases = [] if args.scale else _selected(cases(args.full, reason), args.filter)
    if args.filter and not all_cases and not args.scale:
        wanted = " or ".join(repr(f) for f in args.filter)
        return _fail(f"no case matches -k {wanted} (see 'bpfmap bench --list')")
    if args.list:
        for c in all_cases:
            print(c.id + (f"  (skip: {c.skip})" if c.skip else ""))
        return 0
    json_file: IO[str] | None = None
    if args.json and args.json != "-":
        try:  # before the run: a path that cannot be written must not cost a whole run
            json_file = open(args.json, "w")  # noqa: SIM115 (closed below)
        except OSError as exc:
            return _fail(f"--json {args.json}: {exc.strerror or exc}")
    try:
        return _run(args, reason, all_cases, json_file)
    finally:
        if json_file is not None:
            json_file.close()


def _run(args: Any, reason: str | None, selected: list[Case], json_file: IO[str] | None) -> int:
    repeats = args.repeats or (9 if args.full else 5)
    target_ns = int((args.min_time or (0.05 if args.full else 0.005)) * 1e9)
    started = time.time()
    results = run_cases(selected, repeats, target_ns, Progress(len(selected)) if selected else None)
    scale_report: dict[str, Any] | None = None
    if args.full or args.scale:
        from . import scale

        scale_report = scale.run(reason, progress=sys.stderr)
    tgts = targets(results)
    meta = {
        "mode": "scale" if args.scale else "full" if args.full else "quick",
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
    document = to_json(results, tgts, meta)
    interpreter = programs.interpreter_json(results)
    if interpreter:  # per row: the interpreter's ns, the JIT's, interpreter / JIT
        document["interpreter"] = interpreter
    if scale_report is not None:
        document["scale"] = scale_report
    if args.json == "-":
        json.dump(document, sys.stdout, indent=1)
        print()
    else:
        _print_report(args, results, tgts, meta, repeats, target_ns, scale_report)
        if json_file is not None:
            json.dump(document, json_file, indent=1)
            print(f"wrote {args.json}")
    if args.plot:
        from .plot import plot

        plot(results, args.plot, scale_report)
        print(f"wrote {args.plot}", file=sys.stderr if args.json == "-" else sys.stdout)
    return 0


def _print_report(
    args: Any,
    results: list[Result],
    tgts: Sequence[Any],
    meta: dict[str, Any],
    repeats: int,
    target_ns: int,
    scale_report: dict[str, Any] | None,
) -> None:
    if results:
        print(markdown(results) if args.markdown else table(results))
        print()
        print("(x) = kernel syscall ns / this ns: above 1 is faster than the kernel syscall path")
    for title, text in (
        ("bpfmap against the peers (median ns/op; ratios = peer ns / bpfmap ns)",
         peers.table(results, md=args.markdown)),
        ("the program side: the kernel's JIT and bpfmap's interpreter (BPF_PROG_TEST_RUN and"
         " the emulated test_run; ns per map access, per instruction)", programs.table(results)),
        ("map dump, the whole command (median of a few runs)", dump.table(results)),
    ):  # fmt: skip
        if text:
            print()
            print(title + ":")
            print(text)
    if scale_report is not None:
        from . import scale

        print()
        print(scale.text(scale_report, md=args.markdown))
    print(
        f"mode {meta['mode']}: median of {repeats} repeats of >= {target_ns / 1e6:g} ms,"
        f" {meta['seconds']} s in all"
    )
    if results:
        print()
        print("targets (ratios from this run):")
        for t in tgts:
            print("  " + t.line())
    print(f"  freeze after updates: {meta['freeze_check']}")
    for line in skipped_lines(results):
        print(line)
