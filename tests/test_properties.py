"""Property-based (stateful) tests: the emulated map against a pure-Python model of the kernel.

A hypothesis ``RuleBasedStateMachine`` creates one map (random shape and flags,
read-only and write-only creation handles included), then runs random
sequences of every element, batch, freeze and mmap call, through several
handles (the creating one, ``from_fd`` duplicates, read-only re-opens), and
through the regions it maps (stores, reads, closes). Each call's outcome (the
bytes, the batch, the errno, the Python exception, a batch's ``.count``) must
equal what the model says the kernel does; after every step the whole value
area read back (``lookup_batch`` and every open region) must equal the model's.

:class:`ModelMap` is the kernel's rules written out from kernel/bpf/syscall.c
and kernel/bpf/arraymap.c: perms (``FMODE_CAN_READ``/``WRITE``, with frozen
clearing write), the order of the flag checks, ``E2BIG``/``ENOENT``/``EEXIST``,
batch counts, freeze (``EPERM`` without write access or when already frozen,
``EBUSY`` while a writable mapping exists) and the mmap refusals.

Where ``bpf()`` works, the same machine runs a kernel map in lockstep as well:
same operations on the model, the emulated map and the kernel map, same outcomes.

    BPFMAP_PROPERTY_EXAMPLES=<n>  examples per machine (default 300; each is up
                                  to BPFMAP_PROPERTY_STEPS steps, default 50)
    BPFMAP_PROPERTY_RANDOM=1      a new random run (default: derandomized, reproducible)
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any

import pytest
from conftest import KERNEL_UNAVAILABLE, require_kernel
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from bpfmap import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_INNER_MAP,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NUMA_NODE,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY,
    BPF_F_WRONLY_PROG,
    BPF_NOEXIST,
    ENOTSUPP,
    ArrayMap,
)

PAGE = mmap.PAGESIZE
U32 = 2**32 - 1
U64 = 2**64 - 1
EXAMPLES = int(os.environ.get("BPFMAP_PROPERTY_EXAMPLES", "300"))
STEPS = int(os.environ.get("BPFMAP_PROPERTY_STEPS", "50"))

SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("BPFMAP_PROPERTY_RANDOM", "") == "",
    database=None,
)

# ----------------------------------------------------------------- the model


def page_align(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


class ModelHandle:
    """One descriptor: its access mode ("rw", "r", "w") and whether it is closed."""

    def __init__(self, access: str) -> None:
        self.access = access
        self.closed = False


class ModelRegion:
    def __init__(self, offset: int, length: int, writable: bool) -> None:
        self.offset = offset
        self.length = length  # as asked: len() of the mmap object (the kernel maps whole pages)
        self.writable = writable
        self.closed = False


class ModelMap:
    """The kernel's rules for one BPF_MAP_TYPE_ARRAY, in pure Python."""

    def __init__(self, value_size: int, max_entries: int, flags: int) -> None:
        self.value_size = value_size
        self.max_entries = max_entries
        self.map_flags = flags & ~(BPF_F_RDONLY | BPF_F_WRONLY)
        self.elem = (value_size + 7) // 8 * 8
        self.window = page_align(max_entries * self.elem)
        self.data = bytearray(self.window)  # the whole value area, padding included
        self.frozen = False
        self.regions: list[ModelRegion] = []

    # -- helpers ------------------------------------------------------------

    def can_read(self, h: ModelHandle) -> bool:
        return h.access != "w"

    def can_write(self, h: ModelHandle) -> bool:
        """map_get_sys_perms(): frozen clears FMODE_CAN_WRITE."""
        return h.access != "r" and not self.frozen

    def value(self, key: int) -> bytes:
        start = key * self.elem
        return bytes(self.data[start : start + self.value_size])

    def store(self, key: int, value: bytes) -> None:
        start = key * self.elem
        self.data[start : start + self.value_size] = value

    def writable_mappings(self) -> int:
        return sum(1 for r in self.regions if r.writable and not r.closed)

    # -- commands: each returns an outcome, as conftest.outcome() does --------

    def lookup(self, h: ModelHandle, key: int, flags: int) -> Any:
        if h.closed:
            return ("raise", "ValueError")
        if flags & ~BPF_F_LOCK:
            return ("errno", errno.EINVAL)
        if not self.can_read(h):
            return ("errno", errno.EPERM)
        if flags & BPF_F_LOCK:
            return ("errno", errno.EINVAL)  # no bpf_spin_lock in the value
        if key >= self.max_entries:
            return ("errno", errno.ENOENT)
        return ("ok", self.value(key))

    def update(self, h: ModelHandle, key: int, value: bytes, flags: int) -> Any:
        if h.closed:
            return ("raise", "ValueError")
        if len(value) != self.value_size:
            return ("raise", "ValueError")
        if not self.can_write(h):
            return ("errno", errno.EPERM)
        if flags & BPF_F_LOCK or (flags & ~BPF_F_LOCK) > BPF_EXIST:
            return ("errno", errno.EINVAL)
        if key >= self.max_entries:
            return ("errno", errno.E2BIG)
        if flags & BPF_NOEXIST:
            return ("errno", errno.EEXIST)
        self.store(key, value)
        return ("ok", None)

    def delete(self, h: ModelHandle, key: int) -> Any:
        if h.closed:
            return ("raise", "ValueError")
        if not self.can_write(h):
            return ("errno", errno.EPERM)
        return ("errno", errno.EINVAL)

    def lookup_and_delete(self, h: ModelHandle, key: int, flags: int) -> Any:
        if h.closed:
            return ("raise", "ValueError")
        if flags & ~BPF_F_LOCK:
            return ("errno", errno.EINVAL)
        if not self.can_read(h) or not self.can_write(h):
            return ("errno", errno.EPERM)
        if flags & BPF_F_LOCK:
            return ("errno", errno.EINVAL)
        return ("errno", ENOTSUPP)

    def get_next_key(self, h: ModelHandle, key: int | None) -> Any:
        if h.closed:
            return ("raise", "ValueError")
        if not self.can_read(h):
            return ("errno", errno.EPERM)
        if key is None or key >= self.max_entries:
            return ("ok", 0)
        if key == self.max_entries - 1:
            return ("errno", errno.ENOENT)
        return ("ok", key + 1)

    def lookup_batch(
        self, h: ModelHandle, count: int | None, in_batch: int | None, elem_flags: int
    ) -> Any:
        """generic_map_lookup_batch() over array_map_get_next_key()."""
        if h.closed:
            return ("raise", "ValueError")
        if not self.can_read(h):
            return ("errno", errno.EPERM)
        if elem_flags:  # anything but 0 or BPF_F_LOCK, or BPF_F_LOCK without a lock
            return ("errno", errno.EINVAL)
        want = self.max_entries if count is None else count
        if want == 0:
            return ("ok", ((), b"", None, False))
        keys: list[int] = []
        prev = in_batch
        while len(keys) < want:
            nxt = self.get_next_key(h, prev)
            if nxt[0] != "ok":
                break
            keys.append(nxt[1])
            prev = nxt[1]
        done = len(keys) < want
        values = b"".join(self.value(k) for k in keys)
        return ("ok", (tuple(keys), values, keys[-1] if keys else None, done))

    def update_batch(
        self, h: ModelHandle, keys: list[int], values: list[bytes], elem_flags: int
    ) -> Any:
        """generic_map_update_batch(): no rollback; the count written comes back."""
        if h.closed:
            return ("raise", "ValueError")
        if not self.can_write(h):
            return ("errno", errno.EPERM, len(keys))  # bpf_map_do_batch(): count untouched
        if elem_flags:
            return ("errno", errno.EINVAL, len(keys))
        for i, (k, v) in enumerate(zip(keys, values)):
            if k >= self.max_entries:
                return ("errno", errno.E2BIG, i)
            self.store(k, v)
        return ("ok", len(keys))

    def delete_batch(self, h: ModelHandle, keys: list[int]) -> Any:
        if h.closed:
            return ("raise", "ValueError")
        if not self.can_write(h):
            return ("errno", errno.EPERM, len(keys))
        return ("errno", ENOTSUPP, len(keys))  # array_map_ops has no map_delete_batch

    def freeze(self, h: ModelHandle) -> Any:
        """map_freeze(): EPERM without write (frozen included), EBUSY while mapped writable."""
        if h.closed:
            return ("raise", "ValueError")
        if not self.can_write(h):
            return ("errno", errno.EPERM)
        if self.writable_mappings():
            return ("errno", errno.EBUSY)
        self.frozen = True
        return ("ok", None)

    def mmap(self, h: ModelHandle, writable: bool, offset: int, length: int | None) -> Any:
        """do_mmap() + bpf_map_mmap() + array_map_mmap(), shared mappings."""
        if h.closed:
            return ("raise", "ValueError")
        if length is None:
            length = self.window - offset if offset < self.window else PAGE
        if offset % PAGE or length == 0:
            return ("errno", errno.EINVAL)
        if writable and h.access == "r":
            return ("errno", errno.EACCES)  # MAP_SHARED|PROT_WRITE needs FMODE_WRITE
        if not self.can_read(h):
            return ("errno", errno.EACCES)  # any mapping needs FMODE_READ
        if h.access == "r":
            return ("errno", errno.EINVAL)  # no VM_MAYWRITE: bpf_map_mmap() refuses
        if writable and self.frozen:
            return ("errno", errno.EPERM)
        if writable and self.map_flags & BPF_F_RDONLY_PROG:
            return ("errno", errno.EACCES)
        if not self.map_flags & BPF_F_MMAPABLE:
            return ("errno", errno.EINVAL)
        if offset > self.window or page_align(length) > self.window - offset:
            return ("errno", errno.EINVAL)
        region = ModelRegion(offset, length, writable)
        self.regions.append(region)
        return ("ok", region)


