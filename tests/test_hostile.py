"""Hostile input: every public call, fuzzed, in subprocesses; the interpreter must never die.

A worker process (this file run as a script) makes random calls on random maps
with random arguments: the right ones most of the time (so that calls get deep),
and otherwise wrong types, negative and huge integers, objects whose
``__index__``/``__len__``/``__iter__``/``__bool__``/``__fspath__`` raise, values and
buffers of every length and kind (read-only, non-contiguous, released,
still exported, other formats, NumPy arrays, anonymous mmaps, the map's own
regions), closed maps, closed and exported regions, from_fd of every kind of
descriptor, pins at hostile paths. Every call must return or raise one of the
documented exceptions (OSError, TypeError, ValueError, BufferError, or the
hostile object's own exception); the worker must exit normally (a crash is a
signal: the test reports it with the seed that replays it), must not close a
descriptor it does not own, and must leave its descriptors where they were.

    BPFMAP_HOSTILE_CALLS=<n>  calls per worker (default 40000; 2 workers per backend)
    BPFMAP_HOSTILE_SEED=<n>   the first worker's seed (default: random, printed)

    python tests/test_hostile.py --worker SEED CALLS BACKEND TMPDIR   (one worker, JSON out;
        TMPDIR a directory of its own: the worker unlinks every socket under it at the end)
"""

from __future__ import annotations

import array
import collections
import contextlib
import copy
import ctypes
import gc
import itertools
import json
import mmap
import os
import pickle
import random
import resource
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from multiprocessing import resource_sharer
from multiprocessing.reduction import ForkingPickler
from typing import Any

import pytest

PAGE = mmap.PAGESIZE
# AddressSanitizer reserves terabytes of address space: no RLIMIT_AS under it (tools/sanitize.sh).
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
CALLS = int(os.environ.get("BPFMAP_HOSTILE_CALLS", "40000"))
WORKERS = 2


class PointerStruct(ctypes.Structure):
    _fields_ = [("n", ctypes.c_uint32), ("p", ctypes.POINTER(ctypes.c_char))]


class HostileError(Exception):
    """Raised by the hostile objects below: a caller's own exception, passed through."""


class RaisingIndex:
    def __index__(self) -> int:
        raise HostileError("__index__")

    def __int__(self) -> int:
        raise HostileError("__int__")

    def __bool__(self) -> bool:
        raise HostileError("__bool__")

    def __len__(self) -> int:
        raise HostileError("__len__")

    def __iter__(self) -> Iterator[int]:
        raise HostileError("__iter__")

    def __fspath__(self) -> str:
        raise HostileError("__fspath__")


class HugeIndex:
    def __index__(self) -> int:
        return 2**70

    def __len__(self) -> int:
        return 2**62


def failing_iter(n: int) -> Iterator[int]:
    yield from range(n)
    raise HostileError("iteration")


ALLOWED = (OSError, TypeError, ValueError, BufferError, HostileError)

HOSTILE_INTS = [
    -1,
    -(2**31),
    -(2**32),
    -(2**63),
    -(2**64),
    -(2**100),
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    2**100,
]


def hostile_objects() -> list[Any]:
    import numpy as np

    return [
        None,
        True,
        False,
        0.0,
        1.5,
        float("nan"),
        float("inf"),
        1j,
        "0",
        "",
        b"\x00",
        b"",
        bytearray(4),
        [0],
        (0,),
        {0: 0},
        set(),
        object(),
        Ellipsis,
        slice(0, 1),
        int,
        RaisingIndex(),
        HugeIndex(),
        np.uint32(1),
        np.int64(-1),
        np.uint64(2**64 - 1),
        np.float64(1.0),
        np.bool_(True),
        range(3),
    ]


# ------------------------------------------------------------------ worker


