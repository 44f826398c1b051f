"""``bpfmap bench``: both backends against each other and Python's shared memory.

Every case is one operation on one backend:

``emulated``
    the emulated map through the API (and its :class:`~bpfmap.MapRegion`);
``kernel``
    a real kernel map through the ``bpf()`` syscalls;
``kernel-mmap``
    a real kernel map through its ``mmap()`` (a :class:`~bpfmap.MapRegion`);
``shared_memory``
    :mod:`multiprocessing.shared_memory`, the plain-Python baseline;
``mmap``
    (region cases only) Python's own :class:`mmap.mmap` of a kernel map's fd,
    the reference a :class:`~bpfmap.MapRegion` must match;
``reference``
    a no-op cffi call and a NumPy copy (memcpy bandwidth).

Timing: :func:`time.perf_counter_ns` around a compiled loop of the statement
(as :mod:`timeit` does, garbage collection off), the loop count calibrated so
that one repeat lasts a few milliseconds, the median of several repeats. An
operation with no meaning for a backend is skipped with the reason; so is every
kernel case when ``bpf()`` is unavailable. The same catalogue of cases feeds the
pytest-benchmark suite in ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import mmap
import os
import platform
import statistics
import struct
import sys
import time
import timeit
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Callable

from . import BPF_F_MMAPABLE, ArrayMap, kernel_unavailable_reason

lib: Any = importlib.import_module("bpfmap._core").lib  # cffi: no stubs

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

Runner = Callable[[int], int]


@dataclass
class Prepared:
    """A set-up case: ``run(loops)`` returns the ns that ``loops`` operations took."""

    run: Runner
    once: Callable[[], object]
    cleanup: Callable[[], None]


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
        extra = " ".join(f"{k}={_human(v)}" for k, v in self.params.items())
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


def _human(n: int) -> str:
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


def _nothing() -> None:
    pass


def _kind(backend: str) -> str:
    return "kernel" if backend in ("kernel", "kernel-mmap", "mmap") else "emulated"


def _new_map(backend: str, value_size: int, max_entries: int) -> ArrayMap:
    return ArrayMap(
        value_size, max_entries, flags=BPF_F_MMAPABLE, name="bpfmap_bench", backend=_kind(backend)
    )


def _elem_size(value_size: int) -> int:
    return (value_size + 7) & ~7


class _Resources:
    """What a case holds; released in reverse order (views before mappings)."""

    def __init__(self) -> None:
        self.items: list[Callable[[], None]] = []

    def map(self, backend: str, value_size: int, max_entries: int) -> ArrayMap:
        m = _new_map(backend, value_size, max_entries)
        self.items.append(m.close)
        return m

    def region(self, m: ArrayMap) -> Any:
        r = m.mmap()
        self.items.append(r.close)
        return r

    def plain_mmap(self, m: ArrayMap) -> mmap.mmap:
        length = ((m.max_entries * _elem_size(m.value_size)) + mmap.PAGESIZE - 1) & ~(
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


# -------------------------------------------------------------- the cases


def _element_case(op: str, backend: str, vs: int, n: int = ELEMENT_ENTRIES) -> Prepared:
    res = _Resources()
    try:
        off = KEY * _elem_size(vs)
        ns: dict[str, Any] = {"k": KEY, "o": off, "e": off + vs, "v": b"\x5a" * vs}
        if backend in ("emulated", "kernel"):
            ns["m"] = m = res.map(backend, vs, n)
            m.update(KEY, ns["v"])
            ns["ba"] = bytearray(vs)
            stmt = {
                "lookup": "m.lookup(k)",
                "lookup_into": "m.lookup_into(k, ba)",
                "update": "m.update(k, v)",
            }[op]
        else:
            if backend == "kernel-mmap":
                buf: Any = res.region(res.map(backend, vs, n))
            else:
                buf = res.shm(n * _elem_size(vs)).buf
            buf[off : off + vs] = ns["v"]
            ns["b"] = buf
            ns["src"] = res.view(buf)
            ns["dst"] = res.view(bytearray(vs))
            stmt = {
                "lookup": "b[o:e]" if backend == "kernel-mmap" else "b[o:e].tobytes()",
                "lookup_into": "dst[:] = src[o:e]",
                "update": "b[o:e] = v",
            }[op]
        return stmt_case(stmt, ns, res.close)
    except BaseException:
        res.close()
        raise


def _batch_case(op: str, backend: str, count: int) -> Prepared:
    res = _Resources()
    try:
        vs = 8
        ns: dict[str, Any] = {
            "c": count,
            "nb": count * vs,
            "vals": bytes(range(256)) * (count * vs // 256) + bytes(count * vs % 256),
        }
        if backend in ("emulated", "kernel"):
            import array

            ns["m"] = m = res.map(backend, vs, count)
            ns["keys"] = array.array("I", range(count))
            m.update_batch(ns["keys"], ns["vals"])
            ns["out_keys"], ns["out"] = array.array("I", [0]) * count, bytearray(count * vs)
            stmt = {
                "lookup_batch": "m.lookup_batch(c)",
                "lookup_batch_into": "m.lookup_batch_into(out_keys, out)",
                "update_batch": "m.update_batch(keys, vals)",
            }[op]
        else:
            if backend == "kernel-mmap":
                buf: Any = res.region(res.map(backend, vs, count))
                ns["b"] = buf
                read = "b[0:nb]"
            else:
                ns["b"] = buf = res.shm(count * vs).buf
                read = "b[0:nb].tobytes()"
            ns["src"], ns["dst"] = res.view(buf), res.view(bytearray(count * vs))
            stmt = {
                "lookup_batch": read,
                "lookup_batch_into": "dst[:] = src[0:nb]",
                "update_batch": "b[0:nb] = vals",
            }[op]
        return stmt_case(stmt, ns, res.close)
    except BaseException:
        res.close()
        raise


REGION_STYLES = {
    # style: (read statement, write statement)
    "struct": ("unpack(b, o)", "pack(b, o, 7)"),
    "memoryview": ("mv[o:e].tobytes()", "mv[o:e] = v"),
    "numpy": ("a[k]", "a[k] = 7"),
}


def _region_case(style: str, write: bool, backend: str) -> Prepared:
    res = _Resources()
    try:
        vs, n = 8, ELEMENT_ENTRIES
        off = KEY * vs
        ns: dict[str, Any] = {"k": KEY, "o": off, "e": off + vs, "v": b"\x5a" * vs}
        if backend in ("emulated", "kernel-mmap"):
            buf: Any = res.region(res.map(backend, vs, n))
        elif backend == "mmap":
            buf = res.plain_mmap(res.map(backend, vs, n))
        else:
            buf = res.shm(n * vs).buf
        ns["b"] = buf
        st = struct.Struct("<Q")
        ns["unpack"], ns["pack"] = st.unpack_from, st.pack_into
        if style == "memoryview":
            ns["mv"] = res.view(buf)
        if style == "numpy":
            import numpy as np

            if backend in ("emulated", "kernel-mmap"):
                ns["a"] = buf.ndarray("<u8")
            else:
                ns["a"] = np.ndarray((n,), dtype="<u8", buffer=buf)
        read_stmt, write_stmt = REGION_STYLES[style]
        return stmt_case(write_stmt if write else read_stmt, ns, res.close)
    except BaseException:
        res.close()
        raise


def _cycle_case(backend: str, n: int) -> Prepared:
    vs = 8
    size = n * vs
    if backend == "shared_memory":

        def cycle() -> None:
            s = SharedMemory(create=True, size=size)
            s.close()
            s.unlink()

    else:
        kind = _kind(backend)

        def cycle() -> None:
            m = ArrayMap(vs, n, flags=BPF_F_MMAPABLE, name="bpfmap_bench", backend=kind)
            r = m.mmap(writable=False)
            m.freeze()
            r.close()
            m.close()

    return stmt_case("cycle()", {"cycle": cycle}, _nothing)


# -- writer process -> reader process ---------------------------------------


def _stream_io(
    kind: str, target: Any
) -> tuple[Callable[[int], int], Callable[[int, int], None], Callable[[], None]]:
    st = struct.Struct("<Q")
    if kind == "api":
        m: ArrayMap = target
        unpack, pack, lookup, update = st.unpack, st.pack, m.lookup, m.update

        def read(k: int) -> int:
            return int(unpack(lookup(k))[0])

        def write(k: int, v: int) -> None:
            update(k, pack(v))

        return read, write, m.close
    if kind == "mmap":
        region = target.mmap()
    else:
        # Forked: the creator's resource tracker is ours too, and it already
        # knows the name, so attaching adds nothing it would unlink twice.
        shm = SharedMemory(name=target)
        region = shm.buf
    unpack_from, pack_into = st.unpack_from, st.pack_into

    def read_mem(k: int) -> int:
        return int(unpack_from(region, k * 8)[0])

    def write_mem(k: int, v: int) -> None:
        pack_into(region, k * 8, v)

    def close() -> None:
        if kind == "mmap":
            region.close()
        else:
            shm.close()

    return read_mem, write_mem, close


def _spin(read: Callable[[int], int], key: int, ready: Callable[[int], bool]) -> int:
    """Poll ``key`` until ``ready(value)``; yields the CPU now and then, never sleeps."""
    spins = 0
    while True:
        v = read(key)
        if ready(v):
            return v
        spins += 1
        if spins & 63 == 0:
            os.sched_yield()


def _room(i: int, tail: int) -> bool:
    return i - tail < SLOTS


def _after(done: int, head: int) -> bool:
    return head > done


def _stream_worker(role: str, kind: str, target: Any, conn: Connection) -> None:
    """Key 0: messages written (head); key 1: messages read (tail); keys 2..: the ring."""
    read, write, close = _stream_io(kind, target)
    done = 0  # messages this worker has handled so far, over all rounds
    try:
        conn.send("ready")
        while True:
            count = conn.recv()
            if count is None:
                return
            ok = True
            end = done + count
            if role == "writer":
                tail = read(1)
                for i in range(done, end):
                    if i - tail >= SLOTS:
                        tail = _spin(read, 1, partial(_room, i))
                    write(2 + i % SLOTS, i + 1)
                    write(0, i + 1)
            else:
                while done < end:
                    head = _spin(read, 0, partial(_after, done))
                    for i in range(done, head):
                        ok = ok and read(2 + i % SLOTS) == i + 1
                    done = head
                    write(1, head)
            done = end
            conn.send(ok)
    finally:
        close()
        conn.close()


def _stream_case(backend: str) -> Prepared:
    res = _Resources()
    ctx = get_context("fork")  # the children inherit the map's descriptor
    try:
        n = 2 + SLOTS
        target: Any
        if backend == "shared_memory":
            kind, target = "shm", res.shm(n * 8).name
        else:
            m = res.map(backend, 8, n)
            kind, target = ("mmap" if backend == "kernel-mmap" else "api"), m
        conns: list[Connection] = []
        procs = []
        for role in ("writer", "reader"):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_stream_worker, args=(role, kind, target, child), daemon=True)
            p.start()
            child.close()
            conns.append(parent)
            procs.append(p)
        for c in conns:
            if c.recv() != "ready":
                raise RuntimeError("stream worker failed to start")

        def run(loops: int) -> int:
            t0 = time.perf_counter_ns()
            for c in conns:
                c.send(loops)
            results = [c.recv() for c in conns]
            elapsed = time.perf_counter_ns() - t0
            if not all(results):
                raise RuntimeError(f"{backend}: the reader saw a value out of order")
            return elapsed

        def cleanup() -> None:
            for c in conns:
                with contextlib.suppress(OSError):
                    c.send(None)
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()
            for c in conns:
                c.close()
            res.close()

        return Prepared(run, lambda: run(1000), cleanup)
    except BaseException:
        res.close()
        raise


# -- references ------------------------------------------------------------------


def _noop_case() -> Prepared:
    return stmt_case("noop()", {"noop": lib.bpfmap_noop}, _nothing)


def _noop_attr_case() -> Prepared:
    return stmt_case("lib.bpfmap_noop()", {"lib": lib}, _nothing)


def _memcpy_case(nbytes: int) -> Prepared:
    import numpy as np

    src = np.frombuffer(bytes(range(256)) * (nbytes // 256), dtype=np.uint8)
    return stmt_case("src.copy()", {"src": src}, _nothing)


# -- the catalogue -----------------------------------------------------------------


def _numpy_missing() -> str | None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "NumPy is not installed (pip install bpfmap[numpy])"
    return None


def cases(full: bool = False, kernel_reason: str | None = None) -> list[Case]:
    """Every case of a run; kernel cases carry ``skip`` when ``kernel_reason`` is set."""
    out: list[Case] = []
    no_numpy = _numpy_missing()

    def add(
        group: str,
        op: str,
        backend: str,
        params: dict[str, int],
        setup: Callable[[], Prepared] | None,
        skip: str | None = None,
        note: str = "",
    ) -> None:
        if skip is None and kernel_reason and _kind(backend) == "kernel" and backend != "reference":
            skip = f"kernel backend unavailable: {kernel_reason}"
        out.append(Case(group, op, backend, params, None if skip else setup, skip, note))

    add("reference", "noop cffi call", "reference", {}, _noop_attr_case, note="lib.bpfmap_noop()")
    add(
        "reference",
        "memcpy (NumPy copy)",
        "reference",
        {"bytes": 8 << 20},
        partial(_memcpy_case, 8 << 20),
        skip=no_numpy,
    )

    sizes = (8, 64, 512, 4096, 32768) if full else (8, 512, 4096)
    for op in ("lookup", "lookup_into", "update"):
        for vs in sizes if op != "lookup_into" else (8,):
            group = "elements" if vs == ELEMENT_VALUE_SIZE else "value_size"
            for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
                add(group, op, be, {"value_size": vs}, partial(_element_case, op, be, vs))

    for op in ("lookup_batch", "lookup_batch_into", "update_batch"):
        for count in BATCH_SIZES:
            for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
                note = "values only, no keys" if be in ("kernel-mmap", "shared_memory") else ""
                add(
                    "batch",
                    op,
                    be,
                    {"values": count},
                    partial(_batch_case, op, be, count),
                    note=note,
                )

    for style in REGION_STYLES:
        for write in (False, True):
            op = f"region {style} {'write' if write else 'read'}"
            for be in ("emulated", "kernel", "kernel-mmap", "mmap", "shared_memory"):
                skip = None
                if be == "kernel":
                    skip = "the syscall path has no mapping (see kernel-mmap)"
                elif style == "numpy":
                    skip = no_numpy
                add("region", op, be, {}, partial(_region_case, style, write, be), skip=skip)

    entries = (1, 4096, 1 << 20) if not full else (1, 64, 4096, 65536, 1 << 20)
    for n in entries:
        for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
            skip = "the same cycle as kernel (it maps the map)" if be == "kernel-mmap" else None
            note = "create+map+close, no freeze" if be == "shared_memory" else ""
            add(
                "cycle",
                "create+mmap+freeze+close",
                be,
                {"max_entries": n},
                partial(_cycle_case, be, n),
                skip=skip,
                note=note,
            )

    for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
        add(
            "stream",
            "writer->reader message",
            be,
            {},
            partial(_stream_case, be),
            note="2 processes, 64-slot ring",
        )
    return out


# --------------------------------------------------------------------- running


def calibrate(run: Runner, target_ns: int) -> int:
    """The loop count for which one repeat takes about ``target_ns``."""
    loops = 1
    while True:
        elapsed = run(loops)
        if elapsed >= target_ns or loops >= 1 << 30:
            return loops
        grow = target_ns / max(elapsed, 1)
        loops = max(loops + 1, min(int(loops * grow * 1.1), loops * 100))


def measure(prepared: Prepared, repeats: int, target_ns: int) -> tuple[float, list[float], int]:
    loops = calibrate(prepared.run, target_ns)
    per_op = [prepared.run(loops) / loops for _ in range(repeats)]
    return statistics.median(per_op), per_op, loops


class Progress:
    """A plain-text progress bar on stderr."""

    def __init__(self, total: int, stream: Any = None, width: int = 30) -> None:
        self.total, self.done, self.width = total, 0, width
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def show(self, what: str) -> None:
        filled = self.width * self.done // max(self.total, 1)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {what}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:120])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, what: str) -> None:
        self.show(what)
        self.done += 1

    def finish(self) -> None:
        self.show("done")
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def run_cases(
    selected: Sequence[Case], repeats: int, target_ns: int, progress: Progress | None = None
) -> list[Result]:
    results = []
    for case in selected:
        if progress:
            progress.step(case.id)
        if case.skip or case.setup is None:
            results.append(Result(case, skipped=case.skip or "no setup"))
            continue
        try:
            prepared = case.setup()
        except OSError as exc:
            results.append(Result(case, skipped=f"setup failed: {exc}"))
            continue
        try:
            med, reps, loops = measure(prepared, repeats, target_ns)
            results.append(Result(case, med, reps, loops))
        except Exception as exc:  # one broken case must not lose the others
            results.append(Result(case, skipped=f"failed: {type(exc).__name__}: {exc}"))
        finally:
            prepared.cleanup()
    if progress:
        progress.finish()
    return results


# --------------------------------------------------------------------- reporting


def _find(results: Sequence[Result], op: str, backend: str, **params: int) -> float | None:
    for r in results:
        c = r.case
        if (
            c.op == op
            and c.backend == backend
            and all(c.params.get(k) == v for k, v in params.items())
        ):
            return r.ns_per_op
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def freeze_check() -> str:
    """Freeze stays exact after fast-path updates: succeeds, then update is EPERM."""
    m = ArrayMap(8, 4, flags=BPF_F_MMAPABLE)
    try:
        m.update(1, b"\x01" * 8)
        r = m.mmap(writable=True)
        try:
            m.freeze()
            return "FAILED: freeze succeeded with a writable mapping"
        except OSError as exc:
            if exc.errno != 16:
                return f"FAILED: freeze with a writable mapping gave errno {exc.errno}"
        finally:
            r.close()
        m.freeze()
        try:
            m.update(1, b"\x02" * 8)
            return "FAILED: update after freeze succeeded"
        except OSError as exc:
            if exc.errno != 1:
                return f"FAILED: update after freeze gave errno {exc.errno}"
        if m.lookup(1) != b"\x01" * 8:
            return "FAILED: value changed"
        return "ok (EBUSY with a writable mapping, then frozen; update after freeze: EPERM)"
    finally:
        m.close()


@dataclass
class Target:
    name: str
    value: float | None
    goal: float
    higher_is_better: bool
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def line(self) -> str:
        cmp = ">=" if self.higher_is_better else "<="
        status = {None: "skipped", True: "met", False: "MISSED"}[self.met]
        value = "n/a" if self.value is None else f"{self.value:.2f}"
        detail = f"  {self.detail}" if self.detail else ""
        return f"{self.name:<58} {value:>7} (target {cmp} {self.goal:g})  {status}{detail}"


def targets(results: Sequence[Result]) -> list[Target]:
    vs = {"value_size": ELEMENT_VALUE_SIZE}
    elook, klook = (
        _find(results, "lookup", "emulated", **vs),
        _find(results, "lookup", "kernel", **vs),
    )
    eupd, kupd = (
        _find(results, "update", "emulated", **vs),
        _find(results, "update", "kernel", **vs),
    )
    noop = _find(results, "noop cffi call", "reference")
    memcpy = _find(results, "memcpy (NumPy copy)", "reference")
    out = [
        Target(
            "lookup: kernel / emulated (x faster)",
            _ratio(klook, elook),
            TARGET_LOOKUP_VS_KERNEL,
            True,
        ),
        Target(
            "lookup: emulated / no-op cffi call", _ratio(elook, noop), TARGET_LOOKUP_VS_NOOP, False
        ),
        Target(
            "update: kernel / emulated (x faster)",
            _ratio(kupd, eupd),
            TARGET_UPDATE_VS_KERNEL,
            True,
        ),
    ]
    for style in REGION_STYLES:
        for rw in ("read", "write"):
            op = f"region {style} {rw}"
            ref = _find(results, op, "mmap")
            for be in ("kernel-mmap", "emulated"):
                out.append(
                    Target(
                        f"{op}: {be} region / Python mmap",
                        _ratio(_find(results, op, be), ref),
                        TARGET_REGION_VS_MMAP,
                        False,
                    )
                )
    for op in ("lookup_batch", "lookup_batch_into", "update_batch"):
        ratio = _ratio(memcpy, _find(results, op, "emulated", values=1 << 20))
        # A lookup batch also writes 1M 4-byte keys: 12 MiB moved for 8 MiB of values.
        detail = (
            f"({ratio * 1.5:.2f} counting the 4 MiB of keys it writes)"
            if ratio is not None and op != "update_batch"
            else ""
        )
        out.append(
            Target(
                f"{op} 1M x 8 B: memcpy time / emulated time",
                ratio,
                TARGET_BATCH_VS_MEMCPY,
                True,
                detail,
            )
        )
    return out


def _grid(results: Sequence[Result]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The backends used, and per operation one cell per backend: "ns (kernel ns / ns)"."""
    rows: dict[str, dict[str, Result]] = {}
    for r in results:
        rows.setdefault(r.case.label, {})[r.case.backend] = r
    used = [b for b in BACKENDS if any(b in cols for cols in rows.values())]
    grid = []
    for label, cols in rows.items():
        kernel = cols.get("kernel")
        cells = []
        for b in used:
            res = cols.get(b)
            if res is None:
                cells.append("")
            elif res.ns_per_op is None:
                cells.append("skip")
            else:
                ratio = _ratio(kernel.ns_per_op if kernel else None, res.ns_per_op)
                extra = f" ({_times(ratio)})" if ratio is not None and b != "kernel" else ""
                cells.append(_ns(res.ns_per_op) + extra)
        grid.append((label, cells))
    return used, grid


