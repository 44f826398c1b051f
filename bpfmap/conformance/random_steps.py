"""What ``--random`` draws: map shapes, keys, values, mappings and the steps of one handle."""

from __future__ import annotations

import random
from typing import Any

from .. import _constants as C
from .language import Outcome
from .state import P

U32 = 2**32 - 1

MM = C.BPF_F_MMAPABLE
VALID_FLAGS = [
    0, MM, MM, MM, MM, MM | C.BPF_F_RDONLY, MM | C.BPF_F_WRONLY, C.BPF_F_RDONLY, C.BPF_F_WRONLY,
    MM | C.BPF_F_RDONLY_PROG, MM | C.BPF_F_WRONLY_PROG, C.BPF_F_RDONLY_PROG,
    MM | C.BPF_F_INNER_MAP, MM | C.BPF_F_NUMA_NODE, C.BPF_F_INNER_MAP | C.BPF_F_NUMA_NODE,
]
INVALID_FLAGS = [
    C.BPF_F_NO_PREALLOC, C.BPF_F_ZERO_SEED, C.BPF_F_PRESERVE_ELEMS,
    C.BPF_F_RDONLY | C.BPF_F_WRONLY, C.BPF_F_RDONLY_PROG | C.BPF_F_WRONLY_PROG,
    MM | (1 << 31), MM | (1 << 13),
    MM | C.BPF_F_TOKEN_FD,  # map_token_fd 0: fd 0 is no token (EINVAL), or closed (EBADF)
]
#: Names as bytes: Latin-1 letters pass the kernel's isalnum(), UTF-8 continuation bytes do
#: not; what follows a NUL is never looked at.
NAMES_HEX = ["e974e9", "c0dfff", "c3a9", "d7", "6162002d21", "002d21"]


