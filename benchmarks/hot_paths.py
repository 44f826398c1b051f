"""The hot calls against their floors, in one run (issue 15, items 1 and 2).

    python benchmarks/hot_paths.py [--rounds N] [--number N]

Each row times a public call and the floor it is judged against, interleaved
round by round so that both see the same machine; the figure is the best of
the rounds, in ns of this thread's CPU time per call, and the ratio is
call / floor:

- kernel backend: ``lookup``, ``lookup_into``, ``update`` against a bare cffi
  call of the same C core function (``lib.bpfmap_lookup``/``bpfmap_update``
  bound once, with the buffers made in advance), which makes the same ``bpf()``
  syscall, and against the fastest Python route to the same result (that call,
  then a slice of an ``ffi.buffer`` made once for the bytes; the call into
  ``ffi.from_buffer`` of the caller's bytearray);
- emulated backend: ``lookup`` and ``lookup_into`` against a cffi call that does
  nothing (``lib.bpfmap_noop``); ``lookup_into`` against ``lookup``; ``items()``
  per element against a ``lookup`` loop; ``update`` against one ``os.pwrite``
  of the value to its place.

Figures from a shared machine are noisy: compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import timeit
from typing import Any

import bpfmap
from bpfmap import ArrayMap, kernel_unavailable_reason

try:
    from bpfmap._bindings import ffi, lib
except ImportError:  # a bpfmap from before the bindings module, for a before/after run
    from bpfmap._core import ffi, lib  # type: ignore[no-redef]

VALUE_SIZE = 8
ENTRIES = 1024
KEY = 5


def _timer(stmt: str, env: dict[str, Any]) -> timeit.Timer:
    # timeit compiles the statement into its loop: no lambda or call around it. The
    # clock is this thread's CPU time: on a loaded machine, wall time counts the
    # time slices other processes take, and no number of rounds filters that out.
    return timeit.Timer(stmt, timer=time.thread_time, globals=env)


def _pair(call: str, floor: str, env: dict[str, Any], rounds: int, number: int,
          per: int = 1) -> tuple[float, float]:
    """Best of ns per call (divided by per) of two statements, rounds interleaved."""
    tc, tf = _timer(call, env), _timer(floor, env)
    calls, floors = [], []
    for _ in range(rounds):
        calls.append(tc.timeit(number) / number / per * 1e9)
        floors.append(tf.timeit(number) / number / per * 1e9)
    return min(calls), min(floors)


def _row(name: str, floor_name: str, call: float, floor: float, target: float) -> str:
    ratio = call / floor
    verdict = "ok" if ratio <= target else "over"
    return (f"{name:<28} {call:8.1f} ns   {floor_name:<28} {floor:8.1f} ns   "
            f"{ratio:5.2f}x (target <= {target}x: {verdict})")


def kernel_rows(rounds: int, number: int) -> list[str]:
    m = ArrayMap(VALUE_SIZE, ENTRIES, backend="kernel", name="hotpaths")
    cbuf = ffi.new("char[]", VALUE_SIZE)
    env = {"m": m, "h": m._h, "lib": lib, "ffi": ffi, "value": b"\x01" * VALUE_SIZE,
           "buf": bytearray(VALUE_SIZE), "cbuf": cbuf, "out": ffi.buffer(cbuf),
           "lookup": lib.bpfmap_lookup, "from_buffer": ffi.from_buffer}
    bare_lookup = f"lookup(h, {KEY}, cbuf, 0)"
    # The fastest Python route to the same result: the value as bytes (a slice of an
    # ffi.buffer made once: half the cost of ffi.unpack), or in the caller's bytearray.
    route_lookup = f"lookup(h, {KEY}, cbuf, 0); out[:]"
    route_into = f"lookup(h, {KEY}, from_buffer(buf), 0)"
    rows = []
    c, f = _pair(f"m.lookup({KEY})", bare_lookup, env, rounds, number)
    rows.append(_row("kernel lookup", "bare cffi bpfmap_lookup", c, f, 1.1))
    c, f = _pair(f"m.lookup({KEY})", route_lookup, env, rounds, number)
    rows.append(_row("kernel lookup", "bare call + buffer slice", c, f, 1.1))
    c, f = _pair(f"m.lookup_into({KEY}, buf)", bare_lookup, env, rounds, number)
    rows.append(_row("kernel lookup_into", "bare cffi bpfmap_lookup", c, f, 1.1))
    c, f = _pair(f"m.lookup_into({KEY}, buf)", route_into, env, rounds, number)
    rows.append(_row("kernel lookup_into", "bare call into from_buffer", c, f, 1.1))
    env["update"] = lib.bpfmap_update
    c, f = _pair(f"m.update({KEY}, value)", f"update(h, {KEY}, value, 0)", env, rounds, number)
    rows.append(_row("kernel update", "bare cffi bpfmap_update", c, f, 1.1))
    m.close()
    return rows


def emulated_rows(rounds: int, number: int) -> list[str]:
    m = ArrayMap(VALUE_SIZE, ENTRIES, name="hotpaths")
    env = {"m": m, "lib": lib, "os": os, "value": b"\x01" * VALUE_SIZE,
           "buf": bytearray(VALUE_SIZE), "fd": m.fd,
           "off": os.sysconf("SC_PAGE_SIZE") + KEY * 8}
    rows = []
    c, f = _pair(f"m.lookup({KEY})", "lib.bpfmap_noop()", env, rounds, number)
    rows.append(_row("emulated lookup", "no-op cffi call", c, f, 1.5))
    c, f = _pair(f"m.lookup_into({KEY}, buf)", "lib.bpfmap_noop()", env, rounds, number)
    rows.append(_row("emulated lookup_into", "no-op cffi call", c, f, 1.5))
    c, f = _pair(f"m.lookup_into({KEY}, buf)", f"m.lookup({KEY})", env, rounds, number)
    rows.append(_row("emulated lookup_into", "emulated lookup", c, f, 1.0))
    per = max(1, number // ENTRIES)
    c, f = _pair("for k, v in m.items(): pass", f"for k in range({ENTRIES}): m.lookup(k)",
                 env, rounds, per, ENTRIES)
    rows.append(_row("emulated items() per element", "lookup loop per element", c, f, 1.5))
    c, f = _pair("m.update(5, value)", "os.pwrite(fd, value, off)", env, rounds, number)
    rows.append(_row("emulated update", "one os.pwrite", c, f, 1.1))
    m.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--number", type=int, default=20000)
    args = ap.parse_args(argv)
    print(f"value_size {VALUE_SIZE}, {ENTRIES} entries; best of {args.rounds} rounds of "
          f"{args.number} calls (thread CPU time), interleaved with the floor; "
          f"Python {sys.version.split()[0]}; bpfmap from {os.path.dirname(bpfmap.__file__)}")
    rows = emulated_rows(args.rounds, args.number)
    reason = kernel_unavailable_reason()
    if reason is None:
        rows += kernel_rows(args.rounds, args.number)
    else:
        rows.append(f"kernel backend skipped: {reason}")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
