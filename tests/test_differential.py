"""The kernel cases, from their one source: the JSON corpus, one test per scenario.

Every scenario of ``bpfmap/scenarios/*.json`` (the cases of
``kernel-array-semantics.md``, ids C01, L04, U09, ..., and the selftests'
``ST-`` assertions) runs twice:

- ``test_live``: on the emulated and on the kernel backend in lockstep; each
  step must give the same outcome on both, and the kernel the recorded one
  (``same``), or the documented unavoidable difference (``known``), or, on a
  kernel older than a recorded change, its ``history`` outcome (``older
  kernel``). Needs ``bpf()`` (fails under ``CI=true`` without it).
- ``test_recorded``: the emulation alone against the recorded outcomes, so the
  cases run where ``bpf()`` is denied too.

The verdicts are those of ``bpfmap conformance`` (docs/conformance.md); a
failure prints the steps behind it. This module replaced the pytest copy of
the same cases: the table "The former differential tests" in
docs/conformance.md maps each old test to the scenario that covers it
(checked by ``test_former_differential_tests_are_in_the_corpus``), and the few
cases the scenario language cannot express are in
``tests/test_differential_extra.py``.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import require_kernel

from bpfmap.conformance import (
    KNOWN,
    OLDER,
    SAME,
    Scenario,
    details,
    load_corpus,
    run_scenario,
    skip_reason,
)

RELEASE = platform.release()
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
CORPUS = [sc for topic in load_corpus() for sc in topic.scenarios]
SCENARIOS = [pytest.param(sc, id=f"{sc.topic}/{sc.id}") for sc in CORPUS]
#: The documented, unavoidable differences (docs/emulation.md, "Known differences").
KNOWN_DIFFERENCES = {"M18-ro-mprotect-exec", "M33-mremap-grow", "ST-mmap-data_map"}
DOC = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"


def _expects_a_signal(steps: list[dict[str, Any]]) -> bool:
    return any("signal" in (step.get("expect") or {}) or _expects_a_signal(step.get("steps", []))
               for step in steps)


def _skip_if_machine_cannot(sc: Scenario, live: bool) -> None:
    """Cases that need less RAM than this machine has to fail, other pages, or bpffs."""
    reason = skip_reason(sc, live)
    if reason:
        pytest.skip(reason)
    if UNDER_ASAN and _expects_a_signal(sc.steps):
        # tools/sanitize.sh: ASan's SIGSEGV handler reports the fault and aborts the process.
        pytest.skip("the case expects a SIGSEGV, which AddressSanitizer turns into its report")


@pytest.mark.parametrize("sc", SCENARIOS)
def test_live(sc: Scenario) -> None:
    require_kernel()
    _skip_if_machine_cannot(sc, True)
    result = run_scenario(sc, True, RELEASE)
    allowed = {SAME, OLDER} | ({KNOWN} if sc.id in KNOWN_DIFFERENCES else set())
    assert result.verdict in allowed, "\n".join(details([result], True, everything=True))
    for s in result.steps:
        if s.verdict == KNOWN:  # the kernel must still give the recorded outcome
            assert s.step.get("known_difference") and s.kernel == s.expected, s.index


@pytest.mark.parametrize("sc", SCENARIOS)
def test_recorded(sc: Scenario) -> None:
    _skip_if_machine_cannot(sc, False)
    result = run_scenario(sc, False, RELEASE)
    allowed = {SAME} | ({KNOWN} if sc.id in KNOWN_DIFFERENCES else set())
    assert result.verdict in allowed, "\n".join(details([result], False, everything=True))


def test_known_differences_are_the_documented_ones() -> None:
    """Only the scenarios named above may mark a step ``known_difference``."""
    marked = {sc.id for sc in CORPUS if any("known_difference" in s for s in sc.steps)}
    assert marked == KNOWN_DIFFERENCES


def test_former_differential_tests_are_in_the_corpus() -> None:
    """Every scenario docs/conformance.md names for a former test exists (nothing was lost)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The former differential tests") :]
    end = section.find("\n## ", 3)  # up to the next section, if any
    section = section if end < 0 else section[:end]
    kept = section[section.index("```\n") + 4 :]
    named = set(kept[: kept.index("```")].split())
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("| ") and len(cells) > 3:
            named |= set(re.findall(r"`([A-Z][^`/ ]+)`", cells[2]))
    ids = {sc.id for sc in CORPUS}
    assert len(named) > 240
    assert named - ids == set()
