"""The command line of ``bpfmap conformance``.

Every error is one line on stderr and a non-zero exit (2 for a command line or
a file it cannot use); Ctrl-C ends the run with 130 once every session has let
go of its children, mappings and pin folders (see :mod:`.interrupts`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from typing import Callable, NoReturn

from .._map import kernel_unavailable_reason
from . import interrupts
from .corpus import Topic, dump_topic, load_corpus, select_scenarios
from .language import ScenarioError
from .random_run import Divergence, RandomRun
from .report import details, summarize, summary_line, table, to_json
from .runner import record, run_scenario
from .state import P
from .verdicts import FAILING

PROG = "bpfmap conformance"


class CommandError(Exception):
    """What the command cannot do, said in one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(message)  # one line, not argparse's usage block


def _positive(what: str) -> Callable[[str], int]:
    """``--random N``, ``--random-programs N``: a positive number of ``what``."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {what}, not {text!r}") from None
        if n < 1:
            raise argparse.ArgumentTypeError(f"expected a positive number of {what}, not {n}")
        return n

    return parse


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bpfmap conformance",
        description="Run the scenario corpus on the emulated and the kernel backend and compare "
        "every step (or, without bpf(), compare the emulation with the recorded outcomes); with "
        "--programs or --random-programs, run BPF programs on the interpreter and the kernel.",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-k", metavar="PATTERN", help="only scenarios whose topic/id contains PATTERN")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--corpus", metavar="PATH", help="a directory of topic files, or one file")
    p.add_argument(
        "--record",
        nargs="?",
        const="",
        metavar="DIR",
        help="record this kernel's outcomes into DIR (default ./scenarios-RELEASE)",
    )
    p.add_argument(
        "--random",
        type=_positive("operations"),
        metavar="N",
        help="N random operations, compared live",
    )
    p.add_argument(
        "--seed", type=int, help="seed for --random and --random-programs (default: a random one)"
    )
    p.add_argument("--details", action="store_true", help="every differing step, also when known;"
                   " with --programs, a line per program")
    p.add_argument(
        "--programs",
        nargs="?",
        const="",
        metavar="DIR",
        help="run every program of the objects in DIR (default: bpfmap's own) on both backends",
    )
    p.add_argument(
        "--random-programs",
        type=_positive("programs"),
        metavar="N",
        help="N random verifier-accepted programs on the kernel and the interpreter",
    )
    return p


def main(argv: list[str]) -> int:
    try:
        with interrupts.handling_sigint():
            return _main(argv)
    except CommandError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:  # Ctrl-C: the sessions have closed what they made
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bpfmap conformance | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1


def _load(path: str | None) -> list[Topic]:
    try:
        return load_corpus(path)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"--corpus {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CommandError(f"--corpus {path}: not a UTF-8 text file") from None


def _record_dir(path: str) -> str:
    """The folder ``--record`` writes into, made if need be (before any scenario runs)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CommandError(f"--record {path}: not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--record {path}: cannot make the directory: {exc.strerror}") from None
    return path


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    release = platform.release()
    reason = kernel_unavailable_reason()
    if args.programs is not None or args.random_programs is not None:
        from .program_command import main_programs

        return main_programs(args, release, reason)
    if args.random is not None:
        return _main_random(args, release, reason)
    topics = _load(args.corpus)
    if args.k is not None and next(select_scenarios(topics, args.k), None) is None:
        raise CommandError(f"no scenario matches -k {args.k!r}")
    if args.list:
        for sc in select_scenarios(topics, args.k):
            print(f"{sc.topic}/{sc.id}  ({len(sc.steps)} steps, recorded on {sc.recorded_on})")
        return 0
    if args.record is not None:
        if reason:
            print(f"bpfmap conformance --record needs the kernel backend: {reason}",
                  file=sys.stderr)
            return 2
        out_dir = _record_dir(args.record or f"scenarios-{release}")
        try:
            return record(topics, args.k, out_dir, release)
        except OSError as exc:
            raise CommandError(f"--record {out_dir}: {exc.strerror or exc}", 1) from None
        except ScenarioError as exc:
            raise CommandError(f"--record: {exc}", 1) from None
    live = reason is None
    started = time.monotonic()
    results = [run_scenario(sc, live, release) for sc in select_scenarios(topics, args.k)]
    counts = summarize(results)
    failed = any(r.verdict in FAILING for r in results)
    if args.json:
        json.dump(to_json(results, release, live, reason), sys.stdout, indent=1)
        print()
        return 1 if failed else 0
    recorded = sorted({sc.recorded_on for sc in select_scenarios(topics, args.k)})
    print(f"bpfmap conformance on kernel {release} ({platform.machine()}, page size {P})")
    if live:
        print("mode: live, every step on the emulated and on the kernel backend")
    else:
        print(f"mode: recorded: the kernel backend is unavailable ({reason});")
        print("      the emulation is compared with the outcomes recorded on the kernel")
    print(f"corpus recorded on: {', '.join(recorded) or '-'}")
    print()
    print(table(results, live))
    lines = details(results, live, everything=args.details)
    if lines:
        print()
        print("\n".join(lines))
    print()
    print(f"{summary_line(counts, release, live)} ({time.monotonic() - started:.1f}s)")
    return 1 if failed else 0


def _main_random(args: argparse.Namespace, release: str, reason: str | None) -> int:
    if reason:
        print(
            f"bpfmap conformance --random compares live and needs the kernel backend: {reason}",
            file=sys.stderr,
        )
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    run = RandomRun(seed, args.random, release)
    started = time.monotonic()
    try:
        stats = run.run()
    except Divergence as d:
        if args.json:
            json.dump({"seed": seed, "divergence": d.scenario, "stats": run.stats}, sys.stdout)
            print()
        else:
            print(f"DIVERGENCE (seed {seed}, kernel {release}) at step {d.step}:")
            print(f"  emulated: {json.dumps(d.emulated)}")
            print(f"  kernel:   {json.dumps(d.scenario['scenarios'][0]['steps'][-1]['expect'])}")
            print("Replayable scenario (save it and run: bpfmap conformance --corpus FILE):")
            print(dump_topic(d.scenario), end="")
        return 1
    secs = time.monotonic() - started
    if args.json:
        json.dump({"seed": seed, "kernel_release": release, "stats": stats,
                   "ops_by_kind": run.counts, "divergences": 0}, sys.stdout)
        print()
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items(), key=lambda kv: -kv[1]))
        print(f"steps by op: {kinds}")
        print(
            f"random: {stats['ops']} operations in {stats['sequences']} sequences "
            f"({stats['maps']} maps, {stats['errors']} errno outcomes, {stats['forks']} forks, "
            f"{stats['pins']} pins), seed {seed}: 0 divergences, kernel {release} "
            f"({secs:.1f}s)"
        )
    return 0
