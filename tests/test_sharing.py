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
