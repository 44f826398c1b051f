"""``bpfmap demo``: the seed's rules, step by step, on both backends side by side."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from . import BPF_F_MMAPABLE, BPF_NOEXIST, ArrayMap, kernel_unavailable_reason
from .cli.common import OneLineParser

Step = tuple[str, Callable[[dict[str, Any]], Any]]


def _show(result: Any) -> str:
    if isinstance(result, bytes):
        return result.hex() if len(result) <= 8 else result[:8].hex() + "..."
    return "ok" if result is None else str(result)


def _run(step: Callable[[dict[str, Any]], Any], state: dict[str, Any]) -> str:
    try:
        return _show(step(state))
    except OSError as exc:
        import errno as errno_mod

        return f"{errno_mod.errorcode.get(exc.errno or 0, 'ENOTSUPP')} ({exc.errno})"


def _steps() -> list[Step]:
    def create(s: dict[str, Any]) -> str:
        s["m"] = ArrayMap(8, 1024, flags=BPF_F_MMAPABLE, name="demo", backend=s["backend"])
        return "created"

    def store_via_mmap(s: dict[str, Any]) -> None:
        s["rw"] = s["m"].mmap()
        struct.pack_into("<Q", s["rw"], 8 * 3, 42)

    def close_rw(s: dict[str, Any]) -> None:
        s["rw"].close()

    def map_ro(s: dict[str, Any]) -> bytes:
        s["ro"] = s["m"].mmap(writable=False)
        return bytes(s["ro"][24:32])

    return [
        ("create array, value 8, 1024 entries, BPF_F_MMAPABLE", create),
        ("update key 1 = 7", lambda s: s["m"].update(1, struct.pack("<Q", 7))),
        ("lookup key 1", lambda s: s["m"].lookup(1)),
        ("update key 1 with BPF_NOEXIST", lambda s: s["m"].update(1, bytes(8), BPF_NOEXIST)),
        ("lookup key 1024 (out of range)", lambda s: s["m"].lookup(1024)),
        ("update key 1024 (out of range)", lambda s: s["m"].update(1024, bytes(8))),
        ("delete key 0", lambda s: s["m"].delete(0)),
        ("mmap read-write, store 42 at value 3", store_via_mmap),
        ("lookup key 3 (sees the store)", lambda s: s["m"].lookup(3)),
        ("freeze while a writable mapping exists", lambda s: s["m"].freeze()),
        ("munmap the writable mapping", close_rw),
        ("freeze", lambda s: s["m"].freeze()),
        ("freeze again", lambda s: s["m"].freeze()),
        ("update after freeze", lambda s: s["m"].update(0, bytes(8))),
        ("mmap read-write after freeze", lambda s: s["m"].mmap()),
        ("mmap read-only after freeze, read value 3", map_ro),
        ("mmap MAP_PRIVATE", lambda s: s["m"].mmap(writable=False, shared=False)),
    ]


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="bpfmap demo", description=__doc__)
    parser.parse_args(argv)
    reason = kernel_unavailable_reason()
    backends = ["emulated"] + ([] if reason else ["kernel"])
    states: dict[str, dict[str, Any]] = {b: {"backend": b} for b in backends}
    width = 52
    print(f"{'step':<{width}} " + " ".join(f"{b:<14}" for b in backends) + " same")
    agree = 0
    steps = _steps()
    for title, step in steps:
        results = [_run(step, states[b]) for b in backends]
        same = len(set(results)) == 1 if len(results) > 1 else None
        agree += bool(same)
        mark = {True: "yes", False: "NO", None: "-"}[same]
        print(f"{title:<{width}} " + " ".join(f"{r:<14}" for r in results) + f" {mark}")
    if reason:
        print(f"\nkernel backend skipped: {reason}")
    else:
        ids = ", ".join(f"{b} id {states[b]['m'].id}" for b in backends)
        print(f"\n{agree}/{len(steps)} steps agree ({ids}: each side numbers its own maps)")
    from . import demo_program

    demo_program.main(reason)
    return 0
