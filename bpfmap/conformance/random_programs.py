"""``--random-programs N``: random programs the kernel's verifier accepts, on the kernel and on
the interpreter (:mod:`bpfmap._vm_random` makes and compares them: ``r0``, the context and every
map byte), stopping at the first divergence, which is printed as a replayable program."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .._vm_random import BODY, Verdict, check, generate, replay_command


@dataclass
class ProgramBatch:
    """``count`` programs from ``seed`` (seed, seed + 1, ...), run until the first divergence."""

    seed: int
    count: int
    body: int = BODY
    counts: dict[str, int] = field(default_factory=lambda: {"same": 0, "rejected": 0,
                                                             "diverged": 0})
    divergence: Verdict | None = None
    seconds: float = 0.0

    def run(self) -> bool:
        """True when every program gave the same outcome on both (or was refused by the
        verifier, which the generator should never provoke: they are counted)."""
        started = time.monotonic()
        for seed in range(self.seed, self.seed + self.count):
            verdict = check(seed, self.body)
            self.counts[verdict.status] += 1
            if verdict.status == "diverged":
                self.divergence = verdict
                break
        self.seconds = time.monotonic() - started
        return self.divergence is None

    @property
    def ran(self) -> int:
        return sum(self.counts.values())

    def to_json(self, release: str) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "count": self.count, "ran": self.ran,
                               "kernel_release": release, **self.counts,
                               "seconds": round(self.seconds, 1), "divergence": None}
        if self.divergence is not None:
            insns = generate(self.divergence.seed, self.body)
            out["divergence"] = {"seed": self.divergence.seed, "detail": self.divergence.detail,
                                 "insns": insns.hex(),
                                 "replay": replay_command(self.divergence.seed, insns)}
        return out

    def lines(self, release: str) -> list[str]:
        out = []
        if self.divergence is not None:
            d = self.divergence
            out.append(f"DIVERGENCE (program seed {d.seed}, kernel {release}):")
            out += [f"  {line}" for line in d.detail.splitlines()]
            out.append("Replayable program (the instructions in hex, with the map of its seed):")
            out.append("  " + replay_command(d.seed, generate(d.seed, self.body)))
        out.append(
            f"random programs: {self.ran} of {self.count} from seed {self.seed}: "
            f"{self.counts['same']} same, {self.counts['rejected']} rejected by the verifier, "
            f"{self.counts['diverged']} divergences: the interpreter vs the running kernel, "
            f"kernel {release} ({self.seconds:.1f}s)")
        return out
