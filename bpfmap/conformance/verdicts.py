"""Verdicts: a step's outcomes against each other and against the recording, kernel versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .corpus import Scenario
from .language import Outcome, canon, has_error


def parse_release(release: str) -> tuple[int, ...]:
    nums: list[int] = []
    for part in release.split("-", 1)[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        nums.append(int(digits))
    return tuple(nums)


def _outcome_of(entry: dict[str, Any]) -> Outcome:
    return {k: v for k, v in entry.items() if k not in ("before", "commit", "note")}


def expected_for(step: dict[str, Any], release: str) -> tuple[Outcome, str | None]:
    """The outcome recorded for ``release``: ``expect``, or the history entry of an older kernel.

    Returns (outcome, the 'before' boundary it came from, or None for ``expect``).
    """
    running = parse_release(release)
    for entry in sorted(step.get("history", []), key=lambda e: parse_release(e["before"])):
        if running < parse_release(entry["before"]):
            return _outcome_of(entry), entry["before"]
    return step["expect"], None


SAME, KNOWN, OLDER, STALE, DIVERGES, ERROR, SKIP = (
    "same",
    "known",
    "older kernel",
    "stale",
    "DIVERGES",
    "ERROR",
    "skip",
)
RANK = {SAME: 0, SKIP: 0, KNOWN: 1, OLDER: 2, STALE: 3, DIVERGES: 4, ERROR: 5}
FAILING = {STALE, DIVERGES, ERROR}


@dataclass
class StepResult:
    index: int
    step: dict[str, Any]
    kernel: Outcome | None
    emulated: Outcome
    expected: Outcome
    verdict: str


@dataclass
class ScenarioResult:
    scenario: Scenario
    verdict: str
    steps: list[StepResult]
    reason: str = ""


def step_verdict(step: dict[str, Any], emu: Outcome, ker: Outcome | None, release: str) -> str:
    current = canon(step["expect"])
    expected, before = expected_for(step, release)
    expected = canon(expected)
    if has_error(emu) or (ker is not None and has_error(ker)):
        return ERROR
    if ker is None:  # against the recording: the emulation follows the current kernel
        if emu == current:
            return SAME
        return KNOWN if step.get("known_difference") else DIVERGES
    if emu == ker:
        return SAME if ker in (current, expected) else STALE
    if step.get("known_difference") and ker == expected:
        return KNOWN
    if before is not None and ker == expected and emu == current:
        return OLDER
    return DIVERGES