class Worker:
    """Random calls on random maps; counts outcomes; collects what should not happen."""

    def __init__(self, seed: int, backend: str, tmpdir: str) -> None:
        import bpfmap

        self.bpfmap = bpfmap
        self.rng = random.Random(seed)
        self.backend = backend
        self.tmpdir = tmpdir
        self.maps: list[Any] = []
        self.shape: dict[int, tuple[int, int]] = {}  # id(map) -> (value_size, max_entries)
        self.regions: list[Any] = []
        self.exports: list[Any] = []
        self.pins: list[str] = []
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self.unexpected: list[str] = []
        self.hostile = hostile_objects()
        self.pin_budget = 40  # pins at fresh paths (each holds a map until finish())

    # -- argument makers ------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def any_hostile(self) -> Any:
        if self.chance(0.5):
            return self.rng.choice(HOSTILE_INTS)
        return self.rng.choice(self.hostile)

    def key(self, m: Any) -> Any:
        if self.chance(0.75):
            n = self._max_entries(m)
            return self.rng.choice([0, 1, n - 1, n, n + 1, self.rng.randrange(0, n + 2)])
        return self.any_hostile()

    def u64(self) -> Any:
        if self.chance(0.6):
            return 0
        if self.chance(0.5):
            return self.rng.choice([1, 2, 3, 4, 5, 8, 1 << 16, 1 << 32, 2**64 - 1])
        return self.any_hostile()

    def flags(self) -> Any:
        return self.u64() if self.chance(0.3) else 0

    def length(self, vs: int) -> int:
        return self.rng.choice(
            [
                0,
                1,
                vs - 1,
                vs,
                vs,
                vs,
                vs + 1,
                2 * vs,
                vs + 7,
                self.rng.randrange(0, 3 * vs + 9),
                4096,
                65536,
                1 << 20,
            ]
        )

    def buffer(self, size: int, writable: bool | None = None) -> Any:
        """A buffer-ish object of about ``size`` bytes, of a random kind."""
        import numpy as np

        kind = self.rng.randrange(22)
        data = bytes(self.rng.getrandbits(8) for _ in range(min(size, 64))) + bytes(
            max(size - 64, 0)
        )
        if kind == 0:
            return data
        if kind == 1:
            return bytearray(data)
        if kind == 2:
            return memoryview(bytearray(data))
        if kind == 3:
            return memoryview(data)  # read-only
        if kind == 4:
            return memoryview(bytearray(data * 2))[::2]  # not contiguous
        if kind == 5:
            mv = memoryview(bytearray(data))
            mv.release()
            return mv
        if kind == 6:
            return array.array("B", data)
        if kind == 7:
            return array.array("d", bytes(size - size % 8))
        if kind == 8:
            return np.frombuffer(bytearray(data), dtype=np.uint8)
        if kind == 9:
            a = np.frombuffer(data, dtype=np.uint8)  # read-only array
            return a
        if kind == 10:
            return np.zeros(size * 2, dtype=np.uint8)[::2]
        if kind == 11:
            return np.zeros((2, max(size // 2, 1)), dtype=np.uint8).T  # Fortran order
        if kind == 12:
            anon = mmap.mmap(-1, max(size, 1))
            if self.chance(0.3):
                anon.close()
            return anon
        if kind == 13 and self.regions:
            return self.rng.choice(self.regions)  # a region of some map: aliasing, closed...
        if kind == 14 and self.regions:
            r = self.rng.choice(self.regions)
            try:
                return memoryview(r)[: max(size, 0)]
            except (ValueError, BufferError):
                return r
        if kind == 15:
            return data.decode("latin-1")  # str
        if kind == 16:
            return list(data)
        if kind == 17:
            return ctypes.create_string_buffer(data, max(size, 1))
        if kind == 18:
            return np.zeros(max(size // 4, 0), dtype=np.float32)
        return self.any_hostile()

    def keys(self, m: Any) -> Any:
        import numpy as np

        n = self.rng.choice([0, 1, 2, 3, 5, 8, 17, 64])
        kind = self.rng.randrange(14)
        good = [
            self.key(m) if self.chance(0.1) else self.rng.randrange(0, self._max_entries(m) + 1)
            for _ in range(n)
        ]
        if kind < 4:
            return good
        if kind == 4:
            return array.array("I", [k for k in good if isinstance(k, int) and 0 <= k < 2**32])
        if kind == 5:
            return np.arange(n, dtype=np.uint32)
        if kind == 6:
            return np.arange(2 * n, dtype=np.uint32)[::2]  # not contiguous
        if kind == 7:
            return np.arange(n, dtype=self.rng.choice([np.uint64, np.int32, np.uint16, np.float32]))
        if kind == 8:
            return array.array(self.rng.choice("bBhHilLqQfd"), range(n))
        if kind == 9:
            return failing_iter(n)
        if kind == 10:
            return range(n)
        if kind == 11:
            mv = memoryview(array.array("I", range(n)))
            if self.chance(0.5):
                mv.release()
            return mv
        if kind == 12:
            return np.arange(2 * n, dtype=np.uint32).reshape(2, n)
        return self.any_hostile()

    def values(self, m: Any, n: int) -> Any:
        vs = self._value_size(m)
        if self.chance(0.4):
            items: list[Any] = [
                bytes(self.length(vs) if self.chance(0.1) else vs) for _ in range(n)
            ]
            if self.chance(0.1) and items:
                items[self.rng.randrange(len(items))] = self.any_hostile()
            return items if self.chance(0.7) else tuple(items)
        size = n * vs if self.chance(0.7) else self.length(max(n * vs, 1))
        return self.buffer(size)

    def fd(self) -> tuple[Any, bool]:
        """(argument, whether it is a descriptor made here: from_fd adopts it or leaves it open)."""
        kind = self.rng.randrange(12)
        live = [m for m in self.maps if not m.closed]
        if kind < 3 and live:
            m = self.rng.choice(live)
            if self.chance(0.3):
                return os.open(f"/proc/self/fd/{m.fd}", os.O_RDONLY | os.O_CLOEXEC), True
            return os.dup(m.fd), True
        if kind == 3:
            r, w = os.pipe()
            os.close(w)
            return r, True
        if kind == 4:
            return os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC), True
        if kind == 5:
            return os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), True
        if kind == 6:
            fd = os.memfd_create("junk", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            size = self.rng.choice([0, 8, PAGE + 64])
            os.write(fd, bytes(self.rng.getrandbits(8) for _ in range(size)))
            return fd, True
        if kind == 7 and live:
            m = self.rng.choice(live)
            return os.open(f"/proc/self/fd/{m.fd}", os.O_PATH | os.O_CLOEXEC), True
        if kind == 8:
            return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).detach(), True
        if kind == 9:
            return self.rng.choice([0, 1, 2, 999, 2**31 - 1]), False  # not ours, or not open
        return self.any_hostile(), False

    def path(self) -> Any:
        kind = self.rng.randrange(14)
        base = self.tmpdir
        if kind == 0:
            return os.path.join(base, "missing", "deeper")
        if kind == 1:
            p = os.path.join(base, "regular")
            open(p, "w").close()
            return p
        if kind == 2:
            return base  # a directory
        if kind == 3:
            return os.path.join(base, "x" * 300)
        if kind == 4:
            return "/" + "y" * 5000
        if kind == 5:
            return os.path.join(base, "nul\0byte")
        if kind == 6:
            return os.fsencode(os.path.join(base, "bytes_path"))
        if kind == 7:
            p = os.path.join(base, "fifo")
            if not os.path.exists(p):
                os.mkfifo(p, 0o600)
            return p
        if kind == 8:
            p = os.path.join(base, "dgram")
            if not os.path.exists(p):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                s.bind(p)
                s.close()
            return p
        if kind == 9:
            return self.rng.choice(["/proc/self/fd/0", "/dev/null", "/sys/fs/bpf", ""])
        if kind == 10 and self.pins:
            return self.rng.choice(self.pins)
        if kind == 11 and self.pin_budget > 0:
            self.pin_budget -= 1
            p = os.path.join(base, f"pin{self.rng.randrange(10**9)}")
            self.pins.append(p)
            return p
        return self.any_hostile()

    def _max_entries(self, m: Any) -> int:
        return self.shape.get(id(m), (8, 4))[1]

    def _value_size(self, m: Any) -> int:
        return self.shape.get(id(m), (8, 4))[0]

    # -- maps -----------------------------------------------------------------

    def new_map(self) -> None:
        b = self.bpfmap
        vs = self.rng.choice([1, 3, 4, 7, 8, 12, 16, 24, 64, 100, 4096])
        n = self.rng.choice([1, 2, 3, 5, 64, 511, 513, 1024])
        flags = self.rng.choice(
            [b.BPF_F_MMAPABLE] * 6
            + [
                0,
                b.BPF_F_MMAPABLE | b.BPF_F_RDONLY,
                b.BPF_F_MMAPABLE | b.BPF_F_WRONLY,
                b.BPF_F_MMAPABLE | b.BPF_F_RDONLY_PROG,
                b.BPF_F_MMAPABLE | b.BPF_F_WRONLY_PROG,
            ]
        )
        m = b.ArrayMap(
            vs, n, flags=flags, name=self.rng.choice(["", "fz", "a.b_c"]), backend=self.backend
        )
        self._remember(m, vs, n)

    def _remember(self, m: Any, vs: int, n: int) -> None:
        """Keep a map, with the shape it was made with (its attributes go with close())."""
        self.maps.append(m)
        self.shape[id(m)] = (vs, n)
        if len(self.maps) > 12:
            old = self.maps.pop(0)
            del self.shape[id(old)]
            old.close()

    # -- the calls ------------------------------------------------------------

    def pick_map(self) -> Any:
        if not self.maps or self.chance(0.02):
            self.new_map()
        return self.rng.choice(self.maps)

    def run(self, calls: int) -> None:
        table = self.table()
        names = list(table)
        for _ in range(calls):
            name = self.rng.choice(names)
            self.calls[name] += 1
            try:
                table[name]()
                self.outcomes[f"{name}: ok"] += 1
            except ALLOWED as exc:
                self.outcomes[f"{name}: {type(exc).__name__}"] += 1
            except Exception as exc:  # noqa: BLE001 - what this test looks for
                self.unexpected.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
            if len(self.exports) > 8:
                for e in self.exports:
                    _release(e)
                self.exports.clear()
            if len(self.regions) > 24:
                r = self.regions.pop(0)
                with contextlib.suppress(*ALLOWED):
                    r.close()

    def table(self) -> dict[str, Callable[[], Any]]:
        b = self.bpfmap
        rng = self.rng

        def on_map(fn: Callable[[Any], Any]) -> Callable[[], Any]:
            return lambda: fn(self.pick_map())

        def create() -> None:
            args: list[Any] = [rng.choice([1, 8, 4096, 0]), rng.choice([1, 4, 0])]
            kw: dict[str, Any] = {
                "flags": rng.choice([0, b.BPF_F_MMAPABLE, b.BPF_F_RDONLY | b.BPF_F_WRONLY]),
                "name": rng.choice(["", "ok", "bad name", "x" * 17, b"\xff", "a\0b", "é"]),
                "key_size": rng.choice([4, 4, 4, 0, 8]),
                "backend": self.backend,
            }
            which = rng.randrange(7)
            if which < 2:
                args[which] = self.any_hostile()
                big = isinstance(args[which], int) and args[which] > 2**20
                if big:  # both backends really allocate at create: keep it refused
                    args[which] = 2**32
            elif which < 6:
                key = ["flags", "name", "key_size", "backend"][which - 2]
                kw[key] = self.any_hostile() if rng.random() < 0.8 else rng.choice([-1, "x", 2**40])
            m = b.ArrayMap(*args, **kw)
            m.close()

        def lookup(m: Any) -> Any:
            return m.lookup(self.key(m), self.flags())

        def lookup_into(m: Any) -> Any:
            buf = self.buffer(self.length(self._value_size(m)))
            try:
                return m.lookup_into(self.key(m), buf, self.flags())
            finally:
                _release(buf)

        def update(m: Any) -> Any:
            vs = self._value_size(m)
            value = self.buffer(self.length(vs)) if self.chance(0.5) else bytes(self.length(vs))
            try:
                return m.update(self.key(m), value, self.flags())
            finally:
                _release(value)

        def get_next_key(m: Any) -> Any:
            return m.get_next_key(None if self.chance(0.2) else self.key(m))

        def lookup_batch(m: Any) -> Any:
            count = (
                None
                if self.chance(0.2)
                else (
                    rng.choice([0, 1, 2, 7, 1024, 1025]) if self.chance(0.7) else self.any_hostile()
                )
            )
            in_batch = None if self.chance(0.4) else self.key(m)
            return m.lookup_batch(
                count, in_batch=in_batch, elem_flags=self.flags(), flags=self.flags()
            )

        def lookup_batch_into(m: Any) -> Any:
            import numpy as np

            n = rng.choice([0, 1, 2, 7, 64, 1024, 1025])
            kind = rng.randrange(5)
            keys: Any = (
                array.array("I", bytes(4 * n))
                if kind == 0
                else np.zeros(n, dtype=np.uint32)
                if kind == 1
                else np.zeros(2 * n, dtype=np.uint32)[::2]  # not contiguous
                if kind == 2
                else self.keys(m)  # lists, read-only, other formats, hostile objects
            )
            vs = self._value_size(m)
            values = self.buffer(n * vs if self.chance(0.7) else self.length(n * vs + 1))
            in_batch = None if self.chance(0.4) else self.key(m)
            try:
                return m.lookup_batch_into(
                    keys, values, in_batch=in_batch, elem_flags=self.flags(), flags=self.flags()
                )
            finally:
                _release(values)
                _release(keys)

        def batches(m: Any) -> Any:
            count = rng.choice([1, 3, 1000]) if self.chance(0.8) else self.any_hostile()
            return list(itertools.islice(m.batches(count), 40))

        def update_batch(m: Any) -> Any:
            keys = self.keys(m)
            try:
                n = min(len(keys), 64)  # HugeIndex says 2**62: values are made here
            except Exception:  # noqa: BLE001 - hostile keys
                n = rng.randrange(4)
            values = self.values(m, n)
            try:
                return m.update_batch(keys, values, elem_flags=self.flags(), flags=self.flags())
            finally:
                _release(values)
                _release(keys)

        def delete_batch(m: Any) -> Any:
            keys = self.keys(m)
            try:
                return m.delete_batch(keys, elem_flags=self.flags())
            finally:
                _release(keys)

        def do_mmap(m: Any) -> Any:
            kw: dict[str, Any] = {}
            if self.chance(0.5):
                kw["writable"] = rng.choice([True, False, True, 0, 1, None, RaisingIndex()])
            if self.chance(0.2):
                kw["shared"] = rng.choice([True, False])
            if self.chance(0.3):
                kw["offset"] = (
                    rng.choice([0, PAGE, 8, 2 * PAGE, 2**62])
                    if self.chance(0.7)
                    else self.any_hostile()
                )
            if self.chance(0.3):
                kw["length"] = (
                    rng.choice([None, 1, PAGE, 3 * PAGE, 2**40, 2**62])
                    if self.chance(0.7)
                    else self.any_hostile()
                )
            r = m.mmap(**kw)
            self.regions.append(r)
            return r

        def region_op() -> Any:
            import numpy as np

            if not self.regions:
                return None
            r = rng.choice(self.regions)
            op = rng.randrange(12)
            if op == 0:
                return r[rng.randrange(-2 * PAGE, 2 * PAGE) : rng.randrange(-2 * PAGE, 3 * PAGE)]
            if op == 1:  # what any process sharing the map may store: any bytes
                start = rng.randrange(0, max(len(r) - 7, 1))  # mmap's own IndexError aside
                r[start : start + 8] = rng.getrandbits(64).to_bytes(8, "little")[: len(r)]
                return None
            if op == 2:
                ctype = rng.choice(
                    [
                        ctypes.c_uint64,
                        ctypes.c_uint8 * 4096,
                        ctypes.c_char_p,
                        ctypes.py_object,
                        ctypes.c_uint32 * 2,
                        int,
                        PointerStruct,
                    ]
                )
                s = r.struct(ctype, key=self.key(self.pick_map()) if self.chance(0.3) else 0)
                self.exports.append(s)
                return repr(getattr(s, "value", None)) + repr(bytes(s))  # reads what it points to
            if op == 3:
                dtype = rng.choice(
                    [
                        None,
                        "<u8",
                        "u1",
                        "V1",
                        "V0",
                        object,
                        "<f8",
                        "S3",
                        "V100000",
                        [("a", "<u4"), ("o", "O")],
                    ]
                )
                a = r.ndarray(dtype)
                self.exports.append(a)
                return repr(a[:2])  # reads the items (object items: what they point to)
            if op == 4:
                return r.resize(rng.choice([0, PAGE, 2**40]))
            if op == 5:
                mv = memoryview(r)
                self.exports.append(mv)
                return r.close()  # BufferError: exported
            if op == 6:
                r.close()
                return None
            if op == 7:
                return r.find(b"\x00", rng.randrange(-5, 5))
            if op == 8:
                return r.flush()
            if op == 9:
                return np.frombuffer(r, dtype=np.uint8).sum()
            if op == 10:
                r.seek(rng.randrange(0, 2 * PAGE))
                return r.read(rng.randrange(-1, 64))
            return len(r), r.closed

        def close_map() -> None:
            m = self.pick_map()
            m.close()
            if self.chance(0.5):
                m.close()
            if self.chance(0.8):  # most closed maps leave; the others stay for use after close
                self.maps.remove(m)
                del self.shape[id(m)]

        def from_fd() -> Any:
            arg, made_here = self.fd()
            try:
                m = b.ArrayMap.from_fd(arg)
            except BaseException:
                if made_here:  # "on failure the caller keeps it": still open, ours to close
                    _must_be_open(arg, "from_fd closed a descriptor it failed to adopt")
                    os.close(arg)
                raise
            assert made_here, f"from_fd adopted {arg!r}"
            self._remember(m, self._value_size_of(m), self._max_of(m))
            return m

        def open_pinned() -> Any:
            m = b.ArrayMap.open_pinned(self.path(), readonly=self.chance(0.5))
            self._remember(m, self._value_size_of(m), self._max_of(m))
            return m

        def pin() -> Any:
            return self.pick_map().pin(self.path())

        def attrs(m: Any) -> Any:
            return (
                m.fd,
                m.key_size,
                m.value_size,
                m.max_entries,
                m.flags,
                m.name,
                m.id,
                m.access,
                m.backend,
                m.frozen,
                m.info(),
                repr(m),
                len(m),
            )

        def container(m: Any) -> Any:
            op = rng.randrange(6)
            if op == 0:
                return m[self.key(m)]
            if op == 1:
                m[self.key(m)] = bytes(self.length(self._value_size(m)))
                return None
            if op == 2:
                del m[self.key(m)]
                return None
            if op == 3:
                return list(itertools.islice(iter(m), 20))
            if op == 4:
                return list(itertools.islice(m.items(), 20))
            with m as inside:
                return inside.lookup(0)

        def copies(m: Any) -> Any:
            op = rng.randrange(3)
            if op == 0:  # multiprocessing's pickler: the one that may pass a map
                ForkingPickler.loads(ForkingPickler.dumps(m)).close()
                return None
            try:
                (pickle.dumps if op == 1 else copy.copy)(m)
            except TypeError:
                return None  # plain pickles and copies are refused (issue 14)
            raise HostileError("a plain pickle or copy of a map did not raise TypeError")

        return {
            "ArrayMap()": create,
            "lookup": on_map(lookup),
            "lookup_into": on_map(lookup_into),
            "update": on_map(update),
            "delete": on_map(lambda m: m.delete(self.key(m))),
            "lookup_and_delete": on_map(lambda m: m.lookup_and_delete(self.key(m), self.flags())),
            "get_next_key": on_map(get_next_key),
            "lookup_batch": on_map(lookup_batch),
            "lookup_batch_into": on_map(lookup_batch_into),
            "batches": on_map(batches),
            "update_batch": on_map(update_batch),
            "delete_batch": on_map(delete_batch),
            "freeze": on_map(lambda m: m.freeze() if self.chance(0.2) else m.frozen),
            "info/attributes": on_map(attrs),
            "mmap": on_map(do_mmap),
            "region": region_op,
            "close": close_map,
            "from_fd": from_fd,
            "open_pinned": open_pinned,
            "pin": pin,
            "container": on_map(container),
            "pickle/copy": on_map(copies),
        }

    @staticmethod
    def _value_size_of(m: Any) -> int:
        return int(m.value_size)

    @staticmethod
    def _max_of(m: Any) -> int:
        return int(m.max_entries)

    def finish(self) -> None:
        for e in self.exports:
            _release(e)
        self.exports.clear()
        for r in self.regions:
            with contextlib.suppress(*ALLOWED):
                r.close()
        for m in self.maps:
            m.close()
        self.maps.clear()
        self.regions.clear()
        gc.collect()
        for p in self.pins:
            if os.path.lexists(p):
                os.unlink(p)
        unpin_all(self.tmpdir)


def unpin_all(tmpdir: str) -> None:
    """Unlink every pin file under tmpdir: each pin there (whatever path it took) lets go."""
    from bpfmap._pin import MAGIC

    for dirpath, _, files in os.walk(tmpdir):
        for name in files:
            p = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(p).st_mode):
                with open(p, "rb") as f:
                    if f.read(len(MAGIC)) != MAGIC:
                        continue
                os.unlink(p)


def _release(obj: Any) -> None:
    if isinstance(obj, memoryview):
        obj.release()


def _must_be_open(fd: int, what: str) -> None:
    try:
        os.fstat(fd)
    except OSError as exc:
        raise AssertionError(f"{what} (fd {fd})") from exc


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def worker_main(seed: int, calls: int, backend: str, tmpdir: str) -> None:
    import faulthandler

    # finish() unlinks every socket under tmpdir (the pins, whatever paths they took):
    # given a shared directory such as /tmp, it would unpin other programs' maps.
    if os.stat(tmpdir).st_mode & 0o022:
        sys.exit(f"TMPDIR {tmpdir} is writable by others: give the worker a directory of its own")
    faulthandler.enable()
    import bpfmap

    # Warm up what starts descriptors of its own once (the resource sharer of pickling).
    warm = bpfmap.ArrayMap(8, 1, backend=backend)
    ForkingPickler.loads(ForkingPickler.dumps(warm)).close()
    warm.close()
    # The sharer's thread closes its side of a hand-over after the receiver has its
    # descriptor: stopped (thread joined) around both counts, it holds none of them.
    # Stopping also closes what a dumps() without loads() left registered there.
    resource_sharer.stop()
    os.chdir(tmpdir)  # relative pin paths ("0", "") land here, not in the caller's directory
    # A pin holder of the worker's own: finish() checks that it holds nothing at the end.
    os.environ["BPFMAP_PIN_HOLDER"] = f"hostile-{os.getpid()}"
    before = fd_count()
    w = Worker(seed, backend, tmpdir)
    start = time.monotonic()
    w.run(calls)
    elapsed = time.monotonic() - start
    w.finish()
    resource_sharer.stop()
    from bpfmap import _pin

    try:
        pins_held = _pin.sweep(f"bpfmap-pins/{os.getuid()}/hostile-{os.getpid()}/0")
    except ConnectionRefusedError:
        pins_held = 0  # no emulated pin was ever made
    _pin._forget_connections()
    after = fd_count()
    print(
        json.dumps(
            {
                "seed": seed,
                "backend": backend,
                "calls": sum(w.calls.values()),
                "per_call": dict(w.calls),
                "outcomes": dict(w.outcomes),
                "unexpected": w.unexpected[:40],
                "unexpected_count": len(w.unexpected),
                "fd_delta": after - before,
                "pins_held": pins_held,
                "seconds": elapsed,
            }
        )
    )


# ------------------------------------------------------------------ tests


def run_workers(
    backend: str, tmp_path: Any, calls: int, workers: int = WORKERS
) -> list[dict[str, Any]]:
    first = int(os.environ.get("BPFMAP_HOSTILE_SEED", str(random.randrange(2**32))))
    procs = []
    for i in range(workers):
        d = tmp_path / f"w{i}"
        d.mkdir(mode=0o700)
        seed = first + i
        cmd = [sys.executable, __file__, "--worker", str(seed), str(calls), backend, str(d)]
        procs.append((seed, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    results = []
    for seed, proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, (
            f"worker died (exit status {proc.returncode}, a negative one is a signal); replay with "
            f"BPFMAP_HOSTILE_SEED={seed}: {err.decode(errors='replace')[-3000:]}"
        )
        results.append(json.loads(out.decode().splitlines()[-1]))
    return results


@pytest.mark.parametrize("backend", ["emulated", "kernel"])
def test_every_call_survives_hostile_input(backend: str, tmp_path: Any) -> None:
    if backend == "kernel":
        from conftest import require_kernel

        require_kernel()
    results = run_workers(backend, tmp_path, CALLS)
    total = sum(r["calls"] for r in results)
    for r in results:
        assert r["unexpected_count"] == 0, (
            f"seed {r['seed']}: calls raised undocumented exceptions: {r['unexpected']}"
        )
        assert r["fd_delta"] == 0, f"seed {r['seed']}: {r['fd_delta']} descriptors leaked"
        assert r["pins_held"] == 0, f"seed {r['seed']}: {r['pins_held']} unlinked pins still held"
        assert set(r["per_call"]) >= {"lookup", "update", "update_batch", "mmap", "from_fd"}
    print(
        f"{backend}: {total} hostile calls in {len(results)} workers "
        f"(seeds {[r['seed'] for r in results]}), all survived"
    )


# -------------------------------------------------- targeted regressions


def run_snippet(code: str, *, limit_as: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter; a crash shows as a negative return code."""
    prelude = "import resource\n"
    if limit_as:
        prelude += f"resource.setrlimit(resource.RLIMIT_AS, ({limit_as}, {limit_as}))\n"
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_clean(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-3000:]}"
    return proc.stdout


def test_from_fd_refuses_a_memfd_that_can_shrink() -> None:
    """A memfd with a valid header but no F_SEAL_SHRINK: truncating it would SIGBUS lookups."""
    out = assert_clean(
        run_snippet("""
        import os, errno, fcntl, mmap, bpfmap
        m = bpfmap.ArrayMap(8, 4)
        data = os.pread(m.fd, 2 * mmap.PAGESIZE, 0)
        for seals in (0, fcntl.F_SEAL_GROW, fcntl.F_SEAL_SHRINK):
            fd = os.memfd_create("evil", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.write(fd, data)
            if seals:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            try:
                e = bpfmap.ArrayMap.from_fd(os.dup(fd))
            except OSError as exc:
                assert exc.errno == errno.EINVAL, exc
                print("refused")
                continue
            os.ftruncate(fd, 0)
            e.lookup(0)  # SIGBUS here before the fix
        fd = os.memfd_create("good", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, data)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)
        print(bpfmap.ArrayMap.from_fd(fd).lookup(0))
    """)
    )
    assert out.split() == ["refused", "refused", "refused", repr(bytes(8))]


def test_from_fd_survives_crafted_headers() -> None:
    """Random headers in a sealed memfd: refused (EINVAL) or adopted with sane geometry."""
    out = assert_clean(
        run_snippet("""
        import os, errno, fcntl, mmap, random, struct, bpfmap
        P = mmap.PAGESIZE
        rng = random.Random(7)
        good = bpfmap.ArrayMap(8, 4)
        header = bytearray(os.pread(good.fd, 64, P - 64))
        adopted = refused = 0
        for i in range(3000):
            h = bytearray(header)
            for _ in range(rng.randrange(1, 4)):
                field = rng.choice([0, 8, 12, 16, 20, 24, 28, 32, 40])  # header fields
                width = 8 if field in (0, 32) else 4
                value = rng.choice([0, 1, 2, 4, 7, 8, 2**31 - 1, 2**31, 2**32 - 1, P,
                                    rng.getrandbits(8 * width)]) % (1 << (8 * width))
                h[field:field + width] = value.to_bytes(width, "little")
            size = rng.choice([2 * P, 3 * P, P, 0, 2 * P + 1])
            fd = os.memfd_create("crafted", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.ftruncate(fd, size)
            if size >= P:
                os.pwrite(fd, bytes(h), P - 64)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)
            try:
                m = bpfmap.ArrayMap.from_fd(fd)
            except OSError as exc:
                assert exc.errno == errno.EINVAL, exc
                os.close(fd)
                refused += 1
                continue
            adopted += 1
            assert m.max_entries * ((m.value_size + 7) // 8 * 8) <= size - P
            m.lookup(m.max_entries - 1)
            m.update(m.max_entries - 1, bytes(m.value_size))
            m.lookup_batch()
            m.close()
        print(adopted, refused)
    """)
    )
    adopted, refused = map(int, out.split())
    assert adopted > 0 and refused > 0


@pytest.mark.parametrize("backend", ["emulated", "kernel"])
def test_lookup_batch_huge_count_allocates_for_the_map(backend: str) -> None:
    """lookup_batch(2**32 - 1) on 4 keys: all keys, done, in 256 MiB of address space."""
    if backend == "kernel":
        from conftest import require_kernel

        require_kernel()
    out = assert_clean(
        run_snippet(
            f"""
        import bpfmap
        m = bpfmap.ArrayMap(8, 4, backend={backend!r})
        b = m.lookup_batch(2**32 - 1)
        print(list(b.keys), b.done, b.out_batch)
        b = m.lookup_batch(5, in_batch=1)
        print(list(b.keys), b.done)
        b = m.lookup_batch(4)
        print(list(b.keys), b.done)
    """,
            limit_as=None,
        )
    )
    assert out.splitlines() == ["[0, 1, 2, 3] True 3", "[2, 3] True", "[0, 1, 2, 3] False"]
    if UNDER_ASAN:
        return
    # The same with the address space capped (the interpreter needs ~100 MiB, numpy aside).
    proc = run_snippet(
        f"""
        import bpfmap
        m = bpfmap.ArrayMap(8, 4, backend={backend!r})
        print(len(m.lookup_batch(2**32 - 1).keys))
    """,
        limit_as=1 << 30,
    )
    assert assert_clean(proc).strip() == "4"


def test_typed_views_refuse_pointers() -> None:
    """Object dtypes and ctypes pointers would read pointers from shared memory: refused."""
    out = assert_clean(
        run_snippet("""
        import ctypes, bpfmap
        m = bpfmap.ArrayMap(16, 4, flags=bpfmap.BPF_F_MMAPABLE)
        r = m.mmap()
        r[:] = b"\\x41" * len(r)  # what another process could write
        class P(ctypes.Structure):
            _fields_ = [("n", ctypes.c_uint64), ("p", ctypes.POINTER(ctypes.c_int))]
        class Ok(ctypes.Structure):
            _fields_ = [("n", ctypes.c_uint64), ("v", ctypes.c_void_p)]
        for t in (ctypes.py_object, ctypes.c_char_p, ctypes.c_wchar_p, P, ctypes.c_char_p * 2,
                  ctypes.CFUNCTYPE(None)):
            try:
                r.struct(t)
            except TypeError:
                print("refused")
        s = r.struct(Ok)
        print(hex(s.n))
        del s
        for dt in (object, [("a", "<u8"), ("o", "O")]):
            try:
                r.ndarray(dt)
            except TypeError:
                print("refused")
        print(r.ndarray("<u8")[0])
    """)
    )
    assert out.split() == ["refused"] * 6 + ["0x4141414141414141"] + ["refused"] * 2 + [
        str(0x4141414141414141)
    ]


def test_aliasing_buffers_are_safe(tmp_path: Any) -> None:
    """The map's own region as the value, the buffer and the batch of its own calls."""
    out = assert_clean(
        run_snippet("""
        import bpfmap
        m = bpfmap.ArrayMap(8, 1024, flags=bpfmap.BPF_F_MMAPABLE)
        r = m.mmap()
        r[0:8] = b"original"
        m.update(1, memoryview(r)[0:8])           # pwrite from a mapping of the same file
        m.lookup_into(0, memoryview(r)[16:24])    # value 0 copied into value 2, in place
        m.update_batch(list(range(1024)), r)      # every value from the values themselves
        m.lookup_into(0, r)                       # the whole region as the buffer
        print(m.lookup(1), m.lookup(2))
        ro = m.mmap(writable=False)
        r.close()
        m.freeze()
        try:
            m.update(3, memoryview(ro)[0:8])
        except PermissionError:
            print("frozen")
    """)
    )
    assert out.split() == ["b'original'", "b'original'", "frozen"]


def test_use_after_close_and_exported_buffers() -> None:
    """Closed maps, closed regions, regions exported while their map and region close."""
    out = assert_clean(
        run_snippet("""
        import gc, bpfmap
        m = bpfmap.ArrayMap(8, 4, flags=bpfmap.BPF_F_MMAPABLE)
        r = m.mmap()
        view = memoryview(r)
        arr = r.ndarray("<u8")
        m.close()
        gc.collect()
        arr[1] = 7                      # the mapping outlives the handle
        view[0:1] = b"x"
        for close in range(2):
            try:
                r.close()
            except BufferError:
                print("busy")
            del arr
            view.release()
            arr = None
        r.close()
        for call in (lambda: r[0], lambda: r.ndarray(), lambda: m.lookup(0), lambda: m.fd,
                     lambda: m.mmap(), lambda: m.freeze(), lambda: m.pin("/tmp/x")):
            try:
                call()
            except ValueError:
                print("closed")
    """)
    )
    assert out.split() == ["busy"] + ["closed"] * 7


def test_open_pinned_refuses_a_socket_served_by_another_user() -> None:
    """A socket bound at the path by another user never hands its map to us."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to other users")
    import shutil
    import tempfile

    shared = tempfile.mkdtemp(prefix="bpfmap_shared_")  # like /tmp: sticky, world-writable
    os.chmod(shared, 0o1777)
    path = os.path.join(shared, "planted")
    try:
        out = _planted_socket_run(path)
    finally:
        shutil.rmtree(shared)
    assert out.split() == ["refused"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o666])
def test_open_pinned_refuses_a_pin_file_planted_by_another_user(mode: int) -> None:
    """A regular file that reads as a pin, planted by another user and naming a server of
    theirs that hands out their map: refused, whatever the file's mode."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to other users")
    import shutil
    import tempfile

    shared = tempfile.mkdtemp(prefix="bpfmap_shared_")  # like /tmp: sticky, world-writable
    os.chmod(shared, 0o1777)
    path = os.path.join(shared, "planted")
    try:
        out = assert_clean(run_snippet(f"""
        import os, socket, bpfmap
        from bpfmap import _pin
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # uid 65533 plants a pin file and a server
            os.close(r)
            os.setgid(65533); os.setuid(65533)
            evil = bpfmap.ArrayMap(8, 4)
            evil.update(0, b"attacker")
            name = "bpfmap-pins/65534/default/0/planted"   # even the victim's kind of name
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.bind("\\0" + name); s.listen(4)
            with open({path!r}, "wb") as f:
                f.write(_pin.MAGIC + b"holder " + name.encode() + b"\\n")
            os.chmod({path!r}, {mode})
            os.write(w, b"x")
            while True:
                c, _ = s.accept()
                try:
                    c.recv(64); socket.send_fds(c, [b"ok"], [evil.fd])
                except OSError:
                    pass
                c.close()
        os.close(w)
        assert os.read(r, 1) == b"x", "the planting child died"
        victim = os.fork()
        if victim == 0:                                # uid 65534 opens the path
            os.setgid(65534); os.setuid(65534)
            for readonly in (False, True):
                try:
                    bpfmap.ArrayMap.open_pinned({path!r}, readonly=readonly)
                    print("adopted", flush=True)
                except PermissionError:
                    print("refused", flush=True)
            os._exit(0)
        os.waitpid(victim, 0)
        os.kill(pid, 9); os.waitpid(pid, 0)
        """))
    finally:
        shutil.rmtree(shared)
    assert out.split() == ["refused", "refused"]


def _planted_socket_run(path: str) -> str:
    return assert_clean(
        run_snippet(f"""
        import os, socket, bpfmap, bpfmap._pin
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # uid 65533 plants a server
            os.close(r)
            os.setgid(65533); os.setuid(65533)
            evil = bpfmap.ArrayMap(8, 4)
            evil.update(0, b"attacker")
            os.umask(0)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.bind({path!r}); s.listen(4)
            os.write(w, b"x")
            while True:
                c, _ = s.accept()
                try:
                    c.recv(16); socket.send_fds(c, [b"ok"], [evil.fd])
                except OSError:
                    pass
                c.close()
        os.close(w)
        assert os.read(r, 1) == b"x", "the planting child died"
        victim = os.fork()
        if victim == 0:                                # uid 65534 opens the path
            os.setgid(65534); os.setuid(65534)
            try:
                bpfmap.ArrayMap.open_pinned({path!r})
                print("adopted", flush=True)
            except PermissionError:
                print("refused", flush=True)
            os._exit(0)
        os.waitpid(victim, 0)
        os.kill(pid, 9); os.waitpid(pid, 0)
    """)
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A slip of the fuzzer itself must not take the machine's memory (ENOMEM is fine).
    if not UNDER_ASAN:
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    worker_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