# ------------------------------------------------------------ the machine


def outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except OSError as exc:
        count = getattr(exc, "count", None)
        return ("errno", exc.errno) if count is None else ("errno", exc.errno, count)
    except (TypeError, ValueError) as exc:
        return ("raise", type(exc).__name__)


def batch_tuple(b: Any) -> Any:
    return (tuple(b.keys), bytes(b.values), b.out_batch, b.done)


KEYS = st.one_of(
    st.integers(0, 3),
    st.integers(0, 41),
    st.sampled_from([511, 512, 513, 1023, 1024, 2**31 - 1, 2**31, U32 - 1, U32]),
)
ELEM_FLAGS = st.sampled_from([0, 0, 0, 0, BPF_F_LOCK, 1, 2, 1 << 32, U64])
UPDATE_FLAGS = st.sampled_from(
    [BPF_ANY, BPF_ANY, BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK, 3, 5, 1 << 40, U64]
)
LOOKUP_FLAGS = st.sampled_from([0, 0, 0, 0, BPF_F_LOCK, 1, 2, 1 << 33, U64])
MAP_FLAGS = st.sampled_from(
    [BPF_F_MMAPABLE] * 8
    + [
        0,
        BPF_F_MMAPABLE | BPF_F_RDONLY,
        BPF_F_MMAPABLE | BPF_F_WRONLY,
        BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
        BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
        BPF_F_MMAPABLE | BPF_F_WRONLY_PROG,
        BPF_F_MMAPABLE | BPF_F_INNER_MAP | BPF_F_NUMA_NODE,
        BPF_F_RDONLY,
    ]
)
# Padded values (value_size % 8 != 0) half the time: their padding is only visible through mmap.
VALUE_SIZES = st.sampled_from([1, 3, 4, 5, 7, 12, 13, 20, 36, 100, 8, 8, 8, 16, 24, 40, 64, 4096])
MAX_ENTRIES = st.one_of(st.integers(1, 40), st.sampled_from([512, 513, 1024]))


