"""Running the cases: the loop count calibrated to a repeat of about ``min_time``, the
median of the repeats, a progress bar on stderr; a case that fails is reported, not fatal."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any

from .core import Case, Prepared, Result, Runner, Skip


def calibrate(run: Runner, target_ns: int) -> int:
    """The loop count for which one repeat takes about ``target_ns``."""
    loops = 1
    while True:
        elapsed = run(loops)
        if elapsed >= target_ns or loops >= 1 << 30:
            return loops
        grow = target_ns / max(elapsed, 1)
        loops = max(loops + 1, min(int(loops * grow * 1.1), loops * 100))


def measure(prepared: Prepared, repeats: int, target_ns: int) -> tuple[float, list[float], int]:
    loops = calibrate(prepared.run, target_ns)
    if prepared.repeats is not None:
        repeats = min(repeats, prepared.repeats)
    per_op = [prepared.run(loops) / (loops * prepared.ops) for _ in range(repeats)]
    return statistics.median(per_op), per_op, loops


class Progress:
    """A plain-text progress bar on stderr."""

    def __init__(self, total: int, stream: Any = None, width: int = 30) -> None:
        self.total, self.done, self.width = total, 0, width
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def show(self, what: str) -> None:
        filled = self.width * self.done // max(self.total, 1)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {what}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:120])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, what: str) -> None:
        self.show(what)
        self.done += 1

    def finish(self) -> None:
        self.show("done")
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def run_cases(
    selected: Sequence[Case], repeats: int, target_ns: int, progress: Progress | None = None
) -> list[Result]:
    results = []
    for case in selected:
        if progress:
            progress.step(case.id)
        if case.skip or case.setup is None:
            results.append(Result(case, skipped=case.skip or "no setup"))
            continue
        try:
            prepared = case.setup()
        except Skip as exc:
            results.append(Result(case, skipped=str(exc)))
            continue
        except OSError as exc:
            results.append(Result(case, skipped=f"setup failed: {exc}"))
            continue
        try:
            med, reps, loops = measure(prepared, repeats, target_ns)
            results.append(Result(case, med, reps, loops))
        except Exception as exc:  # one broken case must not lose the others
            results.append(Result(case, skipped=f"failed: {type(exc).__name__}: {exc}"))
        finally:
            prepared.cleanup()
    if progress:
        progress.finish()
    return results