class RandomSteps:
    """Draws from ``self.rng`` for the map of the current sequence (``self.shape``)."""

    rng: random.Random
    shape: dict[str, Any]  # the create step of the current sequence's map
    window: int  # the bytes that map's values take, rounded up to pages
    serial: int

    def _name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def _shape(self) -> dict[str, Any]:
        r = self.rng
        vs = r.choice([1, 4, 8, 8, 12, 16, 24, r.randrange(1, 81), r.randrange(1, 600)])
        n = r.choice([1, 2, 4, 7, r.randrange(1, 41), r.randrange(1, 1200)])
        if r.random() < 0.04:
            vs = r.choice([0, 0x80000000, U32])
        if r.random() < 0.04:
            n = 0
        flags = r.choice(VALID_FLAGS) if r.random() < 0.9 else r.choice(INVALID_FLAGS)
        shape: dict[str, Any] = {"op": "create", "value_size": vs, "max_entries": n}
        if flags:
            shape["flags"] = flags
        if r.random() < 0.1:
            shape["name"] = r.choice(
                ["rnd", "rnd_map.1", "y" * 15, "bad-name", "x" * 16, "a b", "\u20ac"]
            )
        elif r.random() < 0.04:
            shape["name_hex"] = r.choice(NAMES_HEX)
        if r.random() < 0.02:
            shape["key_size"] = r.choice([0, 2, 8])
        return shape

    def _key(self) -> int:
        r, n = self.rng, int(self.shape["max_entries"])
        x = r.random()
        if x < 0.75:
            return r.randrange(n)
        if x < 0.87:
            return n
        if x < 0.91:
            return n + r.randrange(1, 6)  # just past the end
        return U32 if x < 0.95 else r.randrange(2**32)

    def _value_fill(self) -> str:
        return self.rng.randbytes(self.rng.choice([1, 2, 3, 8])).hex()

    def _mmap_args(self) -> dict[str, Any]:
        r, window = self.rng, self.window
        kw: dict[str, Any] = {"writable": r.random() < 0.55}
        if r.random() < 0.06:
            kw["shared"] = False
        x = r.random()
        if x < 0.7:
            off = 0
        elif x < 0.88:
            off = P * r.randrange(max(1, window // P + 1))
        else:
            off = r.choice([window, r.randrange(1, 2 * P), 100])
        if off:
            kw["offset"] = off
        y = r.random()
        if y < 0.45:
            pass
        elif y < 0.9:
            kw["length"] = r.randrange(1, window + 2 * P)
        else:
            kw["length"] = r.choice([2 * window, 2**62, window - off + 1, P, 0])
        return kw

    def _region_range(self, length: int) -> dict[str, int]:
        pages = max(1, -(-length // P))
        first = self.rng.randrange(pages)
        count = self.rng.randrange(1, pages - first + 1)
        out = {}
        if first:
            out["offset"] = first * P
        if count != pages - first or self.rng.random() < 0.5:
            out["length"] = count * P
        return out

    def _map_step(self, h: str) -> dict[str, Any]:
        r = self.rng
        kinds = [
            "lookup", "update", "update", "lookup_into", "delete", "lookup_and_delete",
            "get_next_key", "lookup_batch", "update_batch", "delete_batch", "freeze", "frozen",
            "info", "props", "items",
        ]
        weights = [14, 12, 4, 2, 1, 1, 5, 6, 6, 1, 1.5, 1, 1, 1, 0.5]
        kind = r.choices(kinds, weights)[0]
        step: dict[str, Any] = {"op": kind, "map": h}
        if kind in ("lookup", "lookup_into", "delete", "lookup_and_delete"):
            step["key"] = self._key()
        if kind == "get_next_key":
            step["key"] = None if r.random() < 0.3 else self._key()
        if kind in ("lookup", "lookup_into", "lookup_and_delete") and r.random() < 0.15:
            step["flags"] = r.choice(
                [C.BPF_F_LOCK, 1, 2, 8, C.BPF_F_LOCK | 1, r.randrange(2**64)]
            )
        if kind == "lookup_into":
            step["extra"] = r.randrange(4)
            if r.random() < 0.5:
                step["fill"] = f"{r.randrange(256):02x}"  # the bytes past the value stay
        if kind == "update":
            step["key"] = self._key()
            if r.random() < 0.25:
                step["value"] = r.randbytes(int(self.shape["value_size"])).hex()
            else:
                step["fill"] = self._value_fill()
            if r.random() < 0.3:
                step["flags"] = r.choice(
                    [C.BPF_EXIST, C.BPF_NOEXIST, C.BPF_F_LOCK, 3, r.randrange(2**64),
                     C.BPF_F_LOCK | C.BPF_EXIST, 8]
                )
        if kind == "lookup_batch":
            n = self.shape["max_entries"]
            step["count"] = None if r.random() < 0.2 else r.randrange(n + 3)
            if r.random() < 0.6:
                step["in_batch"] = self._key()
            if r.random() < 0.1:
                step["elem_flags"] = r.choice([C.BPF_F_LOCK, 1, C.BPF_EXIST, 8])
            if r.random() < 0.1:
                step["flags"] = r.randrange(2**64)
        if kind in ("update_batch", "delete_batch"):
            n = self.shape["max_entries"]
            count = r.randrange(min(n, 40) + 3)
            if r.random() < 0.5:
                start = r.randrange(n)
                keys = [start + i for i in range(count)]
            else:
                keys = [self._key() if r.random() < 0.2 else r.randrange(n) for _ in range(count)]
            step["keys"] = keys
            if kind == "update_batch" and r.random() < 0.2:
                vs = int(self.shape["value_size"])
                step["values"] = [r.randbytes(vs).hex() for _ in keys]
            elif kind == "update_batch":
                step["ramp"] = r.randrange(256)
            if r.random() < 0.1:
                step["elem_flags"] = r.choice([C.BPF_F_LOCK, C.BPF_NOEXIST, C.BPF_EXIST, 8])
            if r.random() < 0.1:
                step["flags"] = r.randrange(2**64)  # ignored by the array map
        return step

    def _child_steps(self, handles: set[str], regions: set[str]) -> list[dict[str, Any]]:
        """Steps for a child that knows ``handles`` and ``regions`` (its own included)."""
        r = self.rng
        steps: list[dict[str, Any]] = []
        for _ in range(r.randrange(1, 4)):
            x = r.random()
            if x < 0.45 and handles:
                steps.append(
                    {"op": "mmap", "map": r.choice(sorted(handles)), "as": self._name("c"),
                     "writable": r.random() < 0.7}
                )
            elif x < 0.6 and regions:
                steps.append({"op": "close_region", "region": r.choice(sorted(regions))})
            elif x < 0.75 and regions:
                steps.append(
                    {"op": "write", "region": r.choice(sorted(regions)), "offset": 0,
                     "data": "c0ffee"}
                )
            elif handles:
                steps.append(self._map_step(r.choice(sorted(handles))))
        return steps

    @staticmethod
    def _child_made(steps: list[dict[str, Any]], out: Outcome, regions: set[str]) -> None:
        """The regions a child's mmap steps made."""
        results = out.get("ok") or []
        for st, res in zip(steps, results):
            if st["op"] == "mmap" and isinstance(res, dict) and "ok" in res:
                regions.add(st["as"])
