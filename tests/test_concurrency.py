"""Concurrency: threads and processes updating and reading one map at once.

What is atomic (both backends, as the kernel's array map): every naturally aligned
8-byte word of a value. Values start 8-byte aligned (``round_up(value_size, 8)``
apart, from a page boundary), and every copy bpfmap makes is done with 8-byte (or
wider, aligned) accesses: updates are ``pwrite()`` (the kernel's
``copy_from_user``), lookups are ``memcpy`` from the read-only view (glibc), the
kernel backend's are the kernel's ``copy_map_value``. A whole value of more than
8 bytes is not atomic (no ``BPF_F_LOCK``): a reader may see some words of the old
value and some of the new, exactly as with the kernel. The word guarantee rests on
the C library copying aligned words whole, as glibc's memcpy/memmove do; it does not
hold under AddressSanitizer, whose memmove interceptor copies byte by byte (so
tools/sanitize.sh skips that test).

One kernel path is not word-atomic: ``BPF_MAP_LOOKUP_BATCH`` copies each value into
a bounce buffer at ``buf + key_size`` (``generic_map_lookup_batch``), 4 bytes off
8-byte alignment, and the kernel's memcpy then splits the map's words (measured on
6.18: about 2 torn words per 100,000 values read while another process stores
through a mapping; single lookups, through the aligned ``kvmalloc`` buffer of
``map_lookup_elem``: none in millions). The emulation's batch copy is aligned, so
it is word-atomic: the tests count torn words in emulated batches, not in kernel
ones.

The tests below check that no reader ever sees a torn word: writers store values
whose every word is one repeated byte (a generation), readers check every word of
everything they read is a single repeated byte.

Also: ``close()`` racing calls in other threads never crashes (the handle is
released by the last reference); a freeze racing updates in another process
never lets a value change after the freeze succeeded.

    BPFMAP_CONCURRENCY_SECONDS=<s>  per torn-word case (default 0.4)
    BPFMAP_RACE_ROUNDS=<n>          freeze/update races (default 200) and close races (x2)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from bpfmap import BPF_F_MMAPABLE, ArrayMap

SECONDS = float(os.environ.get("BPFMAP_CONCURRENCY_SECONDS", "0.4"))
ROUNDS = int(os.environ.get("BPFMAP_RACE_ROUNDS", "200"))
VS = 64  # eight words per value
N = 512


def generation(g: int, count: int = 1) -> bytes:
    return bytes([g & 0xFF or 1]) * (VS * count)


def torn_words(buf: Any) -> int:
    """How many 8-byte words of buf are not one repeated byte."""
    words = np.frombuffer(bytes(buf), dtype="<u8")
    low = words & 0xFF
    return int(np.count_nonzero(words != low * 0x0101010101010101))


def _writer(m: ArrayMap, kind: str, ready: int, stop: int) -> None:
    """Store generations until the stop pipe closes; each store is of one kind."""
    region = m.mmap() if kind == "region" else None
    words = np.frombuffer(region, dtype="<u8") if region is not None else None
    os.write(ready, b"x")
    g = 0
    keys = list(range(N))
    while True:
        g += 1
        if kind == "update":
            for k in range(0, N, 7):
                m.update(k, generation(g))
        elif kind == "update_batch":
            m.update_batch(keys, generation(g, N))
        else:
            assert words is not None
            words[:] = (g & 0xFF or 1) * 0x0101010101010101  # 8-byte stores
        if g % 16 == 0:
            import select

            if select.select([stop], [], [], 0)[0]:
                break
    del words
    if region is not None:
        region.close()


def _read_all(m: ArrayMap, ro: Any, key: int, buf: bytearray) -> tuple[int, int]:
    """(torn words, values read) through every read path, once."""
    torn = torn_words(m.lookup(key))
    m.lookup_into(key, buf)
    torn += torn_words(buf)
    batch = m.lookup_batch(64, in_batch=key % (N - 64)).values
    counted = 64 if m.backend == "emulated" else 0  # the kernel's bounce buffer: see above
    if counted:
        torn += torn_words(batch)
    torn += torn_words(ro[key * VS : (key + 64) * VS])
    view = np.frombuffer(ro, dtype="<u8")  # NumPy reads of a mapping: 8-byte loads
    torn += torn_words(view[key : key + 64].copy())
    del view
    return torn, 1 + 1 + counted + 64 + 8


@pytest.mark.parametrize("kind", ["update", "update_batch", "region"])
@pytest.mark.parametrize("where", ["process", "thread"])
def test_readers_never_see_a_torn_word(backend: str, kind: str, where: str) -> None:
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("AddressSanitizer's memmove copies byte by byte: word atomicity is libc's")
    m = ArrayMap(VS, N, flags=BPF_F_MMAPABLE, backend=backend)
    m.update_batch(list(range(N)), generation(1, N))
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    pid = 0
    thread = None
    if where == "process":
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(ready_r)
                os.close(stop_w)
                _writer(m, kind, ready_w, stop_r)
                code = 0
            finally:
                os._exit(code)
    else:
        thread = threading.Thread(target=_writer, args=(m, kind, ready_w, stop_r))
        thread.start()
    assert os.read(ready_r, 1) == b"x"
    ro = m.mmap(writable=False)
    buf = bytearray(VS)
    torn = reads = 0
    seen: set[int] = set()
    key = 0
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        key = (key + 61) % (N - 64)
        t, r = _read_all(m, ro, key, buf)
        torn += t
        reads += r
        seen.add(m.lookup(key)[0])
    os.close(stop_w)
    if pid:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    else:
        assert thread is not None
        thread.join()
    ro.close()
    for fd in (ready_r, ready_w, stop_r):
        os.close(fd)
    assert torn == 0, f"{torn} torn 8-byte words in {reads} values read"
    assert len(seen) > 1, "the writer never got to run while we read"
    print(f"{backend} {kind} ({where}): {reads} values read, {len(seen)} generations, 0 torn")


# ------------------------------------------------------- close() racing calls


CLOSE_RACE = """
import gc, os, random, threading, sys
import bpfmap
from bpfmap import ArrayMap, BPF_F_MMAPABLE

