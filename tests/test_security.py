"""Security: descriptors never leak into exec'd programs, and no file is readable by others.

- Every descriptor bpfmap creates is close-on-exec: map handles (created,
  re-opened for BPF_F_RDONLY/WRONLY, adopted from pickles in spawn and forkserver
  children, opened from pins), the read-only descriptor behind read-only
  regions, the duplicates mmap.mmap keeps for regions, and the descriptors a
  pin holder keeps. Checked flag by flag, and end to end: a program exec'd with
  ``close_fds=False`` sees none of them.
- Memfds are mode 0400 (owner read-only: a read-only handle cannot be re-opened
  writable through /proc by anyone else), pins are 0600 whatever the umask, and
  nothing is left in the filesystem once the pins are gone.

Other users against pins and read-only handles: tests/test_sharing.py
(test_other_users_cannot_open_or_upgrade, test_pin_holder_refuses_other_users_...)
and tests/test_hostile.py (test_open_pinned_refuses_a_socket_served_by_another_user).
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

import pytest

import bpfmap
from bpfmap import BPF_F_MMAPABLE, BPF_F_RDONLY, BPF_F_WRONLY, ArrayMap

O_CLOEXEC_FDINFO = 0o2000000  # the flags: line of /proc/PID/fdinfo/N


def fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def is_cloexec(fd: int) -> bool | None:
    """FD_CLOEXEC of fd, or None if it is not open (listdir's own descriptor)."""
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    except OSError:
        return None


def describe(fd: int, pid: str = "self") -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return "?"


def is_ours(target: str) -> bool:
    """A descriptor of a map: an emulated memfd or a kernel map."""
    return target.startswith("/memfd:bpfmap") or target == "anon_inode:bpf-map"


@pytest.fixture
def pin_path(backend: str, tmp_path: Any) -> Iterator[str]:
    path = f"/sys/fs/bpf/bpfmap_sec_{os.getpid()}" if backend == "kernel" else str(tmp_path / "pin")
    yield path
    if os.path.lexists(path):
        os.unlink(path)


def _tour(backend: str, pin_path: str) -> list[Any]:
    """Everything that makes descriptors; returns what must stay alive."""
    keep: list[Any] = []
    m = ArrayMap(8, 1024, flags=BPF_F_MMAPABLE, backend=backend)
    keep.append(m)
    keep.append(m.mmap())  # mmap.mmap keeps a dup of the fd
    keep.append(m.mmap(writable=False))  # emulated: the O_RDONLY re-open, then its dup
    for flag in (BPF_F_RDONLY, BPF_F_WRONLY):
        keep.append(ArrayMap(8, 4, flags=BPF_F_MMAPABLE | flag, backend=backend))
    keep.append(ArrayMap.from_fd(os.dup(m.fd)))
    # pickling in-process: multiprocessing's resource sharer
    keep.append(ForkingPickler.loads(ForkingPickler.dumps(m)))
    m.pin(pin_path)
    keep.append(ArrayMap.open_pinned(pin_path))
    keep.append(ArrayMap.open_pinned(pin_path, readonly=True))
    return keep


def test_every_descriptor_is_close_on_exec(backend: str, pin_path: str) -> None:
    before = fds()
    keep = _tour(backend, pin_path)
    new = sorted(fds() - before)
    assert new, "the tour made no descriptor"
    leaky = {fd: describe(fd) for fd in new if is_cloexec(fd) is False}
    assert leaky == {}, f"descriptors without FD_CLOEXEC: {leaky}"
    # End to end: a program exec'd without close_fds sees none of them.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os\nfor fd in os.listdir('/proc/self/fd'):\n"
            "    try: print(os.readlink('/proc/self/fd/' + fd))\n    except OSError: pass",
        ],
        close_fds=False,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [t for t in out if is_ours(t)] == []
    del keep


