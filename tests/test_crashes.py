"""Crashes: SIGKILL a process at random points and check what it leaves behind.

The victim holds writable mappings, or is in the middle of updates, of a batch,
of a pin. It reports progress through a pipe (non-blocking, so it never waits
for us); we kill it after a random amount of progress, then check:

- nothing is stuck: ``freeze()`` succeeds at the first attempt once it is gone;
- nothing is corrupted: every aligned 8-byte word of every value is one a writer
  stored whole (the victim writes words that are one repeated byte);
- nothing leaks: our descriptors are where they were, the pin holder holds
  exactly the pins whose files exist, and /proc/meminfo's Shmem is back within
  tolerance.

No sleeps: every wait is on a pipe, a pidfd or waitpid.

    BPFMAP_CRASH_ROUNDS=<n>   kills per scenario and backend (default 12)
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import os
import random
import signal
import stat
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bpfmap import BPF_F_MMAPABLE, ArrayMap

ROUNDS = int(os.environ.get("BPFMAP_CRASH_ROUNDS", "12"))
VS = 64
N = 16384  # 1 MiB of values: a batch is one long pwrite(), a kill can land inside it
PAGE = 4096


def shmem_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Shmem:"):
                return int(line.split()[1])
    return 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def torn_words(buf: Any) -> int:
    words = np.frombuffer(bytes(buf), dtype="<u8")
    return int(np.count_nonzero(words != (words & 0xFF) * 0x0101010101010101))


def pattern(g: int, count: int = 1) -> bytes:
    return bytes([g % 255 + 1]) * (VS * count)


class Progress:
    """The victim's side: one byte per step, dropped if we are behind (never blocks)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd

    def step(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self.fd, b".")