backend, rounds = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
unexpected = []
fds = len(os.listdir("/proc/self/fd"))

def hammer(m, started, seed):
    r = random.Random(seed)
    buf = bytearray(16)
    started.wait()
    for i in range(400):
        try:
            op = r.randrange(11)
            if op == 0: m.lookup(r.randrange(64))
            elif op == 1: m.lookup_into(r.randrange(64), buf)
            elif op == 2: m.update(r.randrange(64), bytes(16))
            elif op == 3: m.update(r.randrange(64), bytearray(16))
            elif op == 4: m.lookup_batch(r.randrange(1, 64))
            elif op == 5: m.update_batch(list(range(8)), bytes(128))
            elif op == 6: m.mmap(writable=r.random() < 0.5).close()
            elif op == 7: m.get_next_key(r.randrange(63))
            elif op == 8: (m.info(), m.frozen, m.fd, repr(m))
            elif op == 9: list(m.items())
            else: m[r.randrange(64)]
        except ValueError:
            pass  # closed: from now on, every call says so
        except Exception as exc:  # EBADF would be a descriptor closed under a call
            unexpected.append(repr(exc))

for rnd in range(rounds):
    m = ArrayMap(16, 64, flags=BPF_F_MMAPABLE, backend=backend)
    started = threading.Event()
    threads = [threading.Thread(target=hammer, args=(m, started, rnd * 8 + t)) for t in range(4)]
    for t in threads:
        t.start()
    started.set()
    for _ in range(rng.randrange(200)):
        m.lookup(0)  # let the threads get going: close lands at a random point
    m.close()
    for t in threads:
        t.join()
    del m
gc.collect()
assert not unexpected, unexpected[:5]
assert len(os.listdir("/proc/self/fd")) == fds, "descriptors leaked"
print("ok", rounds)
"""


def test_close_racing_calls_in_other_threads(backend: str) -> None:
    """close() while four threads call everything: no crash, only ValueError, no leak."""
    rounds = max(ROUNDS // 4, 10)
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", CLOSE_RACE, backend, str(rounds)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-3000:]}"
    assert proc.stdout.split() == ["ok", str(rounds)]


def test_readonly_mappings_from_many_threads_share_one_descriptor() -> None:
    """The first read-only mmap() in several threads at once opens one O_RDONLY fd, not one each."""
    leaks = 0
    for _ in range(300):
        m = ArrayMap(8, 512, flags=BPF_F_MMAPABLE)
        before = len(os.listdir("/proc/self/fd"))
        barrier = threading.Barrier(4)
        regions: list[Any] = []

        def go(
            m: ArrayMap = m, barrier: threading.Barrier = barrier, regions: list[Any] = regions
        ) -> None:
            barrier.wait()
            regions.append(m.mmap(writable=False))

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in regions:
            r.close()
        after = len(os.listdir("/proc/self/fd"))
        leaks += after - before - 1  # one: the handle's own O_RDONLY description
        m.close()
    assert leaks == 0


# ------------------------------------------------------ freeze racing updates


def _updater(m: ArrayMap, ready: int, batch: bool) -> None:
    """Update with ever-changing values until the map refuses (frozen)."""
    g = 0
    os.write(ready, b"x")
    while True:
        g += 1
        try:
            if batch:
                m.update_batch(list(range(0, 512, 3)), bytes([g & 0xFF]) * (8 * 171))
            else:
                m.update(g % 512, g.to_bytes(8, "little"))
        except PermissionError:
            return


@pytest.mark.parametrize("batch", [False, True], ids=["update", "update_batch"])
def test_freeze_racing_updates_never_lets_a_value_change(backend: str, batch: bool) -> None:
    busy = 0
    for _ in range(ROUNDS):
        m = ArrayMap(8, 512, flags=BPF_F_MMAPABLE, backend=backend)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                _updater(m, w, batch)
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        assert os.read(r, 1) == b"x"
        while True:
            try:
                m.freeze()
                break
            except OSError as exc:  # the kernel: EBUSY while an update is in flight
                assert exc.errno == 16, exc
                busy += 1
        snapshot = bytes(m.lookup_batch().values)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert bytes(m.lookup_batch().values) == snapshot, "a value changed after freeze"
        os.close(r)
        m.close()
    print(f"{backend}: {ROUNDS} freeze/update races, EBUSY {busy} times, 0 changes after freeze")


def test_threads_and_processes_share_one_map(backend: str) -> None:
    """Counters kept by threads (update) and processes (region stores) in disjoint words."""
    m = ArrayMap(8, 64, flags=BPF_F_MMAPABLE, backend=backend)
    rounds = 2000
    procs = []
    for p in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                region = m.mmap()
                words = np.frombuffer(region, dtype="<u8")
                for _ in range(rounds):
                    words[32 + p] += 1  # this process's own word
                del words
                region.close()
                code = 0
            finally:
                os._exit(code)
        procs.append(pid)

    def count(t: int) -> None:
        for i in range(rounds):
            m.update(t, (i + 1).to_bytes(8, "little"))

    threads = [threading.Thread(target=count, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pid in procs:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert [int.from_bytes(m.lookup(k), "little") for k in range(4)] == [rounds] * 4
    assert [int.from_bytes(m.lookup(32 + p), "little") for p in range(2)] == [rounds] * 2
