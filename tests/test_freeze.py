"""Freeze: BPF_MAP_FREEZE against writable mappings, on both backends.

A writable mapping (even mprotected read-only, even half unmapped, even inherited
by fork or held by another process, until that process is SIGKILLed) makes freeze
EBUSY; a read-only mapping never counts and can never be made writable; a frozen
map refuses writes and writable mappings. The errno of each step is compared with
the kernel's, and a child storing into a writable mapping races the parent's
freeze (BPFMAP_RACE_ROUNDS) without a change after freeze. Real processes, signals
and pipes; no sleeps.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import multiprocessing as mp
import os
import signal
import struct
from multiprocessing.connection import Connection

import pytest
from conftest import address, errno_of, mprotect, new_map, require_kernel

import bpfmap
from bpfmap import ArrayMap

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def test_readonly_mapping_never_counts_and_cannot_be_upgraded(backend: str) -> None:
    """M15, M17, M18: RO mappings do not block freeze; mprotect to write is EACCES."""
    m = new_map(backend)
    ro = m.mmap(writable=False)
    assert mprotect(ro, mmap.PROT_READ | mmap.PROT_WRITE) == errno.EACCES
    m.freeze()
    assert mprotect(ro, mmap.PROT_READ | mmap.PROT_WRITE) == errno.EACCES
    assert errno_of(lambda: m.mmap()) == errno.EPERM
    ro.close()


def test_writable_mapping_mprotected_readonly_still_counts(backend: str) -> None:
    """M06-M08: an RW mapping keeps VM_MAYWRITE after mprotect(PROT_READ)."""
    m = new_map(backend)
    rw = m.mmap()
    assert mprotect(rw, mmap.PROT_READ) == 0
    assert errno_of(m.freeze) == errno.EBUSY
    assert mprotect(rw, mmap.PROT_READ | mmap.PROT_WRITE) == 0
    rw.close()
    m.freeze()


def test_partial_munmap_keeps_the_rest_counted(backend: str) -> None:
    """M09-M12: unmap half of a 2-page RW mapping: EBUSY; unmap the rest: freeze works."""
    m = new_map(backend)
    rw = m.mmap(length=2 * PAGE)
    assert libc.munmap(address(rw) + PAGE, PAGE) == 0
    assert errno_of(m.freeze) == errno.EBUSY
    rw.close()  # munmaps the whole range; the second page is already gone
    assert errno_of(m.freeze) == 0


def test_freeze_rules_compared_with_the_kernel() -> None:
    """Each freeze/mmap errno of one sequence, emulated vs kernel, step by step."""
    require_kernel()

    def steps(backend: str) -> list[int]:
        m = new_map(backend, flags=bpfmap.BPF_F_RDONLY_PROG)
        out = [errno_of(lambda: m.mmap().close())]  # M60: EACCES
        m2 = new_map(backend)
        rw = m2.mmap()
        out.append(errno_of(m2.freeze))  # EBUSY
        ro = m2.mmap(writable=False)
        rw.close()
        out.append(errno_of(m2.freeze))  # 0
        out.append(errno_of(m2.freeze))  # EPERM
        out.append(errno_of(lambda: m2.mmap()))  # EPERM
        out.append(errno_of(lambda: m2.mmap(writable=False).close()))  # 0
        out.append(errno_of(lambda: m2.update(0, bytes(8))))  # EPERM
        out.append(mprotect(ro, mmap.PROT_READ | mmap.PROT_WRITE))  # EACCES
        ro.close()
        return out

    assert (
        steps("emulated")
        == steps("kernel")
        == [
            errno.EACCES,
            errno.EBUSY,
            0,
            errno.EPERM,
            errno.EPERM,
            0,
            errno.EPERM,
            errno.EACCES,
        ]
    )


def _hold_writable(m: ArrayMap, conn: Connection) -> None:
    """Child: map writable, store, say so, and wait for the word to go."""
    region = m.mmap()
    struct.pack_into("<Q", region, 0, os.getpid())
    conn.send("mapped")
    conn.recv()
    region.close()
    conn.send("unmapped")
    conn.recv()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_freeze_busy_while_another_process_maps(backend: str, method: str) -> None:
    m = new_map(backend)
    ctx = mp.get_context(method)
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_hold_writable, args=(m, child))
    proc.start()
    assert parent.recv() == "mapped"
    assert struct.unpack("<Q", m.lookup(0))[0] == proc.pid  # the same memory, not a copy
    assert errno_of(m.freeze) == errno.EBUSY
    parent.send("unmap")
    assert parent.recv() == "unmapped"
    assert errno_of(m.freeze) == 0  # the child still runs, it no longer maps
    parent.send("exit")
    proc.join()
    assert proc.exitcode == 0


def test_freeze_busy_until_sigkilled_holder_is_gone(backend: str) -> None:
    m = new_map(backend)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_hold_writable, args=(m, child))
    proc.start()
    assert parent.recv() == "mapped"
    assert errno_of(m.freeze) == errno.EBUSY
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    assert errno_of(m.freeze) == 0
    assert struct.unpack("<Q", m.lookup(0))[0] == proc.pid


def test_fork_inherited_writable_mapping_counts(backend: str) -> None:
    """K06/K07: the child inherits the parent's RW mapping; the parent unmaps; EBUSY until exit."""
    m = new_map(backend)
    region = m.mmap()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: keep the inherited mapping until the parent closes the pipe
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    region.close()
    assert errno_of(m.freeze) == errno.EBUSY
    os.close(w)
    os.waitpid(pid, 0)
    assert errno_of(m.freeze) == 0


def _race_mapper(m: ArrayMap, conn: Connection, rounds: int) -> None:
    """Map writable as fast as possible; a mapping that exists while frozen is a failure.

    Every store is a new value (the round's number, in a value of its own), so a
    store that lands after the freeze changes the map and the parent sees it.
    """
    bad = 0
    conn.send("ready")
    for i in range(rounds):
        try:
            region = m.mmap()
        except PermissionError:
            break  # frozen: EPERM from now on
        struct.pack_into("<Q", region, 8 * (i % 512), i + 1)
        if m.frozen:
            bad += 1
        region.close()
    conn.send(bad)


def test_freeze_races_writable_mmap_across_processes(backend: str) -> None:
    """The seed's race: never a writable mapping of a frozen map, never a change after freeze."""
    rounds = int(os.environ.get("BPFMAP_RACE_ROUNDS", "200"))
    ctx = mp.get_context("fork")
    frozen_while_mapped = 0
    busy = 0
    for _ in range(rounds):
        m = new_map(backend, max_entries=512)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_race_mapper, args=(m, child, 100_000))
        proc.start()
        assert parent.recv() == "ready"
        while True:
            err = errno_of(m.freeze)
            if err == 0:
                break
            assert err == errno.EBUSY
            busy += 1
        snapshot = m.lookup_batch().values
        frozen_while_mapped += parent.recv()
        proc.join()
        assert m.lookup_batch().values == snapshot
        assert errno_of(m.mmap) == errno.EPERM
        m.close()
    assert frozen_while_mapped == 0
    print(f"{backend}: {rounds} races, freeze saw EBUSY {busy} times, 0 violations")
