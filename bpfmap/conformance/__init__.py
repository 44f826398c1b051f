"""``bpfmap conformance``: the emulation against the running kernel, case by case.

The scenario language, the corpus, the verdicts and ``--random`` are specified
in ``docs/conformance.md``. The package, one concern per module:

- :mod:`.language`: the op table, step validation, flags, values, outcomes;
- :mod:`.corpus`: topic files (loading, ``-k`` selection, writing);
- :mod:`.session` with :mod:`.state`, :mod:`.maps`, :mod:`.regions`,
  :mod:`.processes` and :mod:`.libc`: one backend's side of a scenario;
- :mod:`.verdicts`: outcomes compared, kernel versions, known differences;
- :mod:`.runner`: a scenario on both backends, and ``--record``;
- :mod:`.report`: the table, the details and ``--json``;
- :mod:`.random_steps` and :mod:`.random_run`: ``--random``;
- :mod:`.programs` and :mod:`.random_programs` (with :mod:`.program_command`): programs on the
  interpreter against the kernel, ``--programs [DIR]`` and ``--random-programs N``;
- :mod:`.command`: the command line (:func:`main`), :mod:`.interrupts`: Ctrl-C.
"""

from __future__ import annotations

from .command import main
from .corpus import Scenario, Topic, dump_topic, load_corpus, select_scenarios
from .language import (
    JSON,
    OPS,
    PROTS,
    STEP_KEYS,
    Outcome,
    ScenarioError,
    canon,
    capture,
    encode_bytes,
    flag_value,
    pattern,
    repeat_hex,
    validate_steps,
)
from .random_run import Divergence, RandomRun
from .random_steps import INVALID_FLAGS, VALID_FLAGS
from .report import details, errno_name, short, summarize, summary_line, table, to_json
from .runner import record, run_scenario, skip_reason
from .session import Session
from .state import BACKENDS, PIN_ROOT, Child, Region
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
    StepResult,
    expected_for,
    parse_release,
    step_verdict,
)

__all__ = [
    "BACKENDS",
    "DIVERGES",
    "ERROR",
    "FAILING",
    "INVALID_FLAGS",
    "JSON",
    "KNOWN",
    "OLDER",
    "OPS",
    "PIN_ROOT",
    "PROTS",
    "SAME",
    "SKIP",
    "STALE",
    "STEP_KEYS",
    "VALID_FLAGS",
    "Child",
    "Divergence",
    "Outcome",
    "RandomRun",
    "Region",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "Session",
    "StepResult",
    "Topic",
    "canon",
    "capture",
    "details",
    "dump_topic",
    "encode_bytes",
    "errno_name",
    "expected_for",
    "flag_value",
    "load_corpus",
    "main",
    "parse_release",
    "pattern",
    "record",
    "repeat_hex",
    "run_scenario",
    "select_scenarios",
    "short",
    "skip_reason",
    "step_verdict",
    "summarize",
    "summary_line",
    "table",
    "to_json",
    "validate_steps",
]
