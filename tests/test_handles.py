"""Handles: from_fd, the header a handle checks on open, close, ``with``, pickling.

``ArrayMap.from_fd`` takes ownership of an array map's descriptor and refuses
anything else (a pipe, a BPF program, a map of another type, an emulated map whose
header was rewritten to something the kernel would never create); a closed handle
raises on every call, ``close()`` is idempotent and ``with`` closes; plain pickle
and ``copy`` refuse and say how to hand a map over (multiprocessing: see
tests/test_processes.py); create/mmap/close cycles leak no descriptor nor memory
(BPFMAP_LIFETIME_CYCLES). Read-only handles from pins are in tests/test_pins.py.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from conftest import new_map

from bpfmap import BPF_F_MMAPABLE, ArrayMap

PAGE = mmap.PAGESIZE


def small_map(backend: str, value_size: int = 8, max_entries: int = 8) -> ArrayMap:
    """An mmapable map of 8 values of 8 bytes unless told (new_map's default is 1024)."""
    return ArrayMap(value_size, max_entries, flags=BPF_F_MMAPABLE, backend=backend)


def _bpf(cmd: int, attr: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(attr, 128)
    rc = libc.syscall(321 if sys.maxsize > 2**32 else 386, cmd, buf, 128)  # __NR_bpf (x86)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(rc)


def load_kprobe_prog() -> int:
    """A kprobe program (``r0 = 0; exit``): BPF_PROG_LOAD, prog type 2."""
    insns = ctypes.create_string_buffer(
        struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    )
    lic = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack(
        "<IIQQIIQ", 2, 2, ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0
    )
    return _bpf(5, attr)


def test_from_fd_refuses_a_program(kernel: None) -> None:
    """Before: a kprobe program (type 2) was adopted as an array of garbage sizes."""
    fd = load_kprobe_prog()
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-prog"
        with pytest.raises(OSError) as info:
            ArrayMap.from_fd(fd)
        # The kernel's own answer to a map command on a program fd (__bpf_map_get()).
        assert info.value.errno == errno.EINVAL
        with pytest.raises(OSError) as kinfo:
            _bpf(4, struct.pack("<IIQQ", fd, 0, 0, 0))  # BPF_MAP_GET_NEXT_KEY
        assert kinfo.value.errno == info.value.errno
        os.fstat(fd)  # on failure the caller still owns the descriptor
    finally:
        os.close(fd)


def test_from_fd_refuses_a_map_of_another_type(kernel: None) -> None:
    attr = struct.pack("<IIIII", 1, 4, 8, 4, 0)  # BPF_MAP_TYPE_HASH
    fd = _bpf(0, attr)
    try:
        with pytest.raises(OSError) as info:
            ArrayMap.from_fd(fd)
        assert info.value.errno == errno.EINVAL
        os.fstat(fd)
    finally:
        os.close(fd)


def test_from_fd_still_adopts_array_maps(backend: str) -> None:
    m = small_map(backend)
    m[1] = b"adopted."
    other = ArrayMap.from_fd(os.dup(m.fd))
    assert other[1] == b"adopted." and other.backend == backend


# struct bpfmap_header (csrc/bpfmap.c) ends page 0: magic, version, map_type,
# key_size, value_size, max_entries, map_flags, page_size, name[16].
HEADER = struct.Struct("=QIIIIIIQ16s")
FIELDS = dict(map_type=2, key_size=3, value_size=4, max_entries=5, map_flags=6, name=8)


def rewritten(m: ArrayMap, **fields: object) -> ArrayMap:
    """Rewrite header fields through the map's own writable fd (what any writer can do),
    then open the map again."""
    off = PAGE - HEADER.size
    values = list(HEADER.unpack(os.pread(m.fd, HEADER.size, off)))
    for name, value in fields.items():
        values[FIELDS[name]] = value
    os.pwrite(m.fd, HEADER.pack(*values), off)
    return ArrayMap.from_fd(os.dup(m.fd))


@pytest.mark.parametrize(
    "fields",
    [
        {"map_type": 1},  # BPF_MAP_TYPE_HASH
        {"map_type": 0},
        {"map_flags": 1 << 3},  # BPF_F_RDONLY: belongs to the fd, never stored
        {"map_flags": 1 << 30},  # unknown flag
        {"map_flags": (1 << 7) | (1 << 8)},  # RDONLY_PROG | WRONLY_PROG
        {"map_flags": 1 << 11},  # BPF_F_PRESERVE_ELEMS
        {"map_flags": 1 << 16},  # BPF_F_TOKEN_FD
        {"name": b"bad\nname"},
        {"name": b"no-dash"},
        {"name": b"x" * 16},  # no NUL within 16 bytes
        {"key_size": 8},
        {"value_size": 0},
        {"max_entries": 0},
        {"max_entries": 1000},  # the file size no longer matches
    ],
)
def test_rewritten_header_is_refused_on_open(fields: dict[str, object]) -> None:
    m = ArrayMap(8, 8, name="good")
    with pytest.raises(OSError) as info:
        rewritten(m, **fields)
    assert info.value.errno == errno.EINVAL
    assert m.name == "good"  # the open handle keeps what it read when it opened


@pytest.mark.parametrize(
    "fields, name, flags",
    [
        ({}, "good", 0),
        ({"name": b"ok.name_2\0junk"}, "ok.name_2", 0),  # bytes after the NUL are not shown
        ({"map_flags": 1 << 10}, "good", 1 << 10),  # BPF_F_MMAPABLE
        ({"map_flags": 1 << 7}, "good", 1 << 7),  # BPF_F_RDONLY_PROG
    ],
)
def test_valid_headers_still_open(fields: dict[str, object], name: str, flags: int) -> None:
    m = ArrayMap(8, 8, name="good")
    other = rewritten(m, **fields)
    assert (other.name, other.flags, other.info().name) == (name, flags, name)


def test_plain_pickle_and_copy_refuse_and_leak_nothing(backend: str) -> None:
    """Before: each pickle.dumps() dup'ed a descriptor nobody closed, and copy.copy()
    started multiprocessing's resource-sharer thread."""
    code = (
        "import copy, os, pickle, threading, bpfmap\n"
        f"m = bpfmap.ArrayMap(8, 8, backend={backend!r})\n"
        "fds = len(os.listdir('/proc/self/fd')); threads = threading.active_count()\n"
        "for f in (pickle.dumps, copy.copy, copy.deepcopy):\n"
        "    for _ in range(20):\n"
        "        try:\n            f(m)\n        except TypeError as e:\n            msg = str(e)\n"
        "        else:\n            raise SystemExit(f'{f} did not raise')\n"
        "    print(msg.split(':')[0])\n"
        "print(len(os.listdir('/proc/self/fd')) - fds, threading.active_count() - threads)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "cannot pickle 'ArrayMap' object",
        "cannot copy 'ArrayMap' object",
        "cannot copy 'ArrayMap' object",
        "0 0",
    ]


def test_pickle_message_says_how_to_hand_a_map_over() -> None:
    with pytest.raises(TypeError, match=r"multiprocessing.*send_fds.*from_fd.*pin"):
        pickle.dumps(ArrayMap(8, 8))


MM = BPF_F_MMAPABLE


def test_from_fd_misuse(backend: str) -> None:
    with pytest.raises(TypeError, match=r"fd must be an int"):
        ArrayMap.from_fd("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fd must be in"):
        ArrayMap.from_fd(-1)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            ArrayMap.from_fd(r)
        assert info.value.errno == errno.EINVAL
        os.fstat(r)  # on failure the caller still owns the fd
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(OSError) as info:
        ArrayMap.from_fd(r)  # closed now
    assert info.value.errno == errno.EBADF


def test_from_fd_takes_ownership(backend: str) -> None:
    m = ArrayMap(4, 2, backend=backend)
    try:
        fd = os.dup(m.fd)
        m2 = ArrayMap.from_fd(fd)
        m2.update(1, b"abcd")
        assert m.lookup(1) == b"abcd"
        assert (m2.backend, m2.value_size, m2.max_entries, m2.id) == (backend, 4, 2, m.id)
        m2.close()
        with pytest.raises(OSError):
            os.fstat(fd)  # closed by the map
    finally:
        m.close()


CLOSED_CALLS: dict[str, Callable[[ArrayMap], Any]] = {
    "fd": lambda m: m.fd,
    "backend": lambda m: m.backend,
    "key_size": lambda m: m.key_size,
    "value_size": lambda m: m.value_size,
    "max_entries": lambda m: m.max_entries,
    "flags": lambda m: m.flags,
    "name": lambda m: m.name,
    "id": lambda m: m.id,
    "access": lambda m: m.access,
    "frozen": lambda m: m.frozen,
    "info": lambda m: m.info(),
    "lookup": lambda m: m.lookup(0),
    "lookup-bad-key": lambda m: m.lookup("x"),
    "lookup_into": lambda m: m.lookup_into(0, bytearray(4)),
    "update": lambda m: m.update(0, b"abcd"),
    "update-bytearray": lambda m: m.update(0, bytearray(4)),
    "delete": lambda m: m.delete(0),
    "lookup_and_delete": lambda m: m.lookup_and_delete(0),
    "get_next_key": lambda m: m.get_next_key(),
    "lookup_batch": lambda m: m.lookup_batch(),
    "batches": lambda m: next(m.batches()),
    "update_batch": lambda m: m.update_batch([0], [b"abcd"]),
    "delete_batch": lambda m: m.delete_batch([0]),
    "freeze": lambda m: m.freeze(),
    "mmap": lambda m: m.mmap(),
    "len": lambda m: len(m),
    "getitem": lambda m: m[0],
    "setitem": lambda m: m.__setitem__(0, b"abcd"),
    "delitem": lambda m: m.__delitem__(0),
    "iter": lambda m: next(iter(m)),
    "items": lambda m: next(m.items()),
    "with": lambda m: m.__enter__(),
}


@pytest.mark.parametrize("call", CLOSED_CALLS)
def test_closed_map(backend: str, call: str) -> None:
    m = ArrayMap(4, 4, flags=MM, backend=backend)
    m.close()
    assert m.closed
    with pytest.raises(ValueError, match=r"closed map"):
        CLOSED_CALLS[call](m)


def test_close_is_idempotent_and_repr(backend: str) -> None:
    m = ArrayMap(4, 4, name="r", backend=backend)
    assert repr(m).startswith(f"<ArrayMap {backend} id=")
    assert "name='r' value_size=4 max_entries=4 flags=0x0" in repr(m)
    m.close()
    m.close()
    assert repr(m) == "<ArrayMap closed>"


def test_with(backend: str) -> None:
    with ArrayMap(4, 4, backend=backend) as m:
        assert not m.closed
        m[0] = b"abcd"
    assert m.closed
    with pytest.raises(RuntimeError), ArrayMap(4, 4, backend=backend) as m2:
        raise RuntimeError("boom")
    assert m2.closed


def test_from_fd_rejects_other_descriptors() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            ArrayMap.from_fd(r)
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _shmem_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Shmem:"):
                return int(line.split()[1])
    return 0


def test_create_map_close_cycles_leak_nothing(backend: str) -> None:
    cycles = int(os.environ.get("BPFMAP_LIFETIME_CYCLES", "10000"))
    fds, shmem = _fd_count(), _shmem_kib()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1])
    for i in range(cycles):
        m = new_map(backend, max_entries=512)
        region = m.mmap()
        region[0:8] = i.to_bytes(8, "little")
        region.close()
        m.close()
    assert _fd_count() == fds
    with open("/proc/self/statm") as f:
        rss_after = int(f.read().split()[1])
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        # Under tools/sanitize.sh, ASan's quarantine keeps every freed block (create reads
        # the memory cgroup's files, a few stdio buffers each): resident memory grows
        # without a leak there, and the descriptor and Shmem checks still hold.
        assert (rss_after - rss) * PAGE < 8 << 20, "resident memory grew by more than 8 MiB"
    # 10,000 leaked 8 KiB maps would be 80 MiB of shared memory.
    assert _shmem_kib() - shmem < 16 << 10
    print(
        f"{backend}: {cycles} create/mmap/close cycles, descriptors {fds} -> {_fd_count()}, "
        f"RSS {(rss_after - rss) * PAGE // 1024:+} KiB, Shmem {_shmem_kib() - shmem:+} KiB"
    )
