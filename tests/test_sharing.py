"""mmap, freeze and sharing between processes: the seed's rules, on both backends.

Every rule runs on the emulated and the kernel backend in the same test, with
real processes (fork, spawn, forkserver), real signals and pipes for
synchronisation.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import multiprocessing as mp
import os
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

import bpfmap
from bpfmap import BPF_F_MMAPABLE, ArrayMap

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def new_map(backend: str, value_size: int = 8, max_entries: int = 1024, flags: int = 0) -> ArrayMap:
    return ArrayMap(value_size, max_entries, flags=flags | BPF_F_MMAPABLE, backend=backend)


def address(region: Any) -> int:
    """The start address of a mapping (the temporary export is released at once)."""
    from bpfmap._core import ffi

    buf = ffi.from_buffer(region)
    try:
        return int(ffi.cast("uintptr_t", buf))
    finally:
        ffi.release(buf)


def errno_of(fn: Any) -> int:
    try:
        fn()
    except OSError as exc:
        return int(exc.errno or 0)
    return 0


def mprotect(region: Any, prot: int, length: int = PAGE) -> int:
    rc = libc.mprotect(address(region), length, prot)
    return 0 if rc == 0 else ctypes.get_errno()


# ------------------------------------------------------------- pinning


@pytest.fixture
def pin_path(backend: str, tmp_path: Any) -> Iterator[str]:
    if backend == "kernel":
        path = f"/sys/fs/bpf/bpfmap_test_{os.getpid()}"
    else:
        path = str(tmp_path / "pinned")
    yield path
    if os.path.lexists(path):
        os.unlink(path)


def _create_and_pin(backend: str, path: str) -> None:
    m = new_map(backend)
    m.update(7, b"survives")
    m.pin(path)


def holds_map(pid: int, map_id: int) -> bool:
    """Whether process ``pid`` has the emulated map ``map_id`` (its memfd's inode) open."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if (os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:bpfmap")
                    and os.stat(f"/proc/{pid}/fd/{fd}").st_ino == map_id):
                return True
        except OSError:
            continue
    return False


def test_pin_outlives_its_creator(backend: str, pin_path: str) -> None:
    proc = mp.get_context("spawn").Process(target=_create_and_pin, args=(backend, pin_path))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert os.stat(pin_path).st_mode & 0o777 == 0o600
    m = ArrayMap.open_pinned(pin_path)
    assert m.backend == backend
    assert m.lookup(7) == b"survives"
    assert errno_of(lambda: m.pin(pin_path)) == errno.EEXIST
    holder = bpfmap._pin.holder_name(pin_path) if backend == "emulated" else None
    os.unlink(pin_path)
    if holder is not None:
        bpfmap._pin.sweep(holder)  # the holder lets go once the last link is gone
        assert not holds_map(bpfmap._pin.holder_pid_of(holder), m.id)
    assert errno_of(lambda: ArrayMap.open_pinned(pin_path)) == errno.ENOENT
    assert m.lookup(7) == b"survives"  # open handles keep the map


def test_readonly_handle_from_a_pin(backend: str, pin_path: str) -> None:
    """P08-P13: a read-only handle reads, and refuses update, freeze and any mmap."""
    m = new_map(backend)
    m.update(1, b"readonly")
    m.pin(pin_path)
    ro = ArrayMap.open_pinned(pin_path, readonly=True)
    assert ro.access == "r"
    assert ro.lookup(1) == b"readonly"
    assert errno_of(lambda: ro.update(1, bytes(8))) == errno.EPERM
    assert errno_of(ro.freeze) == errno.EPERM
    assert errno_of(lambda: ro.mmap()) == errno.EACCES
    assert errno_of(lambda: ro.mmap(writable=False)) == errno.EINVAL
    # Re-opening the same pin read-write is allowed, as on bpffs: modes are per handle.
    assert ArrayMap.open_pinned(pin_path).access == "rw"


def test_pin_errors(backend: str, tmp_path: Any) -> None:
    m = new_map(backend)
    other = str(tmp_path / "regular")
    open(other, "w").close()
    assert errno_of(lambda: ArrayMap.open_pinned(other)) == errno.EACCES
    assert errno_of(lambda: ArrayMap.open_pinned(str(tmp_path / "missing"))) == errno.ENOENT
    if backend == "kernel":
        assert errno_of(lambda: m.pin(str(tmp_path / "outside"))) == errno.EPERM  # P04
    else:
        assert errno_of(lambda: m.pin("/sys/fs/bpf/bpfmap_emulated")) == errno.EINVAL


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


# ------------------------------------------------------------- lifetime


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