def _report_cloexec(m: ArrayMap, conn: Connection) -> None:
    conn.send((is_cloexec(m.fd), describe(m.fd)))


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_unpickled_maps_are_close_on_exec(backend: str, method: str) -> None:
    """spawn passes the fd inheritable, forkserver receives it without MSG_CMSG_CLOEXEC."""
    m = ArrayMap(8, 4, backend=backend)
    ctx = mp.get_context(method)
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_report_cloexec, args=(m, child))
    proc.start()
    cloexec, target = parent.recv()
    proc.join()
    assert proc.exitcode == 0
    assert is_ours(target)
    assert cloexec


def test_pin_holder_descriptors_are_close_on_exec(tmp_path: Any) -> None:
    path = str(tmp_path / "pin")
    m = ArrayMap(8, 4)
    m.pin(path)
    try:
        holder = bpfmap._pin.holder_pid(path)
        flags = {}
        for fd in os.listdir(f"/proc/{holder}/fd"):
            if int(fd) > 2:
                try:
                    with open(f"/proc/{holder}/fdinfo/{fd}") as f:
                        line = next(x for x in f if x.startswith("flags:"))
                    flags[describe(int(fd), str(holder))] = int(line.split()[1], 8)
                except FileNotFoundError:
                    continue  # a client connection that the holder closed since
        assert any(is_ours(t) for t in flags), flags
        leaky = [t for t, f in flags.items() if not f & O_CLOEXEC_FDINFO]
        assert leaky == [], f"holder descriptors without O_CLOEXEC: {leaky}"
    finally:
        os.unlink(path)


# ------------------------------------------------------------ file modes


@pytest.mark.parametrize("flags", [0, BPF_F_RDONLY, BPF_F_WRONLY])
def test_memfds_are_owner_read_only(flags: int) -> None:
    before = fds()
    m = ArrayMap(8, 1024, flags=BPF_F_MMAPABLE | flags)
    regions = [m.mmap(writable=False), m.mmap()] if not flags else []
    modes = {
        describe(fd): stat.S_IMODE(os.fstat(fd).st_mode)
        for fd in fds() - before
        if is_ours(describe(fd))
    }
    assert modes and set(modes.values()) == {0o400}, modes
    for r in regions:
        r.close()


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_pins_are_0600_whatever_the_umask(backend: str, pin_path: str, umask: int) -> None:
    m = ArrayMap(8, 4, backend=backend)
    old = os.umask(umask)
    try:
        m.pin(pin_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(pin_path).st_mode) == 0o600


def _snapshot(dirs: list[str]) -> set[str]:
    out: set[str] = set()
    for d in dirs:
        with contextlib.suppress(OSError):
            out |= {os.path.join(d, n) for n in os.listdir(d)}
    return out


def test_nothing_is_left_behind(tmp_path: Any) -> None:
    """A tour of everything, pins removed: no file remains, here, in /tmp or /dev/shm."""
    shared = ["/tmp", "/dev/shm", "/run/shm", "/var/tmp"]
    before = _snapshot(shared)
    pins = []
    for i in range(3):
        m = ArrayMap(8, 1024, flags=BPF_F_MMAPABLE, name=f"tour{i}")
        with m.mmap() as region:
            region[0:8] = b"tour!!!!"
        path = str(tmp_path / f"pin{i}")
        m.pin(path)
        pins.append((path, bpfmap._pin.holder_name(path), m.id))
        ArrayMap.open_pinned(path, readonly=True).close()
        m.close()
    for path, holder, map_id in pins:
        os.unlink(path)
        bpfmap._pin.sweep(holder)  # the holder lets go of the map now, not within a second
        pid = bpfmap._pin.holder_pid_of(holder)
        assert not any(os.stat(f"/proc/{pid}/fd/{fd}").st_ino == map_id
                       for fd in os.listdir(f"/proc/{pid}/fd")
                       if describe(int(fd), str(pid)).startswith("/memfd:bpfmap"))
    assert os.listdir(tmp_path) == []
    created = {p for p in _snapshot(shared) - before if "pytest" not in p}
    world_readable = {p for p in created if os.lstat(p).st_mode & 0o004}
    assert world_readable == set(), world_readable

