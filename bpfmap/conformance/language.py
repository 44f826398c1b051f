"""The scenario language: the op table, step validation, flags, values and outcomes.

The language itself is specified in ``docs/conformance.md``.
"""

from __future__ import annotations

import hashlib
import json
import mmap as _mmap
from typing import Any, Callable

from .. import _constants as C

JSON = Any
Outcome = dict[str, Any]

_MAP = {"map"}
#: op -> (required arguments, optional arguments)
OPS: dict[str, tuple[set[str], set[str]]] = {
    "create": (
        {"value_size", "max_entries"},
        {"as", "flags", "name", "name_hex", "key_size", "fd0"},
    ),
    "lookup": ({"key"}, _MAP | {"flags"}),
    "lookup_into": ({"key"}, _MAP | {"flags", "extra", "fill"}),
    "update": ({"key"}, _MAP | {"flags", "value", "fill"}),
    "fill_all": (set(), _MAP),
    "delete": ({"key"}, _MAP),
    "lookup_and_delete": ({"key"}, _MAP | {"flags"}),
    "get_next_key": ({"key"}, _MAP),
    "lookup_batch": (set(), _MAP | {"count", "in_batch", "elem_flags", "flags"}),
    "update_batch": ({"keys"}, _MAP | {"values", "fill", "ramp", "elem_flags", "flags"}),
    "delete_batch": ({"keys"}, _MAP | {"elem_flags", "flags"}),
    "freeze": (set(), _MAP),
    "frozen": (set(), _MAP),
    "info": (set(), _MAP),
    "props": (set(), _MAP),
    "contents": (set(), _MAP),
    "items": (set(), _MAP),
    "dup": ({"as"}, _MAP),
    "close": (set(), _MAP),
    "mmap": (set(), _MAP | {"as", "writable", "shared", "offset", "length"}),
    "read": ({"region"}, {"offset", "length"}),
    "write": ({"region", "data"}, {"offset"}),
    "close_region": ({"region"}, set()),
    "munmap": ({"region"}, {"offset", "length"}),
    "mprotect": ({"region", "prot"}, {"offset", "length"}),
    "madvise_dontfork": ({"region"}, {"offset", "length"}),
    "mremap_grow": ({"region", "length"}, set()),
    "reserve": ({"as", "length"}, set()),
    "mmap_fixed": ({"region"}, _MAP | {"at", "writable", "offset", "length"}),
    "fork": ({"as"}, {"steps"}),
    "child": ({"child", "steps"}, set()),
    "release": ({"child"}, set()),
    "kill": ({"child"}, set()),
    "pin": ({"pin"}, _MAP),
    "open_pinned": ({"pin", "as"}, {"readonly"}),
    "unpin": ({"pin"}, set()),
    "pin_mode": ({"pin"}, set()),
}
STEP_KEYS = {"op", "expect", "history", "known_difference", "note"}
PROTS = {
    "none": _mmap.PROT_NONE if hasattr(_mmap, "PROT_NONE") else 0,
    "r": _mmap.PROT_READ,
    "w": _mmap.PROT_WRITE,
    "rw": _mmap.PROT_READ | _mmap.PROT_WRITE,
    "x": _mmap.PROT_EXEC,
    "rx": _mmap.PROT_READ | _mmap.PROT_EXEC,
    "rwx": _mmap.PROT_READ | _mmap.PROT_WRITE | _mmap.PROT_EXEC,
}


class ScenarioError(Exception):
    """A scenario that does not follow the op language."""


def validate_steps(steps: Any, where: str) -> None:
    if not isinstance(steps, list):
        raise ScenarioError(f"{where}: steps must be a list")
    for i, step in enumerate(steps):
        here = f"{where} step {i}"
        if not isinstance(step, dict) or step.get("op") not in OPS:
            raise ScenarioError(f"{here}: unknown op {step!r:.80}")
        required, optional = OPS[step["op"]]
        missing = required - step.keys()
        if missing:
            raise ScenarioError(f"{here} ({step['op']}): missing {sorted(missing)}")
        extra = step.keys() - required - optional - STEP_KEYS
        if extra:
            raise ScenarioError(f"{here} ({step['op']}): unknown {sorted(extra)}")
        if step["op"] in ("fork", "child"):
            validate_steps(step.get("steps", []), here)


def flag_value(x: Any) -> int:
    """An int, a constant's name (``"MMAPABLE"``, ``"BPF_F_RDONLY"``, ``"NOEXIST"``) or a list."""
    if isinstance(x, bool):
        raise ScenarioError(f"flags must be ints or names, not {x!r}")
    if isinstance(x, int):
        return x
    if isinstance(x, str):
        for name in (x, f"BPF_{x}", f"BPF_F_{x}"):
            v = getattr(C, name, None)
            if isinstance(v, int):
                return v
        raise ScenarioError(f"unknown flag {x!r}")
    if isinstance(x, list):
        out = 0
        for item in x:
            out |= flag_value(item)
        return out
    raise ScenarioError(f"bad flags {x!r}")


def pattern(key: int, size: int) -> bytes:
    """``fill_all``'s value for ``key``: byte i is ``(7 * key + i + 1) & 0xff``."""
    return bytes((key * 7 + i + 1) & 0xFF for i in range(size))


def repeat_hex(hexpat: str, size: int) -> bytes:
    pat = bytes.fromhex(hexpat)
    if not pat:
        raise ScenarioError("empty fill pattern")
    return (pat * (size // len(pat) + 1))[:size]


def encode_bytes(data: bytes) -> JSON:
    """Hex for short data; the non-zero runs, or a digest, for long data."""
    if len(data) <= 64:
        return data.hex()
    runs: list[list[Any]] = []
    total = 0
    stripped = data.rstrip(b"\0")
    i, n = 0, len(stripped)
    while i < n:
        if stripped[i]:
            j = i
            while j < n and stripped[j]:
                j += 1
            runs.append([i, stripped[i:j].hex()])
            total += j - i
            if total > 256 or len(runs) > 32:
                digest = hashlib.sha256(data).hexdigest()
                return {"len": len(data), "sha256": digest}
            i = j
        else:
            i += 1
    return {"len": len(data), "runs": runs}


def canon(x: Any) -> JSON:
    """The JSON form of a result (tuples become lists), for equality and printing."""
    return json.loads(json.dumps(x))


def capture(fn: Callable[[], JSON]) -> Outcome:
    try:
        result = fn()
    except OSError as exc:
        out: Outcome = {"errno": exc.errno}
        count = getattr(exc, "count", None)
        if count is not None:
            out["count"] = count
        return out
    except (TypeError, ValueError, IndexError, BufferError) as exc:
        return {"raise": type(exc).__name__}
    return {"ok": canon(result)}


def has_error(o: Any) -> bool:
    if isinstance(o, dict):
        if "error" in o:
            return True
        return any(has_error(v) for v in o.values())
    if isinstance(o, list):
        return any(has_error(v) for v in o)
    return False