def table(results: Sequence[Result]) -> str:
    """One row per operation, one column per backend: median ns/op (kernel syscall ns / this)."""
    used, grid = _grid(results)
    titles = [BACKEND_TITLES[b] for b in used]
    first = max([len("operation")] + [len(label) for label, _ in grid])
    widths = [max([len(t)] + [len(cells[i]) for _, cells in grid]) for i, t in enumerate(titles)]
    head = f"{'operation':<{first}}" + "".join(f"  {t:>{w}}" for t, w in zip(titles, widths))
    lines = [head, "-" * len(head)]
    lines += [
        f"{label:<{first}}" + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths))
        for label, cells in grid
    ]
    return "\n".join(lines)


def markdown(results: Sequence[Result]) -> str:
    """The same table in Markdown."""
    used, grid = _grid(results)
    lines = [
        "| operation | " + " | ".join(BACKEND_TITLES[b] for b in used) + " |",
        "|---" * (len(used) + 1) + "|",
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in grid]
    return "\n".join(lines)


def _times(ratio: float) -> str:
    """A ratio as "12.4x", "172x" or "0.52x": three significant digits, never an exponent."""
    if ratio >= 100:
        return f"{ratio:.0f}x"
    return f"{ratio:.3g}x" if ratio >= 1 else f"{ratio:.2f}x"


