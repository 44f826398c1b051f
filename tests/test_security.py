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

- Other users: an emulated pin opens for its owning user only (the holder checks
  SO_PEERCRED even through a world-writable socket), and a read-only handle passed
  to another user cannot be made writable (re-opening the pin or /proc/PID/fd,
  fchmod, F_SETFL, F_ADD_SEALS, mmap, mprotect). See also tests/test_hostile.py
  (test_open_pinned_refuses_a_socket_served_by_another_user).
- The emulated backend needs no privileges: every feature but pinning works as
  user nobody.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
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
from conftest import errno_of, mprotect, new_map

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


PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def _open_as_nobody(path: str, fd: int, owner: int, owner_fd: int, conn: Connection) -> None:
    """Every way another user might get write access through a read-only descriptor."""
    import fcntl

    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    results = {}
    results["open_pinned"] = errno_of(lambda: ArrayMap.open_pinned(path))
    results["open_pinned_ro"] = errno_of(lambda: ArrayMap.open_pinned(path, readonly=True))
    results["reopen_rw"] = errno_of(lambda: os.close(os.open(f"/proc/self/fd/{fd}", os.O_RDWR)))
    results["reopen_owner_fd"] = errno_of(
        lambda: os.close(os.open(f"/proc/{owner}/fd/{owner_fd}", os.O_RDWR))
    )
    results["owner_mem"] = errno_of(lambda: os.close(os.open(f"/proc/{owner}/mem", os.O_RDWR)))
    results["fchmod"] = errno_of(lambda: os.fchmod(fd, 0o600))
    results["chmod_proc"] = errno_of(lambda: os.chmod(f"/proc/self/fd/{fd}", 0o600))
    results["add_seals"] = errno_of(lambda: fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE))
    results["ftruncate"] = errno_of(lambda: os.ftruncate(fd, 0))
    results["pwrite"] = errno_of(lambda: os.pwrite(fd, b"x", PAGE))
    fcntl.fcntl(fd, fcntl.F_SETFL, os.O_RDWR)  # access modes cannot be changed: ignored
    results["mode_after_setfl"] = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    # A name for the memfd, to open it writable by name: no (EXDEV: another mount).
    results["link_refused"] = errno_of(
        lambda: os.link(f"/proc/self/fd/{fd}", "/tmp/bpfmap_linked", follow_symlinks=True)
    ) in (errno.EXDEV, errno.ENOENT, errno.EACCES, errno.EPERM)
    results["mmap_shared_rw"] = errno_of(
        lambda: mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=PAGE)
    )
    shared_ro = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
    results["mprotect_rw"] = mprotect(shared_ro, mmap.PROT_READ | mmap.PROT_WRITE)
    private = mmap.mmap(fd, PAGE, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE, offset=PAGE)
    private[0:8] = b"private!"  # copy-on-write: a page of our own, never the map's
    ro = ArrayMap.from_fd(os.dup(fd))
    results["update"] = errno_of(lambda: ro.update(0, bytes(8)))
    results["update_batch"] = errno_of(lambda: ro.update_batch([0], bytes(8)))
    results["freeze"] = errno_of(ro.freeze)
    results["mmap_rw"] = errno_of(lambda: ro.mmap())
    results["value"] = ro.lookup(0)
    conn.send(results)


def test_other_users_cannot_open_or_upgrade(tmp_path: Any) -> None:
    """Owner-only pins; a read-only handle passed to another user stays read-only."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another user")
    os.chmod(tmp_path, 0o755)
    path = str(tmp_path / "pinned")
    m = new_map("emulated")
    m.update(0, b"original")
    m.pin(path)
    try:
        ro = ArrayMap.open_pinned(path, readonly=True)
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_open_as_nobody, args=(path, ro.fd, os.getpid(), m.fd, child))
        proc.start()
        results = parent.recv()
        proc.join()
        assert results == {
            "open_pinned": errno.EACCES,
            "open_pinned_ro": errno.EACCES,
            "reopen_rw": errno.EACCES,
            "reopen_owner_fd": errno.EACCES,
            "owner_mem": errno.EACCES,
            "fchmod": errno.EPERM,
            "chmod_proc": errno.EPERM,
            "add_seals": errno.EPERM,
            "ftruncate": errno.EINVAL,
            "pwrite": errno.EBADF,
            "mode_after_setfl": os.O_RDONLY,
            "link_refused": True,
            "mmap_shared_rw": errno.EACCES,
            "mprotect_rw": errno.EACCES,
            "update": errno.EPERM,
            "update_batch": errno.EPERM,
            "freeze": errno.EPERM,
            "mmap_rw": errno.EACCES,
            "value": b"original",
        }
        assert m.lookup(0) == b"original" and not m.frozen
        assert os.stat(f"/proc/self/fd/{m.fd}").st_mode & 0o777 == 0o400
    finally:
        os.unlink(path)


def _connect_as_nobody(path: str, conn: Connection) -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    conn.send(errno_of(lambda: ArrayMap.open_pinned(path)))


def test_pin_holder_refuses_other_users_even_through_an_open_socket(tmp_path: Any) -> None:
    """The holder checks SO_PEERCRED itself: a world-writable socket still serves no one else."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another user")
    os.chmod(tmp_path, 0o755)
    path = str(tmp_path / "pinned")
    m = new_map("emulated")
    m.pin(path)
    try:
        os.chmod(path, 0o666)  # a mistake of the owner's: connect() now works for anyone
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_connect_as_nobody, args=(path, child))
        proc.start()
        assert parent.recv() == errno.EACCES
        proc.join()
        assert ArrayMap.open_pinned(path).id == m.id  # its owner is still served
    finally:
        os.unlink(path)


def _unprivileged_tour(conn: Connection) -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    out: dict[str, Any] = {}
    m = new_map("emulated", max_entries=16)
    rw = m.mmap()
    rw[0:8] = b"unpriv!!"
    out["lookup"] = m.lookup(0)
    out["busy"] = errno_of(m.freeze)
    rw.close()
    out["freeze"] = errno_of(m.freeze)
    out["ro_map"] = bytes(m.mmap(writable=False)[0:8])
    for flag, name in ((bpfmap.BPF_F_RDONLY, "r"), (bpfmap.BPF_F_WRONLY, "w")):
        h = new_map("emulated", flags=flag)
        out[name] = (h.access, ArrayMap.from_fd(os.dup(h.fd)).access, h.info().max_entries)
    conn.send(out)


def test_emulated_backend_needs_no_privileges() -> None:
    """Every emulated feature but pinning, as user nobody (pinning: tests/test_pins.py)."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another user")
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_unprivileged_tour, args=(child,))
    proc.start()
    out = parent.recv()
    proc.join()
    assert out == {
        "lookup": b"unpriv!!",
        "busy": errno.EBUSY,
        "freeze": 0,
        "ro_map": b"unpriv!!",
        "r": ("r", "r", 1024),
        "w": ("w", "w", 1024),
    }
