"""``bpfmap conformance --programs [DIR]`` and ``--random-programs N [--seed S]``: programs on the
interpreter against the kernel's ``BPF_PROG_TEST_RUN``. Both compare live, so both need
``bpf()``: without it they say so in one line and exit 2, as ``--random`` does."""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time

from .command import CommandError
from .programs import (
    PACKAGE_OBJECTS,
    UnreadableObject,
    details,
    objects_in,
    run_folder,
    summarize,
    summary_line,
)
from .programs import table as program_table
from .random_programs import ProgramBatch


def main_programs(args: argparse.Namespace, release: str, reason: str | None) -> int:
    if args.programs is not None and args.random_programs is not None:
        raise CommandError("--programs and --random-programs are separate runs: give one")
    option = "--programs" if args.programs is not None else "--random-programs"
    if reason:
        print(f"bpfmap conformance {option} compares live and needs the kernel backend: "
              f"{reason}", file=sys.stderr)
        return 2
    if args.random_programs is not None:
        return _random(args, release)
    folder = args.programs or str(PACKAGE_OBJECTS)
    try:
        paths = objects_in(folder)
    except OSError as exc:
        raise CommandError(f"--programs {folder}: {exc.strerror or exc}") from None
    if not paths:
        raise CommandError(f"--programs {folder}: no BPF object files (*.o) in it")
    started = time.monotonic()
    try:
        results = list(run_folder(paths))
    except ImportError as exc:  # libbpf.so.1 missing or older than 1.0: objects cannot open
        raise CommandError(f"--programs: {exc}") from None
    except UnreadableObject as exc:  # a file the user named (or put in the folder)
        raise CommandError(f"--programs {exc}") from None
    counts = summarize(results)
    failed = counts["diverge"] > 0
    if args.json:
        json.dump({"kernel_release": release, "mode": "live", "folder": folder,
                   "objects": [p.name for p in paths], "summary": counts,
                   "programs": [r.to_json() for r in results]}, sys.stdout, indent=1)
        print()
        return 1 if failed else 0
    print(f"bpfmap conformance --programs on kernel {release} ({platform.machine()})")
    print("mode: live, every program's test run on the interpreter (emulated backend) and on "
          "the kernel")
    where = folder if args.programs else "bpfmap's own (bpfmap/bpf)"
    print(f"objects: {where}: {', '.join(p.name for p in paths)}")
    if args.details:
        print()
        print(program_table(results))
    lines = details(results)
    if lines:
        print()
        print("\n".join(lines))
    print()
    print(f"{summary_line(counts, release)} ({time.monotonic() - started:.1f}s)")
    return 1 if failed else 0


def _random(args: argparse.Namespace, release: str) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    batch = ProgramBatch(seed, args.random_programs)
    same = batch.run()
    if args.json:
        json.dump(batch.to_json(release), sys.stdout)
        print()
    else:
        print("\n".join(batch.lines(release)))
    return 0 if same else 1
