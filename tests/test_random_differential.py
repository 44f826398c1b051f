"""Seeded random differential test: the same random operations on both backends, in lockstep.

Random map shapes (value_size 1..80, max_entries 1..40, now and then an invalid
shape) and flags (valid and invalid combinations), then random sequences of
lookup / lookup_into / update / delete / lookup_and_delete / get_next_key /
lookup_batch / update_batch / delete_batch / freeze / info / mmap and writes,
reads and closes of the regions, with random keys (in range, at the end, far
out) and random flags. Every outcome (bytes, errno, batch count) must be equal;
at the end of each map's life the full contents are compared too (every value,
and every byte of an RO mapping when the handle allows one).

    BPFMAP_SEED=<n>          replay a run (the seed is printed, and named in failures)
    BPFMAP_RANDOM_OPS=<n>    total operations (default 5000)
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from test_differential import norm, o, sparse

from bpfmap import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_INNER_MAP,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NO_PREALLOC,
    BPF_F_NUMA_NODE,
    BPF_F_PRESERVE_ELEMS,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY,
    BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED,
    BPF_NOEXIST,
    ArrayMap,
    MapRegion,
)
from bpfmap._map import PAGE_SIZE as P

MM = BPF_F_MMAPABLE
U32 = 2**32 - 1

VALID_FLAGS = [
    0,
    MM,
    MM,
    MM,
    MM | BPF_F_RDONLY,
    MM | BPF_F_WRONLY,
    BPF_F_RDONLY,
    BPF_F_WRONLY,
    MM | BPF_F_RDONLY_PROG,
    MM | BPF_F_WRONLY_PROG,
    BPF_F_RDONLY_PROG,
    MM | BPF_F_INNER_MAP,
    MM | BPF_F_NUMA_NODE,
    BPF_F_INNER_MAP | BPF_F_NUMA_NODE,
]
INVALID_FLAGS = [
    BPF_F_NO_PREALLOC,
    BPF_F_ZERO_SEED,
    BPF_F_PRESERVE_ELEMS,
    BPF_F_RDONLY | BPF_F_WRONLY,
    BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG,
    MM | (1 << 31),
    MM | (1 << 16),
    MM | (1 << 13),
]


class Gen:
    """Random parameters for one map."""

    def __init__(self, rng: random.Random, max_entries: int, value_size: int) -> None:
        self.r, self.n, self.vs = rng, max_entries, value_size

    def key(self) -> int:
        r, n = self.r, self.n
        x = r.random()
        if x < 0.75:
            return r.randrange(n)
        if x < 0.85:
            return n
        if x < 0.92:
            return n + r.randrange(1, 6)
        return U32 if x < 0.96 else r.randrange(2**32)

    def opt_key(self) -> int | None:
        return None if self.r.random() < 0.3 else self.key()

    def value(self) -> bytes:
        return self.r.randbytes(self.vs)

    def lookup_flags(self) -> int:
        r = self.r
        return (
            0
            if r.random() < 0.8
            else r.choice([BPF_F_LOCK, 1, 2, 8, BPF_F_LOCK | 1, r.randrange(2**64)])
        )

    def update_flags(self) -> int:
        r = self.r
        if r.random() < 0.75:
            return r.choice([BPF_ANY, BPF_ANY, BPF_EXIST, BPF_NOEXIST])
        return r.choice([BPF_F_LOCK, BPF_F_LOCK | BPF_EXIST, 3, 8, r.randrange(2**64)])

    def elem_flags(self) -> int:
        r = self.r
        return 0 if r.random() < 0.85 else r.choice([BPF_F_LOCK, BPF_NOEXIST, BPF_EXIST, 8])

    def batch_flags(self) -> int:
        return 0 if self.r.random() < 0.9 else self.r.randrange(2**64)

    def count(self) -> int | None:
        r = self.r
        return None if r.random() < 0.2 else r.randrange(self.n + 4)

    def keys(self) -> list[int]:
        r = self.r
        k = r.randrange(self.n + 3)
        if r.random() < 0.5:  # a run of consecutive keys, the emulation's fast path
            start = r.randrange(self.n)
            return [start + i for i in range(k)]
        return [self.key() if r.random() < 0.2 else r.randrange(self.n) for _ in range(k)]

    def mmap_args(self, window: int) -> dict[str, Any]:
        r = self.r
        kw: dict[str, Any] = {"writable": r.random() < 0.5}
        if r.random() < 0.1:
            kw["shared"] = False
        x = r.random()
        if x < 0.7:
            off = 0
        elif x < 0.85:
            off = P * r.randrange(3)
        elif x < 0.93:
            off = window
        else:
            off = r.randrange(1, 3 * P)
        if off:
            kw["offset"] = off
        y = r.random()
        if y < 0.5:
            pass
        elif y < 0.9:
            kw["length"] = r.randrange(window + 2 * P)
        else:
            kw["length"] = r.choice([2 * window, 2**62, window - off + 1, P])
        return kw


def random_shape(rng: random.Random) -> dict[str, Any]:
    name: str | bytes
    vs = rng.randrange(1, 81)
    n = rng.randrange(1, 41)
    if rng.random() < 0.05:
        vs = rng.choice([0, 0x80000000, U32])
    if rng.random() < 0.05:
        n = 0
    flags = rng.choice(VALID_FLAGS) if rng.random() < 0.85 else rng.choice(INVALID_FLAGS)
    if rng.random() < 0.92:
        name = rng.choice(["", "", "rnd", "rnd_map.1", "y" * 15, b"\xe9t\xe9", b"ab\0-!"])
    else:
        name = rng.choice(["bad-name", "x" * 16, "a b", "\u20ac"])
    return {"value_size": vs, "max_entries": n, "flags": flags, "name": name}


class Pair:
    """One map on both backends: its handles (the first one created it) and its mappings."""

    def __init__(self, emu: ArrayMap, ker: ArrayMap) -> None:
        self.handles: list[tuple[ArrayMap, ArrayMap]] = [(emu, ker)]
        self.regions: list[tuple[MapRegion, MapRegion]] = []

    def open_handles(self) -> list[tuple[ArrayMap, ArrayMap]]:
        return [h for h in self.handles if not h[0].closed]

    def close(self) -> None:
        for a, b in self.regions:
            a.close()
            b.close()
        self.regions.clear()
        for h in self.handles:
            for m in h:
                m.close()


def outcome_keep(fn: Callable[[], Any]) -> tuple[Any, Any]:
    """Like ``o`` but hands back a new MapRegion or ArrayMap instead of normalising it."""
    try:
        r = fn()
    except OSError as exc:
        return (("errno", exc.errno, getattr(exc, "count", None)), None)
    except (TypeError, ValueError) as exc:
        return (("raise", type(exc).__name__), None)
    if isinstance(r, MapRegion):
        return (("ok", "region", len(r), r.writable), r)
    if isinstance(r, ArrayMap):
        return (("ok", "map"), r)
    return (("ok", norm(r)), None)


def map_op(g: Gen, rng: random.Random, window: int) -> tuple[str, Callable[[ArrayMap], Any]]:
    """A random map operation, with its parameters drawn once for both backends."""
    kind = rng.choices(
        [
            "lookup",
            "lookup_into",
            "update",
            "delete",
            "lad",
            "next",
            "lbatch",
            "ubatch",
            "dbatch",
            "freeze",
            "info",
            "mmap",
            "iter",
        ],
        weights=[14, 3, 16, 2, 2, 6, 8, 8, 1, 0.8, 2, 8, 1],
    )[0]
    if kind == "lookup":
        k, f = g.key(), g.lookup_flags()
        return f"lookup({k}, {f})", lambda m: m.lookup(k, f)
    if kind == "lookup_into":
        k, f, extra = g.key(), g.lookup_flags(), rng.randrange(4)
        fillb = rng.randrange(256)

        def into(m: ArrayMap) -> Any:
            buf = bytearray([fillb]) * (m.value_size + extra)
            m.lookup_into(k, buf, f)
            return buf

        return f"lookup_into({k}, {f}, +{extra})", into
    if kind == "update":
        k, v, f = g.key(), g.value(), g.update_flags()
        return f"update({k}, {v.hex()}, {f})", lambda m: m.update(k, v, f)
    if kind == "delete":
        k = g.key()
        return f"delete({k})", lambda m: m.delete(k)
    if kind == "lad":
        k, f = g.key(), g.lookup_flags()
        return f"lookup_and_delete({k}, {f})", lambda m: m.lookup_and_delete(k, f)
    if kind == "next":
        k = g.opt_key()
        return f"get_next_key({k})", lambda m: m.get_next_key(k)
    if kind == "lbatch":
        c, ib, ef, fl = g.count(), g.opt_key(), g.elem_flags(), g.batch_flags()
        return (
            f"lookup_batch({c}, in_batch={ib}, elem_flags={ef}, flags={fl})",
            lambda m: m.lookup_batch(c, in_batch=ib, elem_flags=ef, flags=fl),
        )
    if kind == "ubatch":
        ks, ef, fl = g.keys(), g.elem_flags(), g.batch_flags()
        vs = [g.value() for _ in ks]
        return (
            f"update_batch({ks}, elem_flags={ef}, flags={fl})",
            lambda m: m.update_batch(ks, vs, elem_flags=ef, flags=fl),
        )
    if kind == "dbatch":
        ks, ef = g.keys(), g.elem_flags()
        return f"delete_batch({ks}, elem_flags={ef})", lambda m: m.delete_batch(ks, elem_flags=ef)
    if kind == "freeze":
        return "freeze()", lambda m: m.freeze()
    if kind == "info":
        return "info()", lambda m: (m.info(), m.frozen, m.flags, m.access, m.name, len(m))
    if kind == "iter":
        return "items()", lambda m: list(m.items())
    kw = g.mmap_args(window)
    return f"mmap({kw})", lambda m: m.mmap(**kw)


def final_contents(m: ArrayMap) -> Any:
    """Every value, and (where this handle can map the map read-only) every byte of the window."""
    out: list[Any] = [o(lambda: [m.lookup(k) for k in range(m.max_entries)])]
    out.append(o(lambda: list(m.batches(7))))
    out.append(o(lambda: m.mmap(writable=False)))
    return out


def run_random(seed: int, total_ops: int) -> dict[str, int]:
    rng = random.Random(seed)
    stats = {"ops": 0, "maps": 0, "create_failures": 0, "errors": 0}
    trail: list[str] = []

    def where(msg: str) -> str:
        tail = "\n  ".join(trail[-25:])
        return f"BPFMAP_SEED={seed}: {msg}\nlast operations:\n  {tail}"

    while stats["ops"] < total_ops:
        shape = random_shape(rng)
        trail.append(f"--- ArrayMap(**{shape})")
        made = [
            outcome_keep(lambda be=be, shape=shape: ArrayMap(backend=be, **shape))
            for be in ("emulated", "kernel")
        ]
        stats["ops"] += 1
        if made[0][0][0] != "ok" or made[1][0][0] != "ok":
            for _, mp in made:
                if mp is not None:
                    mp.close()
            assert made[0][0] == made[1][0], where(f"create {shape}: {made[0][0]} != {made[1][0]}")
            stats["create_failures"] += 1
            continue
        pair = Pair(made[0][1], made[1][1])
        stats["maps"] += 1
        n, vs = shape["max_entries"], shape["value_size"]
        g = Gen(rng, n, vs)
        window = -(-(n * ((vs + 7) & ~7)) // P) * P
        try:
            left = rng.randrange(5, 150)
            while left > 0 and stats["ops"] < total_ops:
                left -= 1
                stats["ops"] += 1
                x = rng.random()
                if x < 0.12:
                    if not pair.regions:
                        continue
                    desc, results = region_op(rng, pair)
                elif x < 0.126:
                    i = rng.randrange(len(pair.handles))
                    desc = f"handle[{i}].close()"
                    for mp in pair.handles[i]:
                        mp.close()
                    if not pair.open_handles():
                        left = min(left, 4)  # a few calls on closed handles, then the next map
                    results = [("ok",), ("ok",)]
                elif x < 0.135:
                    # A second handle on the same map: dup(fd) + from_fd, as a process
                    # that received the fd would; the same access mode as the first.
                    i = rng.randrange(len(pair.handles))
                    desc = f"handle[{i}] dup -> handle[{len(pair.handles)}]"
                    res = [
                        outcome_keep(lambda mp=mp: ArrayMap.from_fd(os.dup(mp.fd)))
                        for mp in pair.handles[i]
                    ]
                    results = [r[0] for r in res]
                    if res[0][1] is not None and res[1][1] is not None:
                        pair.handles.append((res[0][1], res[1][1]))
                    else:
                        for _, mp in res:
                            if mp is not None:
                                mp.close()
                else:
                    h = rng.randrange(len(pair.handles))
                    desc, fn = map_op(g, rng, window)
                    desc = f"handle[{h}].{desc}"
                    res = [outcome_keep(lambda mp=mp, fn=fn: fn(mp)) for mp in pair.handles[h]]
                    results = [r[0] for r in res]
                    if res[0][1] is not None or res[1][1] is not None:
                        if res[0][1] is not None and res[1][1] is not None:
                            pair.regions.append((res[0][1], res[1][1]))
                        else:
                            for _, reg in res:
                                if reg is not None:
                                    reg.close()
                trail.append(f"{desc} -> {results[1]}")
                if results[1][0] != "ok":
                    stats["errors"] += 1
                assert results[0] == results[1], where(
                    f"{desc}: emulated {results[0]} != kernel {results[1]}"
                )
            # The full contents, through the map and through every live region.
            for h in pair.open_handles():
                ends = [final_contents(mp) for mp in h]
                assert ends[0] == ends[1], where("final contents differ")
            for a, b in pair.regions:
                assert sparse(bytes(a)) == sparse(bytes(b)), where("final region bytes differ")
        finally:
            pair.close()
    return stats


def region_op(rng: random.Random, pair: Pair) -> tuple[str, list[Any]]:
    i = rng.randrange(len(pair.regions))
    a, b = pair.regions[i]
    x = rng.random()
    if x < 0.5 and len(a):
        off = rng.randrange(len(a))
        data = rng.randbytes(rng.randrange(1, min(64, len(a) - off) + 1))
        desc = f"region[{i}][{off}:{off + len(data)}] = {data.hex()} (writable={a.writable})"

        def write(r: MapRegion) -> Any:
            r[off : off + len(data)] = data

        return desc, [o(lambda: write(a)), o(lambda: write(b))]
    if x < 0.8:
        return f"bytes(region[{i}])", [o(lambda: sparse(bytes(a))), o(lambda: sparse(bytes(b)))]
    pair.regions.pop(i)
    a.close()
    b.close()
    return f"region[{i}].close()", [("ok",), ("ok",)]


def test_random_differential(kernel: None) -> None:
    seed = int(os.environ.get("BPFMAP_SEED", random.SystemRandom().randrange(2**32)))
    total = int(os.environ.get("BPFMAP_RANDOM_OPS", "5000"))
    print(f"BPFMAP_SEED={seed} BPFMAP_RANDOM_OPS={total}")
    t0 = time.monotonic()
    stats = run_random(seed, total)
    print(f"random differential: {stats} in {time.monotonic() - t0:.1f}s")
    assert stats["ops"] >= total
