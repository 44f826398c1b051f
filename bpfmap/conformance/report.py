"""The report: the table, the details of failing steps, the summary line and the --json form."""

from __future__ import annotations

import errno
import json
import signal
from collections.abc import Sequence

from .. import _constants as C
from .language import JSON, Outcome
from .verdicts import (
    DIVERGES,
    ERROR,
    FAILING,
    KNOWN,
    OLDER,
    SAME,
    SKIP,
    STALE,
    ScenarioResult,
)


def errno_name(n: int) -> str:
    if n == C.ENOTSUPP:
        return "ENOTSUPP"
    return errno.errorcode.get(n, f"E{n}")


def short(o: Outcome | None) -> str:
    """A few characters for the table."""
    if o is None:
        return "-"
    if "errno" in o:
        s = errno_name(o["errno"])
        return f"{s}/{o['count']}" if "count" in o else s
    if "raise" in o:
        return str(o["raise"])
    if "signal" in o:
        try:
            return signal.Signals(o["signal"]).name
        except ValueError:
            return f"SIG{o['signal']}"
    if "error" in o:
        return "ERROR"
    if "skip" in o:
        return "skip"
    v = o.get("ok")
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    return "ok"


def _cell(outcomes: Sequence[Outcome | None], width: int) -> str:
    text = " ".join(short(o) for o in outcomes)
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def table(results: list[ScenarioResult], live: bool) -> str:
    rows = [("scenario", "kernel" if live else "recorded (kernel)", "emulated", "verdict")]
    for r in results:
        if r.verdict == SKIP:
            rows.append((r.scenario.id, "-", "-", f"skip: {r.reason}"))
            continue
        ker = [s.kernel if live else s.expected for s in r.steps]
        emu: list[Outcome | None] = [s.emulated for s in r.steps]
        rows.append((r.scenario.id, _cell(ker, 38), _cell(emu, 38), r.verdict))
    w0 = min(46, max(len(row[0]) for row in rows))
    w1 = max(len(row[1]) for row in rows)
    w2 = max(len(row[2]) for row in rows)
    lines = [f"{a[:w0]:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "-" * (w0 + w1 + w2 + 16))
    return "\n".join(lines)


def details(results: list[ScenarioResult], live: bool, everything: bool = False) -> list[str]:
    """The steps behind each failing verdict (``everything``: known differences too)."""
    out: list[str] = []
    for r in results:
        if r.verdict not in FAILING and not (everything and r.verdict in (KNOWN, OLDER)):
            continue
        if r.reason:
            out.append(f"{r.scenario.id}: {r.verdict}: {r.reason}")
        for s in r.steps:
            if s.verdict == SAME:
                continue
            op = json.dumps({k: v for k, v in s.step.items() if k not in ("expect", "history")})
            out.append(f"{r.scenario.id} step {s.index} {s.verdict}: {op}")
            if live:
                out.append(f"    kernel:   {json.dumps(s.kernel)}")
            out.append(f"    emulated: {json.dumps(s.emulated)}")
            out.append(f"    recorded: {json.dumps(s.expected)}")
            if s.step.get("known_difference"):
                out.append(f"    known difference: {s.step['known_difference']}")
    return out


def summarize(results: list[ScenarioResult]) -> dict[str, int]:
    counts = {"scenarios": len(results), "steps": sum(len(r.steps) for r in results)}
    for v in (SAME, KNOWN, OLDER, STALE, DIVERGES, ERROR, SKIP):
        counts[v] = sum(1 for r in results if r.verdict == v)
    return counts


def summary_line(counts: dict[str, int], release: str, live: bool) -> str:
    parts = [
        f"{counts['scenarios']} scenarios ({counts['steps']} steps)",
        f"{counts[SAME]} same",
        f"{counts[KNOWN]} known differences",
    ]
    for v in (OLDER, STALE, ERROR, SKIP):
        if counts[v]:
            parts.append(f"{counts[v]} {'skipped' if v == SKIP else v}")
    parts.append(f"{counts[DIVERGES]} diverge")
    against = "the running kernel" if live else "the recorded expectations"
    return f"{', '.join(parts)}: emulation vs {against}, kernel {release}"


def to_json(results: list[ScenarioResult], release: str, live: bool, reason: str | None) -> JSON:
    return {
        "kernel_release": release,
        "mode": "live" if live else "recorded",
        "kernel_backend": reason or "available",
        "summary": summarize(results),
        "scenarios": [
            {
                "id": r.scenario.id,
                "topic": r.scenario.topic,
                "recorded_on": r.scenario.recorded_on,
                "verdict": r.verdict,
                **({"reason": r.reason} if r.reason else {}),
                "steps": [
                    {
                        "op": s.step["op"],
                        "kernel": s.kernel,
                        "emulated": s.emulated,
                        "expected": s.expected,
                        "verdict": s.verdict,
                    }
                    for s in r.steps
                ],
            }
            for r in results
        ],
    }