def kill_after_progress(victim: Callable[[Progress], None], rng: random.Random) -> int:
    """Fork the victim, let it make a random amount of progress, SIGKILL it, reap it.

    Returns how many progress bytes we saw. The victim must never return.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            victim(Progress(w))
        finally:
            os._exit(3)  # returning is a failure: the victim loops until killed
    os.close(w)
    want = rng.choice([1, 2, 5, 20, rng.randrange(1, 200)])
    seen = 0
    while seen < want:
        chunk = os.read(r, want - seen)
        assert chunk, "the victim died before it was killed"
        seen += len(chunk)
    for _ in range(rng.randrange(20000)):  # a random few microseconds more: mid-call
        pass
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(r)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    return seen


# ---------------------------------------------------------------- victims


def hold_mappings(m: ArrayMap) -> Callable[[Progress], None]:
    """Writable mappings of every kind (whole, partly unmapped, mprotected), stores in a loop."""

    def victim(p: Progress) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        whole = m.mmap()
        partial = m.mmap(length=4 * PAGE)
        protected = m.mmap(length=PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(partial))
        libc.munmap(base + 2 * PAGE, 2 * PAGE)
        libc.mprotect(ctypes.addressof(ctypes.c_char.from_buffer(protected)), PAGE, 1)
        words = np.frombuffer(whole, dtype="<u8")
        g = 0
        while True:
            g += 1
            words[g % len(words)] = (g % 255 + 1) * 0x0101010101010101
            if g % 64 == 0:
                p.step()

    return victim


def updating(m: ArrayMap) -> Callable[[Progress], None]:
    def victim(p: Progress) -> None:
        rng = random.Random(os.getpid())
        g = 0
        while True:
            g += 1
            m.update(rng.randrange(N), pattern(g))
            p.step()

    return victim


def batching(m: ArrayMap, consecutive: bool) -> Callable[[Progress], None]:
    def victim(p: Progress) -> None:
        order = list(range(N))
        if not consecutive:  # one pwrite per element in the emulation
            random.Random(os.getpid()).shuffle(order)
        keys = array.array("I", order)  # used in place: the time goes to the batch itself
        values = [pattern(g, N) for g in range(255)]
        g = 0
        while True:
            g += 1
            m.update_batch(keys, values[g % 255])
            p.step()

    return victim


# ---------------------------------------------------------------- checks


def assert_intact(m: ArrayMap) -> None:
    """Not stuck (freeze works at once) and not corrupted (no torn word anywhere)."""
    values = bytes(m.lookup_batch().values)
    assert torn_words(values) == 0, "a value has an 8-byte word no writer stored"
    with m.mmap(writable=False) as ro:
        assert torn_words(ro[:]) == 0
    m.freeze()  # EBUSY here: a mapping of the dead victim still counts
    assert m.frozen


SCENARIOS: dict[str, Callable[[ArrayMap], Callable[[Progress], None]]] = {
    "holding-mappings": hold_mappings,
    "mid-update": updating,
    "mid-batch-consecutive": lambda m: batching(m, True),
    "mid-batch-scattered": lambda m: batching(m, False),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sigkill_leaves_nothing_stuck_or_torn(backend: str, scenario: str) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    fds, shmem = fd_count(), shmem_kib()
    progress = []
    split = 0  # kills that left two generations: inside a batch (or between updates)
    for _ in range(ROUNDS):
        m = ArrayMap(VS, N, flags=BPF_F_MMAPABLE, backend=backend)
        m.update_batch(list(range(N)), pattern(0, N))  # every page present: Shmem counts it
        progress.append(kill_after_progress(SCENARIOS[scenario](m), rng))
        split += len(set(m.lookup_batch().values[::VS])) > 1
        assert_intact(m)
        m.close()
    assert fd_count() == fds, "descriptors leaked"
    # ROUNDS leaked maps would be ROUNDS MiB (emulated maps are Shmem); others may move it too.
    assert shmem_kib() - shmem < max(ROUNDS, 8) * 1024 // 2, "shared memory did not come back"
    progress.sort()
    print(
        f"{backend} {scenario}: {ROUNDS} kills survived, {split} left two generations "
        f"(killed after {progress[0]}..{progress[-1]} steps)"
    )


# ------------------------------------------------------------- mid-pin


def _pinner(directory: str, p: Progress) -> None:
    """Pin, check, unpin, over and over: killed somewhere in the middle of one."""
    import bpfmap._pin  # noqa: F401 - imported before the kill window

    i = 0
    while True:
        i += 1
        m = ArrayMap(8, 4)
        m.update(1, i.to_bytes(8, "little"))
        path = os.path.join(directory, f"pin{i}")
        p.step()
        m.pin(path)
        m.close()
        if i % 2:
            os.unlink(path)  # even pins are left for the survivor to find


def _mid_pin_monitor(directory: str, rounds: int, seed: int, report: int) -> None:
    """Kill pinners at random points; what they leave is whole pins, held, and only those."""
    from bpfmap import _pin

    # A holder of this test's own: its count of pins is ours alone.
    os.environ["BPFMAP_PIN_HOLDER"] = f"crashes-{os.getpid()}"
    holder = f"bpfmap-pins/{os.getuid()}/crashes-{os.getpid()}/0"
    rng = random.Random(seed)
    pins_found = 0
    for rnd in range(rounds):
        sub = os.path.join(directory, str(rnd))
        os.mkdir(sub)
        kill_after_progress(lambda p, sub=sub: _pinner(sub, p), rng)
        files = sorted(os.path.join(sub, f) for f in os.listdir(sub))
        # The pin being made when the kill came exists whole (linked, held) or not
        # at all: no file without a map, no map without a file.
        try:
            held = _pin.sweep(holder)
        except ConnectionRefusedError:
            held = 0  # killed before its first pin started a holder
        assert held == len(files), (held, files)
        for f in files:  # every pin left behind works and holds what was pinned
            assert stat.S_ISREG(os.lstat(f).st_mode)
            assert stat.S_IMODE(os.lstat(f).st_mode) == 0o600
            m = ArrayMap.open_pinned(f)
            assert m.lookup(1) == int(f.rsplit("pin", 1)[1]).to_bytes(8, "little")
            m.close()
            os.unlink(f)
            pins_found += 1
        if files:
            assert _pin.sweep(holder) == 0  # unpinned: the holder let go of every map
        os.rmdir(sub)
    os.write(report, f"{pins_found}\n".encode())


def test_sigkill_mid_pin_leaves_whole_pins_or_none(tmp_path: Any) -> None:
    """Kill a process while it pins: each pin exists whole or not at all, and no map leaks."""
    shmem = shmem_kib()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            _mid_pin_monitor(str(tmp_path), ROUNDS, int.from_bytes(os.urandom(4), "little"), w)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    out = os.read(r, 100)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the monitor failed (see stderr)"
    assert shmem_kib() - shmem < 8 * 1024
    print(f"mid-pin: {ROUNDS} kills survived, {int(out)} pins left behind found whole")


def test_a_dead_process_leaves_no_descriptor_behind() -> None:
    """No process but us has the memfd open once the killed victim is reaped."""
    m = ArrayMap(VS, N, flags=BPF_F_MMAPABLE)
    ident = os.fstat(m.fd).st_ino
    rng = random.Random(5)
    kill_after_progress(hold_mappings(m), rng)
    holders = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.stat(f"/proc/{pid}/fd/{fd}").st_ino == ident:
                    holders.append(pid)
        except OSError as exc:
            assert exc.errno in (errno.ENOENT, errno.EACCES, errno.ESRCH)
    assert holders == [], holders
