"""``--random``: random operation sequences, run on both backends in lockstep."""

from __future__ import annotations

import json
import random
from typing import Any

from .. import _constants as C
from .._bindings import values_size
from . import interrupts
from .language import Outcome, canon, has_error
from .random_steps import RandomSteps
from .session import Session


class Divergence(Exception):
    def __init__(self, scenario: dict[str, Any], step: int, emulated: Outcome) -> None:
        super().__init__(f"divergence at step {step}")
        self.scenario = scenario
        self.step = step
        self.emulated = emulated


class RandomRun(RandomSteps):
    """Random operation sequences, run on both backends in lockstep."""

    def __init__(self, seed: int, total: int, release: str) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.total = total
        self.release = release
        self.stats = {"ops": 0, "sequences": 0, "maps": 0, "errors": 0, "forks": 0, "pins": 0}
        self.counts: dict[str, int] = {}

    # state of the current sequence (what the generator may refer to)
    def _reset(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.handles: dict[str, str] = {}  # name -> access
        self.closed: list[str] = []  # closed handles: every op on them is a ValueError
        self.regions: dict[str, int] = {}  # live regions: name -> length
        self.all_regions: set[str] = set()  # every region ever made (a child knows them)
        self.children: dict[str, tuple[set[str], set[str]]] = {}  # name -> (handles, regions)
        self.pins: list[str] = []
        self.shape = {}
        self.serial = 0

    def run(self) -> dict[str, int]:
        while self.stats["ops"] < self.total:
            self._sequence()
        return self.stats

    def _do(self, step: dict[str, Any]) -> Outcome:
        interrupts.checkpoint()
        e: Outcome = canon(self.emu.run(step))
        k: Outcome = canon(self.ker.run(step))
        step["expect"] = k
        self.steps.append(step)
        n = 1 + len(step.get("steps", []))
        self.stats["ops"] += n
        self.counts[step["op"]] = self.counts.get(step["op"], 0) + 1
        if "errno" in k:
            self.stats["errors"] += 1
        if e != k or has_error(k) or has_error(e):
            sid = f"random-{self.seed}-{self.stats['sequences']}"
            scenario = {
                "topic": "random",
                "recorded_on": self.release,
                "scenarios": [
                    {
                        "id": sid,
                        "doc": f"bpfmap conformance --random (seed {self.seed}): "
                        f"the emulation gave {json.dumps(e)} at the last step",
                        "steps": self.steps,
                    }
                ],
            }
            raise Divergence(scenario, len(self.steps) - 1, e)
        return k

    def _sequence(self) -> None:
        self._reset()
        self.stats["sequences"] += 1
        with interrupts.deferred():
            self.emu = Session("emulated")
            try:
                self.ker = Session("kernel")
                try:
                    self._body()
                finally:
                    self.ker.close()
            finally:
                self.emu.close()

    def _body(self) -> None:
        r = self.rng
        shape = self._shape()
        out = self._do(shape)
        if "ok" not in out:
            return
        self.stats["maps"] += 1
        self.shape = shape
        flags = shape.get("flags", 0)
        self.handles["m"] = (
            "r" if flags & C.BPF_F_RDONLY else "w" if flags & C.BPF_F_WRONLY else "rw"
        )
        vs, n = shape["value_size"], shape["max_entries"]
        self.window = values_size(vs, n)  # the mmap()-able value area (csrc/layout.h)
        left = r.randrange(5, 80)
        while left > 0 and self.stats["ops"] < self.total:
            left -= 1
            self._random_step()
        # the end: every value through each handle, every byte of every region
        for h in list(self.handles):
            self._do({"op": "contents", "map": h})
        for name in list(self.regions):
            self._do({"op": "read", "region": name})
        for c in list(self.children):
            self._do({"op": self.rng.choice(["release", "kill"]), "child": c})

    # one random step --------------------------------------------------------------

    def _random_step(self) -> None:
        r = self.rng
        handles = list(self.handles)
        if not handles:
            self._do({"op": "props"})  # every handle closed: ValueError on both
            return
        kinds = {"map": 60.0, "mmap": 12.0, "process": 4.0, "dup": 2.5, "pin": 3.0}
        if self.regions:
            kinds["region"] = 24.0
        if len(handles) > 1:
            kinds["close"] = 1.0
        if self.closed:
            kinds["closed"] = 0.5
        kind = r.choices(list(kinds), list(kinds.values()))[0]
        if kind == "map":
            self._do(self._map_step(r.choice(handles)))
        elif kind == "mmap":
            name = self._name("r")
            step = {"op": "mmap", "map": r.choice(handles), "as": name, **self._mmap_args()}
            out = self._do(step)
            if "ok" in out:
                self.regions[name] = out["ok"]["len"]
                self.all_regions.add(name)
        elif kind == "region":
            self._region_step(r.choice(list(self.regions)))
        elif kind == "process":
            self._process_step()
        elif kind == "dup":
            name, src = self._name("h"), r.choice(handles)
            out = self._do({"op": "dup", "map": src, "as": name})
            if "ok" in out:
                self.handles[name] = self.handles[src]
        elif kind == "close":
            h = r.choice(handles)
            self._do({"op": "close", "map": h})
            del self.handles[h]
            self.closed.append(h)
        elif kind == "closed":
            self._do(self._map_step(r.choice(self.closed)))
        else:
            self._pin_step()

    def _region_step(self, name: str) -> None:
        r = self.rng
        length = self.regions[name]
        x = r.random()
        if x < 0.4:
            off = r.randrange(length)
            data = r.randbytes(r.randrange(1, min(64, length - off) + 1)).hex()
            self._do({"op": "write", "region": name, "offset": off, "data": data})
        elif x < 0.6:
            step: dict[str, Any] = {"op": "read", "region": name}
            if r.random() < 0.5:
                off = r.randrange(length)
                step.update(offset=off, length=r.randrange(1, length - off + 1))
            self._do(step)
        elif x < 0.75:
            self._do({"op": "close_region", "region": name})
            del self.regions[name]
        elif x < 0.9:
            prot = r.choice(["r", "rw", "rw", "none", "w"])
            self._do({"op": "mprotect", "region": name, "prot": prot, **self._region_range(length)})
        elif x < 0.97:
            self._do({"op": "munmap", "region": name, **self._region_range(length)})
        else:
            self._do({"op": "madvise_dontfork", "region": name, **self._region_range(length)})

    def _process_step(self) -> None:
        r = self.rng
        live = list(self.children)
        x = r.random()
        if not live or (x < 0.4 and len(live) < 3):
            name = self._name("k")
            handles, regions = set(self.handles), set(self.all_regions)
            steps = self._child_steps(handles, regions) if r.random() < 0.7 else []
            self.stats["forks"] += 1
            out = self._do({"op": "fork", "as": name, "steps": steps})
            if "ok" in out:
                self._child_made(steps, out, regions)
                self.children[name] = (handles, regions)
        elif x < 0.7:
            c = r.choice(live)
            handles, regions = self.children[c]
            steps = self._child_steps(handles, regions)
            out = self._do({"op": "child", "child": c, "steps": steps})
            self._child_made(steps, out, regions)
        else:
            c = r.choice(live)
            self._do({"op": r.choice(["release", "kill"]), "child": c})
            del self.children[c]

    def _pin_step(self) -> None:
        r = self.rng
        handles = list(self.handles)
        if not self.pins or r.random() < 0.25:
            pin = f"p{len(self.pins)}"
            self.stats["pins"] += 1
            out = self._do({"op": "pin", "map": r.choice(handles), "pin": pin})
            if "ok" in out:
                self.pins.append(pin)
            return
        pin = r.choice(self.pins)
        x = r.random()
        if x < 0.7:
            ro = r.random() < 0.6
            name = self._name("h")
            out = self._do({"op": "open_pinned", "pin": pin, "as": name, "readonly": ro})
            if "ok" in out:
                self.handles[name] = out["ok"]
        elif x < 0.85:
            self._do({"op": "pin_mode", "pin": pin})
        else:
            self._do({"op": "unpin", "pin": pin})
            self.pins.remove(pin)
