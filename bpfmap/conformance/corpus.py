"""The corpus: topic files loaded and checked, scenarios selected by ``-k``, topic files written."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .language import ScenarioError, validate_steps


@dataclass
class Scenario:
    id: str
    topic: str
    steps: list[dict[str, Any]]
    recorded_on: str
    raw: dict[str, Any]
    page_size: int | None = None  # the page size offsets and lengths were written for

    @property
    def doc(self) -> str:
        return str(self.raw.get("doc", ""))


@dataclass
class Topic:
    name: str
    source: str
    raw: dict[str, Any]
    scenarios: list[Scenario] = field(default_factory=list)


def _load_topic(text: str, source: str) -> Topic:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("scenarios"), list):
        raise ScenarioError(f"{source}: a topic file is an object with a 'scenarios' list")
    name = str(raw.get("topic") or os.path.splitext(os.path.basename(source))[0])
    topic = Topic(name, source, raw)
    for sc in raw["scenarios"]:
        sid = sc.get("id") if isinstance(sc, dict) else None
        if not isinstance(sid, str):
            raise ScenarioError(f"{source}: a scenario without an id")
        validate_steps(sc.get("steps"), f"{source}: {sid}")
        for i, step in enumerate(sc["steps"]):
            if "expect" not in step:
                raise ScenarioError(f"{source}: {sid} step {i}: no expect")
        recorded = str(sc.get("recorded_on") or raw.get("recorded_on") or "unknown")
        page = raw.get("page_size")
        topic.scenarios.append(Scenario(sid, name, sc["steps"], recorded, sc, page))
    return topic


def load_corpus(path: str | None = None) -> list[Topic]:
    """The shipped corpus, or the topic files of a directory, or one file."""
    topics: list[Topic] = []
    if path is None:
        base = resources.files("bpfmap") / "scenarios"
        for entry in sorted(base.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                topics.append(
                    _load_topic(entry.read_text(encoding="utf-8"), f"scenarios/{entry.name}")
                )
    elif os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith(".json"):
                with open(os.path.join(path, name), encoding="utf-8") as f:
                    topics.append(_load_topic(f.read(), os.path.join(path, name)))
    else:
        with open(path, encoding="utf-8") as f:
            topics.append(_load_topic(f.read(), path))
    ids: set[str] = set()
    for t in topics:
        for sc in t.scenarios:
            if sc.id in ids:
                raise ScenarioError(f"{t.source}: duplicate scenario id {sc.id}")
            ids.add(sc.id)
    return topics


def select_scenarios(topics: list[Topic], pattern: str | None) -> Iterator[Scenario]:
    for t in topics:
        for sc in t.scenarios:
            if pattern is None:
                yield sc
                continue
            pat = pattern.lower()
            hay = f"{sc.topic}/{sc.id}".lower()
            if pat in hay or fnmatch.fnmatch(sc.id.lower(), pat) or fnmatch.fnmatch(hay, pat):
                yield sc


def dump_topic(raw: dict[str, Any]) -> str:
    """A topic file: one line per step, so that diffs stay readable."""
    head = {k: v for k, v in raw.items() if k != "scenarios"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "scenarios": [')
    for si, sc in enumerate(raw["scenarios"]):
        lines.append("    {")
        meta = [(k, v) for k, v in sc.items() if k != "steps"]
        for k, v in meta:
            lines.append(f"      {json.dumps(k)}: {json.dumps(v)},")
        lines.append('      "steps": [')
        for i, step in enumerate(sc["steps"]):
            comma = "," if i < len(sc["steps"]) - 1 else ""
            lines.append(f"        {json.dumps(step)}{comma}")
        lines.append("      ]")
        lines.append("    }" + ("," if si < len(raw["scenarios"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"
