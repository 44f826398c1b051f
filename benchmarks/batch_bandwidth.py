"""Batch bandwidth on the emulated backend against memcpy (issue 15, item 3).

    python benchmarks/batch_bandwidth.py [--sizes 1e3,1e6,1e7] [--rounds N] [--ops ...]

For 8-byte values and every size, one map of that many entries and, taking turns
round by round so that all see the same machine:

- ``update_batch``: ``m.update_batch(keys, values)`` of every entry (keys an
  ``array('I')``, values one ``bytes``);
- ``pwrite``: one ``os.pwrite`` of the same values to their place in the map's
  memfd, the floor under ``update_batch`` (which checks every key, then makes
  that very call);
- ``lookup_batch``: ``m.lookup_batch()``, every entry, into a new ``Batch``;
- ``lookup_batch_into``: ``m.lookup_batch_into(keys, values)`` into buffers
  made in advance;
- ``memcpy n``: ``np.copyto(dst, src)`` of the same number of value bytes into
  a buffer made in advance (the bandwidth floor at this size);
- ``alloc copy 12n``: ``src.copy()`` of 12 bytes per entry with NumPy, as many
  bytes as ``lookup_batch`` returns (keys and values) in new buffers (GB/s and
  the ratio count its 8 bytes of values per entry, as every other row does);
- the reference of issue 15 and ``bpfmap bench``: ``src.copy()`` of 8 MiB with
  NumPy (it allocates its result, as ``lookup_batch`` does), timed in every round
  of every size.

Each row: the best round's time per call (this thread's CPU time, so other
processes' time slices do not count; wall time beside it), the value bytes per
second, the ratio to the 8 MiB reference's bandwidth (above 1: faster) and the
minor page faults per call (``resource.getrusage``). Figures from a shared
machine are noisy: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import array
import gc
import mmap
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # NumPy's BLAS threads spin beside us

import numpy as np  # noqa: E402

from bpfmap import ArrayMap  # noqa: E402

VALUE_SIZE = 8
REF_BYTES = 8 << 20
OPS = ("update_batch", "pwrite", "lookup_batch", "lookup_batch_into", "memcpy")


class Timed:
    """One statement: per-round CPU ns, wall ns and page faults per call."""

    def __init__(self, name: str, size: int, nbytes: int, fn: Callable[[], Any]) -> None:
        self.name, self.size, self.nbytes, self.fn = name, size, nbytes, fn
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.faults: list[float] = []
        fn()  # warm: the first call may allocate what later calls reuse

    def round(self, number: int) -> None:
        fn = self.fn
        # One call untimed first: the case before this one (up to 120 MiB moved) left
        # the caches cold, and the first call of each round would pay for it alone.
        fn()
        r0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(number):
            fn()
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        r1 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        self.cpu.append((c1 - c0) / number)
        self.wall.append((w1 - w0) / number)
        self.faults.append((r1 - r0) / number)


def number_for(nbytes: int) -> int:
    """Calls per round: about 64 MiB of values a round, at least three calls."""
    return max(3, min(10_000, (64 << 20) // max(nbytes, 1)))


def fmt_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def build(sizes: list[int], ops: list[str]) -> tuple[list[Timed], list[Callable[[], None]]]:
    cases: list[Timed] = []
    closers: list[Callable[[], None]] = []
    src8 = np.frombuffer(bytes(range(256)) * (REF_BYTES // 256), dtype=np.uint8)
    cases.append(Timed("reference: NumPy copy", REF_BYTES, REF_BYTES, src8.copy))
    for n in sizes:
        nb = n * VALUE_SIZE
        vals = bytes(range(256)) * (nb // 256) + bytes(nb % 256)
        keys = array.array("I", range(n))
        m = ArrayMap(VALUE_SIZE, n, name="h_batch_bw")
        closers.append(m.close)
        m.update_batch(keys, vals)
        if "update_batch" in ops:
            cases.append(Timed("update_batch", n, nb,
                               lambda m=m, k=keys, v=vals: m.update_batch(k, v)))
        if "pwrite" in ops:
            # Value 0 sits at the start of page 1 of the memfd (csrc/layout.h).
            cases.append(Timed("pwrite (floor)", n, nb,
                               lambda fd=m.fd, v=vals: os.pwrite(fd, v, mmap.PAGESIZE)))
        if "lookup_batch" in ops:
            cases.append(Timed("lookup_batch", n, nb, m.lookup_batch))
        if "lookup_batch_into" in ops:
            ok, ov = array.array("I", [0]) * n, bytearray(nb)
            cases.append(Timed("lookup_batch_into", n, nb,
                               lambda m=m, k=ok, v=ov: m.lookup_batch_into(k, v)))
        if "memcpy" in ops:
            s, d = np.frombuffer(vals, dtype=np.uint8), np.zeros(nb, dtype=np.uint8)
            cases.append(Timed("memcpy n (np.copyto)", n, nb,
                               lambda s=s, d=d: np.copyto(d, s)))
            # What lookup_batch returns, 4-byte keys and 8-byte values, as one
            # allocating NumPy copy: the floor of any call that returns new buffers.
            s12 = np.frombuffer(vals + vals[: 4 * n], dtype=np.uint8)  # real pages, not zero
            cases.append(Timed("alloc copy 12n (NumPy)", n, nb, s12.copy))
    return cases, closers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e3,1e4,1e5,1e6,1e7",
                    help="entries per map, comma-separated (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ops", default=",".join(OPS), help="default: %(default)s")
    args = ap.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    ops = args.ops.split(",")
    load0 = os.getloadavg()
    cases, closers = build(sizes, ops)
    gc.disable()
    try:
        # Size by size: a larger size's traffic (up to 120 MiB) leaves the caches and
        # the page LRU cold for the next, whose first calls would pay for it. Within
        # a size, the reference and the ops take turns, the order rotating each round.
        ref = cases[0]
        for size in sizes:
            group = [c for c in cases[1:] if c.size == size] or [ref]
            for r in range(args.rounds):
                ref.round(number_for(ref.nbytes))
                for c in group[r % len(group):] + group[: r % len(group)]:
                    c.round(number_for(c.nbytes))
    finally:
        gc.enable()
        for close in closers:
            close()
    ref_bw = ref.nbytes / min(ref.cpu)
    print(f"load average before/after: {load0[0]:.2f} / {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs; best of {args.rounds} rounds (thread CPU time)")
    head = (f"{'entries':>10} {'op':<22} {'time':>9} {'wall med':>9} {'GB/s':>6} "
            f"{'x memcpy':>8} {'faults':>8}")
    print(head)
    print("-" * len(head))
    for c in cases:
        best = min(c.cpu)
        print(f"{c.size:>10,} {c.name:<22} {fmt_time(best):>9} "
              f"{fmt_time(statistics.median(c.wall)):>9} {c.nbytes / best:6.2f} "
              f"{c.nbytes / best / ref_bw:8.2f} {min(c.faults):8.0f}")


if __name__ == "__main__":
    main()
