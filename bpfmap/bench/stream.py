"""Processes sharing one map: a writer feeding a reader through a ring in the map."""

from __future__ import annotations

import contextlib
import os
import struct
import time
from functools import partial
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Callable

from .. import ArrayMap
from .core import SLOTS, Prepared, Resources, start_workers


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


def stream_case(backend: str) -> Prepared:
    res = Resources()
    ctx = get_context("fork")  # the children inherit the map's descriptor
    try:
        n = 2 + SLOTS
        target: Any
        if backend == "shared_memory":
            kind, target = "shm", res.shm(n * 8).name
        else:
            m = res.map(backend, 8, n)
            kind, target = ("mmap" if backend == "kernel-mmap" else "api"), m
        conns, procs = start_workers(
            ctx, _stream_worker, [(role, kind, target) for role in ("writer", "reader")],
            "stream worker")

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
