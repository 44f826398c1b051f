"""Issue 14 section 3: descriptors and handles (regions, keys, from_fd, headers, pickle).

Every test runs the real thing: real mappings, real bpf() descriptors, real
processes; the kernel backend answers where it can.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import multiprocessing as mp
import os
import pickle
import struct
import subprocess
import sys

import pytest

from bpfmap import BPF_F_MMAPABLE, ArrayMap

PAGE = mmap.PAGESIZE


def new_map(backend: str, value_size: int = 8, max_entries: int = 8) -> ArrayMap:
    return ArrayMap(value_size, max_entries, flags=BPF_F_MMAPABLE, backend=backend)


# ---------------------------------------------------------------- from_fd


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
    m = new_map(backend)
    m[1] = b"adopted."
    other = ArrayMap.from_fd(os.dup(m.fd))
    assert other[1] == b"adopted." and other.backend == backend


# --------------------------------------------------- emulated map headers

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


# ------------------------------------------------------------------ pickle


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


def _child_writes(m: ArrayMap) -> None:
    m[2] = b"from-kid"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_still_passes_the_map(backend: str, method: str) -> None:
    m = new_map(backend)
    ctx = mp.get_context(method)
    proc = ctx.Process(target=_child_writes, args=(m,))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert m[2] == b"from-kid"


def test_subclasses_pass_through_multiprocessing_too() -> None:
    class Mine(ArrayMap):
        __slots__ = ()

    base = ArrayMap(8, 8)
    m = Mine.from_fd(os.dup(base.fd))
    from multiprocessing.reduction import ForkingPickler

    other = ForkingPickler.loads(ForkingPickler.dumps(m))
    m[0] = b"subclass"
    assert other[0] == b"subclass"
    with pytest.raises(TypeError):
        pickle.dumps(m)