def _ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.3g} us"
    return f"{ns:.0f} ns"


def skipped_lines(results: Sequence[Result]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for r in results:
        if r.skipped:
            seen.setdefault(r.skipped, []).append(r.case.id)
    return [f"skipped {len(ids)} case(s): {reason} (e.g. {ids[0]})" for reason, ids in seen.items()]


def to_json(
    results: Sequence[Result], tgts: Sequence[Target], meta: dict[str, Any]
) -> dict[str, Any]:
    return {
        "meta": meta,
        "results": [
            {
                "group": r.case.group,
                "op": r.case.op,
                "backend": r.case.backend,
                "params": r.case.params,
                "label": r.case.label,
                "note": r.case.note,
                "ns_per_op": r.ns_per_op,
                "repeats_ns_per_op": r.repeats,
                "loops": r.loops,
                "skipped": r.skipped,
            }
            for r in results
        ],
        "targets": [
            {
                "name": t.name,
                "value": t.value,
                "goal": t.goal,
                "higher_is_better": t.higher_is_better,
                "met": t.met,
            }
            for t in tgts
        ],
    }


def plot(results: Sequence[Result], path: str) -> None:
    """ns/op per operation and backend (log scale), and cost against value_size and max_entries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "emulated": "tab:blue",
        "kernel": "tab:red",
        "kernel-mmap": "tab:orange",
        "mmap": "tab:gray",
        "shared_memory": "tab:green",
        "reference": "black",
    }
    fig = plt.figure(figsize=(15, 13))
    grid = fig.add_gridspec(2, 2, height_ratios=[2.2, 1])
    ax = fig.add_subplot(grid[0, :])
    bars = [r for r in results if r.ns_per_op is not None and r.case.group != "value_size"]
    labels: list[str] = []
    for r in bars:
        if r.case.label not in labels:
            labels.append(r.case.label)
    backends = [b for b in BACKENDS if any(r.case.backend == b for r in bars)]
    width = 0.8 / max(len(backends), 1)
    for i, b in enumerate(backends):
        xs: list[float] = []
        ys: list[float] = []
        for r in bars:
            if r.case.backend == b and r.ns_per_op is not None:
                xs.append(labels.index(r.case.label) + (i - (len(backends) - 1) / 2) * width)
                ys.append(r.ns_per_op)
        ax.bar(xs, ys, width, label=BACKEND_TITLES[b], color=colors[b])
    ax.set_yscale("log")
    ax.set_ylabel("ns per operation (median, log scale)")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("bpfmap: cost per operation and backend")
    ax.grid(axis="y", which="both", alpha=0.3)

    for col, (ops, param, title) in enumerate(
        (
            (("lookup", "update"), "value_size", "lookup / update against value_size"),
            (("create+mmap+freeze+close", "lookup_batch"), None, "cost against max_entries"),
        )
    ):
        sub = fig.add_subplot(grid[1, col])
        for op in ops:
            for b in BACKENDS:
                pts = []
                for r in results:
                    c = r.case
                    if c.op != op or c.backend != b or r.ns_per_op is None:
                        continue
                    x = (
                        c.params.get(param)
                        if param
                        else c.params.get("max_entries", c.params.get("values"))
                    )
                    if x is not None:
                        pts.append((x, r.ns_per_op))
                if len(pts) > 1:
                    pts.sort()
                    style = "-o" if op in ("lookup", "create+mmap+freeze+close") else "--s"
                    sub.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        style,
                        color=colors[b],
                        label=f"{op} ({BACKEND_TITLES[b]})",
                        markersize=4,
                    )
        sub.set_xscale("log", base=2)
        sub.set_yscale("log")
        sub.set_xlabel(param or "max_entries (lookup_batch: all of them)")
        sub.set_ylabel("ns per operation")
        sub.set_title(title)
        sub.grid(which="both", alpha=0.3)
        sub.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bpfmap bench",
        description="Benchmark the emulated and kernel backends against each other and "
        "multiprocessing.shared_memory: a median ns/op table with the ratio to the kernel "
        "syscall path, and the project's performance targets.",
    )
    p.add_argument(
        "--full", action="store_true", help="every case, more repeats, longer runs (minutes)"
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        nargs="?",
        const="-",
        help="write the results as JSON to FILE (or stdout with no FILE)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the results with matplotlib (pip install bpfmap[plot])",
    )
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument(
        "-k",
        "--filter",
        metavar="TEXT",
        action="append",
        default=[],
        help="only cases whose name contains TEXT (repeatable)",
    )
    p.add_argument("--repeats", type=int, help="repeats per case (default: 5, --full: 9)")
    p.add_argument(
        "--min-time", type=float, help="seconds per repeat (default: 0.005, --full: 0.05)"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p


def _selected(all_cases: Sequence[Case], filters: Sequence[str]) -> Iterator[Case]:
    for c in all_cases:
        if not filters or any(f in c.id for f in filters):
            yield c


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # idle BLAS threads spin on 2 cores
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "bpfmap bench: --plot needs matplotlib: pip install 'bpfmap[plot]'", file=sys.stderr
            )
            return 2
    reason = kernel_unavailable_reason()
    all_cases = list(_selected(cases(args.full, reason), args.filter))
    if args.list:
        for c in all_cases:
            print(c.id + (f"  (skip: {c.skip})" if c.skip else ""))
        return 0
    repeats = args.repeats or (9 if args.full else 5)
    target_ns = int((args.min_time or (0.05 if args.full else 0.005)) * 1e9)
    started = time.time()
    results = run_cases(all_cases, repeats, target_ns, Progress(len(all_cases)))
    tgts = targets(results)
    meta = {
        "mode": "full" if args.full else "quick",
        "repeats": repeats,
        "min_time_s": target_ns / 1e9,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "kernel_backend": reason or "available",
        "seconds": round(time.time() - started, 1),
        "freeze_check": freeze_check(),
    }
    if args.json == "-":
        json.dump(to_json(results, tgts, meta), sys.stdout, indent=1)
        print()
    else:
        print(markdown(results) if args.markdown else table(results))
        print()
        print("(x) = kernel syscall ns / this ns: above 1 is faster than the kernel syscall path")
        print(
            f"mode {meta['mode']}: median of {repeats} repeats of >= {target_ns / 1e6:g} ms,"
            f" {meta['seconds']} s in all"
        )
        print()
        print("targets (ratios from this run):")
        for t in tgts:
            print("  " + t.line())
        print(f"  freeze after fast-path updates: {meta['freeze_check']}")
        for line in skipped_lines(results):
            print(line)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(to_json(results, tgts, meta), f, indent=1)
            print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr if args.json == "-" else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