class MapMachine(RuleBasedStateMachine):
    """One map: the model and each backend's real map, the same calls on all of them."""

    backends: tuple[str, ...] = ("emulated",)

    def __init__(self) -> None:
        super().__init__()
        self.model: ModelMap | None = None
        self.handles: list[tuple[ModelHandle, dict[str, ArrayMap]]] = []
        self.regions: list[tuple[ModelRegion, dict[str, mmap.mmap]]] = []
        self.pin_seq = 0

    # -- plumbing -----------------------------------------------------------

    def same(self, expected: Any, fns: dict[str, Any], what: str) -> dict[str, Any]:
        """Run fns[backend]() for each backend; each outcome must be the model's."""
        got = {be: outcome(fn) for be, fn in fns.items()}
        plain = {be: _plain(o) for be, o in got.items()}
        want = _plain(expected)
        assert all(p == want for p in plain.values()), f"{what}: model {want}, got {plain}"
        return got

    def handle(self, i: int) -> tuple[ModelHandle, dict[str, ArrayMap]]:
        """Mostly an open handle; i == 7: any handle, closed ones included."""
        pool = self.handles if i == 7 else self.open_handles()
        return pool[i % len(pool)]

    def open_handles(self) -> list[tuple[ModelHandle, dict[str, ArrayMap]]]:
        return [h for h in self.handles if not h[0].closed]

    @initialize(
        value_size=VALUE_SIZES, max_entries=MAX_ENTRIES, flags=MAP_FLAGS, map_now=st.booleans()
    )
    def create(self, value_size: int, max_entries: int, flags: int, map_now: bool) -> None:
        """The map, and (half the time) a writable mapping of it from the start."""
        self.model = ModelMap(value_size, max_entries, flags)
        access = "r" if flags & BPF_F_RDONLY else "w" if flags & BPF_F_WRONLY else "rw"
        maps = {
            be: ArrayMap(value_size, max_entries, flags=flags, backend=be) for be in self.backends
        }
        self.handles.append((ModelHandle(access), maps))
        if map_now:
            self.map_region(0, True, 0, None, True)

    def teardown(self) -> None:
        for _, regions in self.regions:
            for r in regions.values():
                if not r.closed:
                    r.close()
        for _, maps in self.handles:
            for m in maps.values():
                m.close()

    # -- handles ------------------------------------------------------------

    @rule(i=st.integers(0, 7))
    @precondition(lambda self: len(self.open_handles()) < 4)
    def dup_handle(self, i: int) -> None:
        mh, maps = self.handle(i)
        if mh.closed:
            return
        dups = {be: ArrayMap.from_fd(os.dup(m.fd)) for be, m in maps.items()}
        self.handles.append((ModelHandle(mh.access), dups))

    @rule(i=st.integers(0, 7))
    @precondition(lambda self: sum(h[0].access == "r" for h in self.open_handles()) < 2)
    def readonly_handle(self, i: int) -> None:
        """A read-only descriptor of the same map (BPF_OBJ_GET with BPF_F_RDONLY)."""
        mh, maps = self.handle(i)
        if mh.closed:
            return
        ro: dict[str, ArrayMap] = {}
        for be, m in maps.items():
            if be == "emulated":
                fd = os.open(f"/proc/self/fd/{m.fd}", os.O_RDONLY | os.O_CLOEXEC)
                ro[be] = ArrayMap.from_fd(fd)
            else:
                self.pin_seq += 1
                path = f"/sys/fs/bpf/bpfmap_prop_{os.getpid()}_{self.pin_seq}"
                m.pin(path)
                try:
                    ro[be] = ArrayMap.open_pinned(path, readonly=True)
                finally:
                    os.unlink(path)
            assert ro[be].access == "r"
        self.handles.append((ModelHandle("r"), ro))

    @rule(i=st.integers(0, 6))
    @precondition(lambda self: len(self.open_handles()) > 1)
    def close_handle(self, i: int) -> None:
        """Close any handle but the last: the map lives on in the others and the regions."""
        mh, maps = self.handle(i)
        mh.closed = True
        for m in maps.values():
            m.close()
            assert m.closed

    # -- elements -----------------------------------------------------------

    @rule(i=st.integers(0, 7), key=KEYS, flags=LOOKUP_FLAGS, into=st.booleans())
    def lookup(self, i: int, key: int, flags: int, into: bool) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        expected = self.model.lookup(mh, key, flags)
        vs = self.model.value_size
        if into:

            def fn(m: ArrayMap) -> bytes:
                buf = bytearray(b"\xa5" * (vs + 3))
                m.lookup_into(key, buf, flags)
                assert buf[-3:] == b"\xa5\xa5\xa5"  # past value_size: untouched
                return bytes(buf[:-3])
        else:

            def fn(m: ArrayMap) -> bytes:
                return m.lookup(key, flags)

        self.same(expected, {be: lambda m=m: fn(m) for be, m in maps.items()}, "lookup")

    @rule(
        i=st.integers(0, 7),
        key=KEYS,
        flags=UPDATE_FLAGS,
        data=st.data(),
        kind=st.sampled_from(["bytes", "bytearray", "memoryview", "bad-length"]),
    )
    def update(self, i: int, key: int, flags: int, data: st.DataObject, kind: str) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        vs = self.model.value_size
        if kind == "bad-length":
            size = data.draw(st.sampled_from([0, vs - 1, vs + 1, vs + 8]).filter(lambda n: n >= 0))
        else:
            size = vs
        value = data.draw(st.binary(min_size=size, max_size=size))
        arg: Any = {
            "bytes": value,
            "bytearray": bytearray(value),
            "memoryview": memoryview(value),
            "bad-length": value,
        }[kind]
        expected = self.model.update(mh, key, value, flags)
        self.same(
            expected,
            {be: lambda m=m: m.update(key, arg, flags) for be, m in maps.items()},
            "update",
        )

    @rule(i=st.integers(0, 7), key=KEYS, flags=LOOKUP_FLAGS, which=st.booleans())
    def delete(self, i: int, key: int, flags: int, which: bool) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        if which:
            self.same(
                self.model.delete(mh, key),
                {be: lambda m=m: m.delete(key) for be, m in maps.items()},
                "delete",
            )
        else:
            self.same(
                self.model.lookup_and_delete(mh, key, flags),
                {be: lambda m=m: m.lookup_and_delete(key, flags) for be, m in maps.items()},
                "lookup_and_delete",
            )

    @rule(i=st.integers(0, 7), key=st.one_of(st.none(), KEYS))
    def get_next_key(self, i: int, key: int | None) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        self.same(
            self.model.get_next_key(mh, key),
            {be: lambda m=m: m.get_next_key(key) for be, m in maps.items()},
            "get_next_key",
        )

    # -- batches ------------------------------------------------------------

    @rule(
        i=st.integers(0, 7),
        count=st.one_of(st.none(), st.integers(0, 45), st.sampled_from([1024, 1025, U32])),
        in_batch=st.one_of(st.none(), KEYS),
        elem_flags=ELEM_FLAGS,
        flags=st.sampled_from([0, 0, 1, U64]),
    )
    def lookup_batch(
        self, i: int, count: int | None, in_batch: int | None, elem_flags: int, flags: int
    ) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        self.same(
            self.model.lookup_batch(mh, count, in_batch, elem_flags),
            {
                be: lambda m=m: batch_tuple(
                    m.lookup_batch(count, in_batch=in_batch, elem_flags=elem_flags, flags=flags)
                )
                for be, m in maps.items()
            },
            "lookup_batch",
        )

    @rule(
        i=st.integers(0, 7),
        keys=st.lists(KEYS, max_size=12),
        data=st.data(),
        elem_flags=ELEM_FLAGS,
        packed=st.booleans(),
        run=st.booleans(),
    )
    def update_batch(
        self, i: int, keys: list[int], data: st.DataObject, elem_flags: int, packed: bool, run: bool
    ) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        if run and keys:  # a run of consecutive keys: one pwrite() in the emulation
            keys = list(range(keys[0], min(keys[0] + len(keys) * 8, U32 + 1)))
        vs = self.model.value_size
        values = [data.draw(st.binary(min_size=vs, max_size=vs)) for _ in keys]
        arg: Any = b"".join(values) if packed else values
        expected = self.model.update_batch(mh, keys, values, elem_flags)
        self.same(
            expected,
            {
                be: lambda m=m: m.update_batch(keys, arg, elem_flags=elem_flags)
                for be, m in maps.items()
            },
            "update_batch",
        )

    @rule(i=st.integers(0, 7), keys=st.lists(KEYS, max_size=4))
    def delete_batch(self, i: int, keys: list[int]) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        self.same(
            self.model.delete_batch(mh, keys),
            {be: lambda m=m: m.delete_batch(keys) for be, m in maps.items()},
            "delete_batch",
        )

    # -- freeze and mmap ----------------------------------------------------

    @rule(i=st.integers(0, 7), now=st.sampled_from([True] + [False] * 7))
    def freeze(self, i: int, now: bool) -> None:
        """One draw in eight: a frozen map leaves writes and writable mappings untested."""
        assert self.model is not None
        mh, maps = self.handle(i)
        if not now:
            return
        self.same(self.model.freeze(mh), {be: m.freeze for be, m in maps.items()}, "freeze")

    @rule(
        i=st.integers(0, 7),
        writable=st.booleans(),
        offset=st.sampled_from([0] * 6 + [PAGE, 2 * PAGE, 8, PAGE - 8]),
        length=st.sampled_from([None] * 6 + [PAGE, 2 * PAGE, 3 * PAGE, 1, 0, PAGE + 1]),
        shared=st.sampled_from([True] * 7 + [False]),
    )
    @precondition(lambda self: len(self.regions) < 12)
    def mmap(self, i: int, writable: bool, offset: int, length: int | None, shared: bool) -> None:
        self.map_region(i, writable, offset, length, shared)

    def map_region(
        self, i: int, writable: bool, offset: int, length: int | None, shared: bool
    ) -> None:
        assert self.model is not None
        mh, maps = self.handle(i)
        if not shared:
            # MAP_PRIVATE: EINVAL from bpf_map_mmap() unless an earlier check refuses.
            got = {
                be: outcome(
                    lambda m=m: m.mmap(
                        writable=writable, shared=False, offset=offset, length=length
                    )
                )
                for be, m in maps.items()
            }
            for o in got.values():
                assert o[0] != "ok", "a private mapping of a map"
            assert len({o[:2] for o in got.values()}) == 1, got
            return
        expected = self.model.mmap(mh, writable, offset, length)
        got = self.same(
            expected,
            {
                be: lambda m=m: m.mmap(writable=writable, offset=offset, length=length)
                for be, m in maps.items()
            },
            "mmap",
        )
        if expected[0] == "ok":
            regions = {be: o[1] for be, o in got.items()}
            for r in regions.values():
                assert len(r) == expected[1].length
            self.regions.append((expected[1], regions))

    @rule(
        j=st.integers(0, 11),
        pos=st.integers(0, 3 * PAGE),
        data=st.binary(max_size=24),
        key=st.one_of(st.none(), st.integers(0, 3), st.integers(0, 40)),
    )
    @precondition(lambda self: any(not r[0].closed and r[0].writable for r in self.regions))
    def region_store(self, j: int, pos: int, data: bytes, key: int | None) -> None:
        """A store anywhere in the region, or over all of value ``key``, its padding included."""
        assert self.model is not None
        data = bytes(b ^ 0xA5 for b in data)  # hypothesis favours zeros: stores must show
        live = [r for r in self.regions if not r[0].closed and r[0].writable]
        mr, regions = live[j % len(live)]
        if key is not None:
            elem = self.model.elem
            pos = key % self.model.max_entries * elem - mr.offset
            data = (data + b"\x5a" * elem)[:elem]
        pos %= mr.length
        data = data[: mr.length - pos]
        for r in regions.values():
            r[pos : pos + len(data)] = data
        start = mr.offset + pos
        self.model.data[start : start + len(data)] = data

    @rule(j=st.integers(0, 11), export=st.booleans(), now=st.sampled_from([True] + [False] * 3))
    @precondition(lambda self: any(not r[0].closed for r in self.regions))
    def region_close(self, j: int, export: bool, now: bool) -> None:
        """One draw in four: stores and freezes need regions that stay a while."""
        if not now:
            return
        live = [r for r in self.regions if not r[0].closed]
        mr, regions = live[j % len(live)]
        for r in regions.values():
            if export:
                view = memoryview(r)
                with pytest.raises(BufferError):
                    r.close()  # an exported buffer keeps the mapping (and its count)
                view.release()
            r.close()
            assert r.closed
        mr.closed = True

    # -- invariants ---------------------------------------------------------

    @invariant()
    def contents_match(self) -> None:
        """Every value (through a readable handle) and every byte of every open region."""
        if self.model is None:
            return
        model = self.model
        readable = [h for h in self.open_handles() if h[0].access != "w"]
        if readable:
            _, maps = readable[0]
            want = b"".join(model.value(k) for k in range(model.max_entries))
            for be, m in maps.items():
                assert bytes(m.lookup_batch().values) == want, f"{be}: contents differ"
        for mr, regions in self.regions:
            if mr.closed:
                continue
            want = bytes(model.data[mr.offset : mr.offset + mr.length])
            for be, r in regions.items():
                assert r[:] == want, f"{be}: region bytes differ"

    @invariant()
    def state_matches(self) -> None:
        if self.model is None:
            return
        for mh, maps in self.open_handles():
            for be, m in maps.items():
                assert m.frozen == self.model.frozen, be
                info = m.info()
                assert (info.value_size, info.max_entries, info.map_flags) == (
                    self.model.value_size,
                    self.model.max_entries,
                    self.model.map_flags,
                ), be
                assert m.access == mh.access, be


def _plain(o: Any) -> Any:
    """An outcome with the model's region objects reduced to 'a region'."""
    if o[0] == "ok" and isinstance(o[1], (ModelRegion, mmap.mmap)):
        return ("ok", "region")
    return o


class EmulatedMachine(MapMachine):
    backends = ("emulated",)


class KernelMachine(MapMachine):
    backends = ("emulated", "kernel")


TestEmulatedAgainstModel = EmulatedMachine.TestCase
TestEmulatedAgainstModel.settings = SETTINGS


@pytest.mark.skipif(
    KERNEL_UNAVAILABLE is not None and os.environ.get("CI", "").lower() != "true",
    reason=f"kernel backend unavailable: {KERNEL_UNAVAILABLE}",
)
class TestKernelEmulatedModelLockstep(KernelMachine.TestCase):  # type: ignore[misc,valid-type]
    settings = SETTINGS

    def setUp(self) -> None:
        require_kernel()
        if not os.path.ismount("/sys/fs/bpf"):
            pytest.skip("bpffs is not mounted at /sys/fs/bpf (read-only kernel handles pin there)")
