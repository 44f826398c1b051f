"""What every case is made of: :class:`Case`, :class:`Prepared`, :class:`Result`, the
backends' names, the timing of a statement (as :mod:`timeit` does) and the resources a case
holds (maps, regions, shared memory), released in reverse order."""

from __future__ import annotations

import gc
import mmap
import time
import timeit
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Callable

from .. import BPF_F_MMAPABLE, ArrayMap, _bindings

BACKENDS = ("emulated", "kernel", "kernel-mmap", "mmap", "shared_memory", "reference")
BACKEND_TITLES = {
    "emulated": "emulated",
    "kernel": "kernel syscall",
    "kernel-mmap": "kernel mmap",
    "mmap": "Python mmap",
    "shared_memory": "shared_memory",
    "reference": "reference",
}
BATCH_SIZES = (1, 64, 4096, 1 << 20)
ELEMENT_VALUE_SIZE = 8
ELEMENT_ENTRIES = 1024
KEY = 5  # the element the single-element cases touch
SLOTS = 64  # the writer->reader ring
TARGET_LOOKUP_VS_KERNEL = 8.0
TARGET_LOOKUP_VS_NOOP = 1.5
TARGET_UPDATE_VS_KERNEL = 2.0
TARGET_REGION_VS_MMAP = 1.05
TARGET_BATCH_VS_MEMCPY = 0.70
TARGET_KERNEL_VS_BARE = 1.1  # issue 15: the kernel backend within 1.1x of a bare cffi call

Runner = Callable[[int], int]


@dataclass
class Prepared:
    """A set-up case: ``run(loops)`` returns the ns that ``loops`` operations took.

    ``ops``: operations per loop (a program run that makes 100 map accesses: 100);
    ``repeats``: at most this many repeats (a case whose one operation takes a second)."""

    run: Runner
    once: Callable[[], object]
    cleanup: Callable[[], None]
    ops: int = 1
    repeats: int | None = None


class Skip(Exception):
    """Raised by a case's setup when the case cannot run here: the message says why."""


@dataclass
class Case:
    group: str
    op: str
    backend: str
    params: dict[str, int] = field(default_factory=dict)
    setup: Callable[[], Prepared] | None = None
    skip: str | None = None
    note: str = ""

    @property
    def label(self) -> str:
        extra = " ".join(f"{k}={human(v)}" for k, v in self.params.items())
        return f"{self.op} {extra}".strip()

    @property
    def id(self) -> str:
        return f"{self.label} [{self.backend}]"


@dataclass
class Result:
    case: Case
    ns_per_op: float | None = None
    repeats: list[float] = field(default_factory=list)
    loops: int = 0
    skipped: str | None = None


def human(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10}K"
    return str(n)


# ------------------------------------------------------------------ runners


def stmt_case(stmt: str, ns: dict[str, Any], cleanup: Callable[[], None]) -> Prepared:
    """A statement timed like :mod:`timeit` (a compiled loop, GC off)."""
    timer = timeit.Timer(stmt, globals=ns, timer=time.perf_counter_ns)
    try:
        code = compile(f"def _bench_once():\n    return {stmt}\n", "<bench>", "exec")
    except SyntaxError:  # an assignment
        code = compile(f"def _bench_once():\n    {stmt}\n", "<bench>", "exec")
    exec(code, ns)

    def run(loops: int) -> int:
        return int(timer.timeit(loops))

    def release() -> None:
        ns.clear()  # the statement's names (ndarrays, views) go before their buffers
        cleanup()

    return Prepared(run, ns["_bench_once"], release)


def nothing() -> None:
    pass


def kind_of(backend: str) -> str:
    return "kernel" if backend in ("kernel", "kernel-mmap", "mmap") else "emulated"


def new_map(backend: str, value_size: int, max_entries: int) -> ArrayMap:
    return ArrayMap(
        value_size, max_entries, flags=BPF_F_MMAPABLE, name="bpfmap_bench", backend=kind_of(backend)
    )


def elem_size(value_size: int) -> int:
    return _bindings.elem_size(value_size)  # round_up(value_size, 8): csrc/layout.h


class Resources:
    """What a case holds; released in reverse order (views before mappings)."""

    def __init__(self) -> None:
        self.items: list[Callable[[], None]] = []

    def map(self, backend: str, value_size: int, max_entries: int) -> ArrayMap:
        m = new_map(backend, value_size, max_entries)
        self.items.append(m.close)
        return m

    def region(self, m: ArrayMap) -> Any:
        r = m.mmap()
        self.items.append(r.close)
        return r

    def plain_mmap(self, m: ArrayMap) -> mmap.mmap:
        length = ((m.max_entries * elem_size(m.value_size)) + mmap.PAGESIZE - 1) & ~(
            mmap.PAGESIZE - 1
        )
        mm = mmap.mmap(m.fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.items.append(mm.close)
        return mm

    def shm(self, size: int) -> SharedMemory:
        s = SharedMemory(create=True, size=max(size, 1))

        def release() -> None:
            s.close()
            s.unlink()

        self.items.append(release)
        return s

    def view(self, obj: Any) -> memoryview:
        mv = memoryview(obj)
        self.items.append(mv.release)
        return mv

    def close(self) -> None:
        gc.collect()  # ndarrays and slices that still export a region
        while self.items:
            self.items.pop()()


def start_workers(ctx: Any, target: Callable[..., Any], argses: list[tuple[Any, ...]],
                  what: str) -> tuple[list[Connection], list[Any]]:
    """One daemon process of ``ctx`` per tuple of ``argses``, each given the child end of
    a pipe as its last argument: their parents' ends and the processes, once every one
    has said "ready" (a RuntimeError naming ``what`` if one did not)."""
    conns: list[Connection] = []
    procs = []
    for args in argses:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=target, args=(*args, child), daemon=True)
        p.start()
        child.close()
        conns.append(parent)
        procs.append(p)
    for c in conns:
        if c.recv() != "ready":
            raise RuntimeError(f"{what} failed to start")
    return conns, procs
