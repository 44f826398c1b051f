"""Running a scenario on both backends (or the emulation alone); recording the kernel's outcomes."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from . import interrupts
from .corpus import Scenario, Topic, dump_topic, select_scenarios
from .language import ScenarioError, canon, has_error
from .session import Session
from .state import PIN_ROOT, P
from .verdicts import (
    ERROR,
    RANK,
    SAME,
    SKIP,
    ScenarioResult,
    StepResult,
    expected_for,
    step_verdict,
)


def _uses(steps: list[dict[str, Any]], op: str) -> bool:
    return any(s["op"] == op or _uses(s.get("steps", []), op) for s in steps)


def _ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def skip_reason(sc: Scenario, live: bool) -> str | None:
    if sc.page_size is not None and sc.page_size != P:
        return f"written for {sc.page_size}-byte pages, this machine has {P}"
    below = sc.raw.get("requires_ram_below")
    if below is not None and _ram() >= below:
        return f"this machine has {_ram()} bytes of RAM, the case needs less than {below}"
    if live and _uses(sc.steps, "pin") and not _bpffs_mounted():
        return f"bpffs is not mounted at {PIN_ROOT}"
    return None


def _bpffs_mounted() -> bool:
    from .._pin import on_bpffs

    try:
        return on_bpffs(PIN_ROOT)
    except OSError:
        return False


def run_scenario(sc: Scenario, live: bool, release: str) -> ScenarioResult:
    reason = skip_reason(sc, live)
    if reason:
        return ScenarioResult(sc, SKIP, [], reason)
    results: list[StepResult] = []
    with interrupts.deferred():
        emu = Session("emulated")
        ker = Session("kernel") if live else None
        try:
            for i, step in enumerate(sc.steps):
                interrupts.checkpoint()
                e = canon(emu.run(step))
                k = canon(ker.run(step)) if ker is not None else None
                expected, _ = expected_for(step, release)
                results.append(
                    StepResult(i, step, k, e, canon(expected), step_verdict(step, e, k, release))
                )
        except ScenarioError as exc:
            return ScenarioResult(sc, ERROR, results, str(exc))
        finally:
            try:
                emu.close()
            finally:
                if ker is not None:
                    ker.close()
    verdict = max((r.verdict for r in results), key=RANK.__getitem__, default=SAME)
    return ScenarioResult(sc, verdict, results)


def record(topics: list[Topic], pattern: str | None, out_dir: str, release: str) -> int:
    """Run the corpus on the kernel backend; write the topic files with its outcomes."""
    os.makedirs(out_dir, exist_ok=True)
    wanted = {sc.id for sc in select_scenarios(topics, pattern)}
    changed: list[str] = []
    n = steps = 0
    for t in topics:
        raw = json.loads(json.dumps(t.raw))
        raw["recorded_on"] = release
        raw["page_size"] = t.raw.get("page_size", P)
        kept = []
        for sc_raw, sc in zip(raw["scenarios"], t.scenarios):
            if sc.id not in wanted:
                continue
            sc_raw.pop("recorded_on", None)
            reason = skip_reason(sc, live=True)
            if reason:
                sc_raw["recorded_on"] = sc.recorded_on  # kept as it was
                kept.append(sc_raw)
                print(f"kept {sc.id} as recorded on {sc.recorded_on}: {reason}", file=sys.stderr)
                continue
            with interrupts.deferred():
                ker = Session("kernel")
                try:
                    for i, step in enumerate(sc_raw["steps"]):
                        interrupts.checkpoint()
                        got = canon(ker.run(step))
                        if has_error(got):
                            raise ScenarioError(f"{sc.id} step {i}: {got}")
                        if got != canon(step.get("expect")):
                            changed.append(f"{sc.id} step {i}: {step.get('expect')} -> {got}")
                        step["expect"] = got
                        steps += 1
                finally:
                    ker.close()
            kept.append(sc_raw)
            n += 1
        if not kept:
            continue
        raw["scenarios"] = kept
        path = os.path.join(out_dir, os.path.basename(t.source))
        with open(path, "w", encoding="utf-8") as f:
            f.write(dump_topic(raw))
    for line in changed:
        print(f"changed: {line}")
    print(f"recorded {n} scenarios ({steps} steps) on kernel {release} into {out_dir}")
    return 0
