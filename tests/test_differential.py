"""Differential tests: every case of kernel-array-semantics.md the Python API can express.

Each case runs the same operations on ``backend="emulated"`` and on
``backend="kernel"`` and asserts equal outcomes (bytes and errno). It then
asserts the kernel's outcome against the value the document states, so a case
cannot pass because both backends are wrong in the same way. The test ids
start with the document's case ids (C01, L04, U09, B13, F02, M70, ...); ids
with a suffix (``C21d``, ``M72b``) are derived cases that pin down the order of
checks around a documented one. Where the running kernel disagrees with the
document, the kernel wins and the expectation says so in a comment.

Not expressible through the API (and so not here): NULL key/value/batch
pointers (L07-L09, U14, U15, D03, N07, N08, B10, B11), bad fds (L10-L12, U16,
F18, F19, I14, I15), raw attr bytes (C36-C43 except the token flag), other map
types (C33-C35), numa_node values (C15, C16), capabilities (X01-X13),
LOOKUP_AND_DELETE_BATCH (B19), GET_FD_BY_ID / pinning (R12, G*, P*), fdinfo
(F12b), mprotect/mremap/fork (M06-M12, M17, M18, M31-M38, K*).
"""

from __future__ import annotations

import array
import errno
import os
from collections.abc import Callable
from typing import Any

import pytest

from bpfmap import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_CLONE,
    BPF_F_INNER_MAP,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NO_PREALLOC,
    BPF_F_NUMA_NODE,
    BPF_F_PRESERVE_ELEMS,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_TOKEN_FD,
    BPF_F_WRONLY,
    BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED,
    BPF_NOEXIST,
    ENOTSUPP,
    ArrayMap,
    Batch,
    MapInfo,
    MapRegion,
)
from bpfmap._map import PAGE_SIZE as P

EINVAL, EPERM, ENOENT, E2BIG = errno.EINVAL, errno.EPERM, errno.ENOENT, errno.E2BIG
EEXIST, EACCES, ENOMEM, EBUSY = errno.EEXIST, errno.EACCES, errno.ENOMEM, errno.EBUSY
MM = BPF_F_MMAPABLE
INT_MAX = 2**31 - 1
U32 = 2**32 - 1

# ----------------------------------------------------------------- plumbing


class Sparse(tuple):  # type: ignore[type-arg]
    """Already normalised: ``norm`` leaves it alone."""


def sparse(data: bytes) -> tuple[Any, ...]:
    """Long byte strings as (len, [(offset, non-zero run), ...]): exact, and short in a diff."""
    runs, i, n = [], 0, len(data)
    while i < n:
        if data[i]:
            j = i
            while j < n and data[j]:
                j += 1
            runs.append((i, data[i:j]))
            i = j
        else:
            i += 1
    return Sparse(("bytes", n, runs))


def norm(x: Any) -> Any:
    """A comparable, backend-independent form of an operation's result."""
    if isinstance(x, Sparse):
        return x
    if isinstance(x, MapRegion):
        try:
            return ("region", len(x), sparse(bytes(x)))
        finally:
            x.close()
    if isinstance(x, Batch):
        return ("batch", list(x.keys), bytes(x.values), x.out_batch, x.done)
    if isinstance(x, MapInfo):
        return ("info", *x._replace(id=0))
    if isinstance(x, (bytes, bytearray, memoryview)):
        b = bytes(x)
        return b if len(b) <= 64 else sparse(b)
    if isinstance(x, list):
        return [norm(i) for i in x]
    if isinstance(x, tuple):
        return tuple(norm(i) for i in x)
    return x


def o(fn: Callable[[], Any]) -> tuple[Any, ...]:
    """("ok", result) / ("errno", n[, count]) / ("raise", type): what one call did."""
    try:
        r = fn()
    except OSError as exc:
        if hasattr(exc, "count"):
            return ("errno", exc.errno, exc.count)
        return ("errno", exc.errno)
    except (TypeError, ValueError) as exc:
        return ("raise", type(exc).__name__)
    return ("ok", norm(r))


def ok(v: Any = None) -> tuple[Any, ...]:
    return ("ok", v)


def err(e: int, count: int | None = None) -> tuple[Any, ...]:
    return ("errno", e) if count is None else ("errno", e, count)


def cerr(e: int) -> tuple[Any, ...]:
    """The map create itself failed with ``e``."""
    return ("create-errno", e)


def seq(*steps: Callable[[ArrayMap], Any]) -> Callable[[ArrayMap], Any]:
    """Several steps on one map; the outcome of each is compared."""

    def op(m: ArrayMap) -> list[Any]:
        return [o(lambda s=s: s(m)) for s in steps]

    return op


def run(backend: str, create: dict[str, Any], op: Callable[[ArrayMap], Any] | None) -> Any:
    kw = {"value_size": 12, "max_entries": 4, **create}
    try:
        m = ArrayMap(backend=backend, **kw)
    except OSError as exc:
        return cerr(exc.errno)
    try:
        return ("created", props(m)) if op is None else o(lambda: op(m))
    finally:
        m.close()


def props(m: ArrayMap) -> tuple[Any, ...]:
    return (
        norm(m.info()),
        m.key_size,
        m.value_size,
        m.max_entries,
        m.flags,
        m.name,
        m.access,
        m.frozen,
        len(m),
    )


def created(
    value_size: int = 12,
    max_entries: int = 4,
    flags: int = 0,
    name: str = "",
    access: str = "rw",
) -> tuple[Any, ...]:
    info = ("info", 2, 0, 4, value_size, max_entries, flags, name)
    return ("created", (info, 4, value_size, max_entries, flags, name, access, False, max_entries))


def check(create: dict[str, Any], op: Callable[[ArrayMap], Any] | None, expected: Any) -> None:
    """Run on both backends (the tests take the ``kernel`` fixture, which skips without bpf())."""
    emu = run("emulated", create, op)
    ker = run("kernel", create, op)
    assert emu == ker, "emulated (left) differs from the kernel (right)"
    if expected is not None:
        assert ker == expected, "the kernel (left) differs from the documented result (right)"


# ------------------------------------------------------------ op building blocks


def val(k: int, vs: int = 12) -> bytes:
    return bytes((k * 7 + i + 1) & 0xFF for i in range(vs))


def fill(m: ArrayMap) -> None:
    for k in range(m.max_entries):
        m.update(k, val(k, m.value_size))


def filled(*steps: Callable[[ArrayMap], Any]) -> Callable[[ArrayMap], Any]:
    """``seq`` on a map whose every value was set to ``val(k)`` first."""
    inner = seq(*steps)

    def op(m: ArrayMap) -> Any:
        fill(m)
        return inner(m)

    return op


def contents(m: ArrayMap) -> list[bytes]:
    return [m.lookup(k) for k in range(m.max_entries)]


def L(key: int, flags: int = 0) -> Callable[[ArrayMap], Any]:
    return lambda m: m.lookup(key, flags)


def U(key: int, flags: int = BPF_ANY, v: bytes | None = None) -> Callable[[ArrayMap], Any]:
    return lambda m: m.update(key, v if v is not None else b"\xab" * m.value_size, flags)


def D(key: int) -> Callable[[ArrayMap], Any]:
    return lambda m: m.delete(key)


def LAD(key: int, flags: int = 0) -> Callable[[ArrayMap], Any]:
    return lambda m: m.lookup_and_delete(key, flags)


def N(key: int | None) -> Callable[[ArrayMap], Any]:
    return lambda m: m.get_next_key(key)


def LB(count: int | None = None, **kw: Any) -> Callable[[ArrayMap], Any]:
    return lambda m: m.lookup_batch(count, **kw)


def UB(keys: list[int], **kw: Any) -> Callable[[ArrayMap], Any]:
    return lambda m: m.update_batch(keys, [b"\xcd" * m.value_size] * len(keys), **kw)


def UBv(keys: list[int], **kw: Any) -> Callable[[ArrayMap], Any]:
    """update_batch with values 0x40+i, so a content check shows which elements landed."""
    return lambda m: m.update_batch(
        keys, [bytes([0x40 + i]) * m.value_size for i in range(len(keys))], **kw
    )


def DB(keys: list[int], **kw: Any) -> Callable[[ArrayMap], Any]:
    return lambda m: m.delete_batch(keys, **kw)


def FRZ(m: ArrayMap) -> Any:
    return m.freeze()


def FROZEN(m: ArrayMap) -> Any:
    return m.frozen


def INFO(m: ArrayMap) -> Any:
    return m.info()


def CONTENTS(m: ArrayMap) -> Any:
    return contents(m)


def MM_(**kw: Any) -> Callable[[ArrayMap], Any]:
    """mmap, read the whole region, close it."""
    return lambda m: m.mmap(**kw)


def frozen_then(*steps: Callable[[ArrayMap], Any]) -> Callable[[ArrayMap], Any]:
    """Fill, freeze, then the steps."""
    inner = seq(*steps)

    def op(m: ArrayMap) -> Any:
        fill(m)
        m.freeze()
        return inner(m)

    return op


Z12 = bytes(12)


def vals(*ks: int, vs: int = 12) -> bytes:
    return b"".join(val(k, vs) for k in ks)


# ------------------------------------------------------------------- create

_NAME15 = "abcdefghijklmno"
_NAME16 = "abcdefghijklmnop"


def _token_flag_errno() -> int:
    """BPF_F_TOKEN_FD with map_token_fd 0: bpf_token_get_from_fd(0) fails with
    EBADF if fd 0 is closed, else EINVAL (fd 0 is no BPF token here)."""
    try:
        os.fstat(0)
    except OSError:
        return errno.EBADF
    return EINVAL


def _flag_bit_expect(bit: int) -> Any:
    flag = 1 << bit
    if flag in (BPF_F_NUMA_NODE, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG, MM, BPF_F_INNER_MAP):
        return created(flags=flag)
    if flag == BPF_F_RDONLY:
        return created(flags=0, access="r")
    if flag == BPF_F_WRONLY:
        return created(flags=0, access="w")
    if flag == BPF_F_TOKEN_FD:
        return cerr(_token_flag_errno())
    return cerr(EINVAL)


RAM = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _huge(create: dict[str, Any], case_id: str) -> Any:
    """A map bigger than RAM: ENOMEM on both backends, skipped unless it exceeds RAM by 25%."""
    size = ((create["value_size"] + 7) & ~7) * create["max_entries"]
    skip = pytest.mark.skipif(
        size < RAM * 5 // 4, reason=f"{size} bytes does not exceed this machine's RAM ({RAM})"
    )
    return pytest.param(create, cerr(ENOMEM), id=case_id, marks=skip)


CREATE_CASES = [
    pytest.param({"key_size": 0}, cerr(EINVAL), id="C01-key_size-0"),
    pytest.param({"key_size": 8}, cerr(EINVAL), id="C02-key_size-8"),
    pytest.param({"key_size": 2}, cerr(EINVAL), id="C03-key_size-2"),
    pytest.param({"key_size": U32}, cerr(EINVAL), id="C03b-key_size-u32max"),
    pytest.param({"value_size": 0}, cerr(EINVAL), id="C04-value_size-0"),
    pytest.param({"max_entries": 0}, cerr(EINVAL), id="C05-max_entries-0"),
    pytest.param({"flags": BPF_F_NO_PREALLOC}, cerr(EINVAL), id="C06-NO_PREALLOC"),
    pytest.param({"flags": BPF_F_ZERO_SEED}, cerr(EINVAL), id="C07-ZERO_SEED"),
    pytest.param({"flags": BPF_F_PRESERVE_ELEMS}, cerr(EINVAL), id="C08-PRESERVE_ELEMS"),
    pytest.param({"flags": 1 << 31}, cerr(EINVAL), id="C09-flag-bit31"),
    pytest.param({"flags": BPF_F_CLONE | MM}, cerr(EINVAL), id="C09b-CLONE-with-MMAPABLE"),
    pytest.param({"flags": BPF_F_RDONLY | BPF_F_WRONLY}, cerr(EINVAL), id="C10-RDONLY-WRONLY"),
    pytest.param(
        {"flags": BPF_F_RDONLY | BPF_F_WRONLY, "value_size": 0x80000000},
        cerr(EINVAL),
        id="C10b-RDONLY-WRONLY-before-E2BIG",
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG},
        cerr(EINVAL),
        id="C11-RDONLY_PROG-WRONLY_PROG",
    ),
    pytest.param({"flags": MM}, created(flags=MM), id="C12-MMAPABLE"),
    pytest.param({"flags": BPF_F_INNER_MAP}, created(flags=BPF_F_INNER_MAP), id="C13-INNER_MAP"),
    pytest.param(
        {"flags": BPF_F_NUMA_NODE}, created(flags=BPF_F_NUMA_NODE), id="C14-NUMA_NODE-node0"
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY_PROG}, created(flags=BPF_F_RDONLY_PROG), id="C17-RDONLY_PROG"
    ),
    pytest.param(
        {"flags": BPF_F_WRONLY_PROG}, created(flags=BPF_F_WRONLY_PROG), id="C18-WRONLY_PROG"
    ),
    pytest.param({"value_size": 0x80000000}, cerr(E2BIG), id="C19-value_size-2^31"),
    pytest.param({"value_size": U32}, cerr(E2BIG), id="C20-value_size-u32max"),
    pytest.param(
        {"value_size": 0x80000000, "key_size": 8}, cerr(EINVAL), id="C21-E2BIG-vs-key_size"
    ),
    pytest.param(
        {"value_size": 0x80000000, "max_entries": 0}, cerr(EINVAL), id="C21b-E2BIG-vs-max_entries"
    ),
    pytest.param(
        {"value_size": 0x80000000, "flags": BPF_F_PRESERVE_ELEMS},
        cerr(EINVAL),
        id="C21c-E2BIG-vs-PRESERVE_ELEMS",
    ),
    pytest.param(
        {"value_size": 0x80000000, "name": "bad-name"}, cerr(E2BIG), id="C21d-E2BIG-before-name"
    ),
    pytest.param(
        {"value_size": 0x80000000, "flags": BPF_F_TOKEN_FD},
        cerr(E2BIG),
        id="C21e-E2BIG-before-token-fd",
    ),
    pytest.param(
        {"value_size": 0, "flags": BPF_F_TOKEN_FD}, cerr(EINVAL), id="C21f-value0-before-token-fd"
    ),
    pytest.param({"flags": BPF_F_TOKEN_FD | MM}, cerr(_token_flag_errno()), id="C43-TOKEN_FD-fd0"),
    # ENOMEM: __vmalloc_node_range() refuses more pages than the machine has
    # (the emulation compares with sysinfo's totalram). The documented shapes
    # are ~32 GiB: on a machine with more RAM the kernel would really try to
    # allocate them, so they run only where they exceed RAM by a margin.
    _huge({"value_size": INT_MAX, "max_entries": 16}, "C22-INT_MAX-x16"),
    _huge({"value_size": INT_MAX, "max_entries": 16, "flags": MM}, "C22b-INT_MAX-x16-MMAPABLE"),
    _huge(
        {"value_size": INT_MAX, "max_entries": 16, "name": "bad-name"}, "C22c-ENOMEM-before-name"
    ),
    _huge({"value_size": 8, "max_entries": U32}, "C23-8xU32"),
    _huge({"value_size": 8, "max_entries": U32, "flags": MM}, "C24-8xU32-MMAPABLE"),
    _huge({"value_size": INT_MAX, "max_entries": U32}, "C22d-INT_MAX-xU32"),
    _huge({"value_size": 4096, "max_entries": U32, "flags": MM}, "C24b-4096xU32-MMAPABLE"),
    _huge(
        {"value_size": INT_MAX, "max_entries": U32, "flags": MM | BPF_F_RDONLY, "name": "a b"},
        "C22e-ENOMEM-RDONLY-bad-name",
    ),
    pytest.param({"name": "ok_name.1"}, created(name="ok_name.1"), id="C26-name-ok"),
    pytest.param({"name": _NAME15}, created(name=_NAME15), id="C27-name-15"),
    pytest.param({"name": _NAME16}, cerr(EINVAL), id="C28-name-16"),
    pytest.param({"name": _NAME16 + "q"}, cerr(EINVAL), id="C28b-name-17"),
    pytest.param({"name": _NAME15 + "\0!"}, created(name=_NAME15), id="C28c-name-15-NUL-junk"),
    pytest.param({"name": "bad-name"}, cerr(EINVAL), id="C29-name-dash"),
    pytest.param({"name": "a b"}, cerr(EINVAL), id="C30-name-space"),
    pytest.param({"name": "ab\0-!"}, created(name="ab"), id="C31-name-NUL-then-junk"),
    pytest.param({"name": b"\0-!"}, created(name=""), id="C31b-name-leading-NUL"),
    pytest.param({"name": "bad-name", "max_entries": 0}, cerr(EINVAL), id="C32-bad-name-max0"),
    pytest.param({"name": ""}, created(), id="C26b-name-empty"),
    pytest.param({"name": "é"}, cerr(EINVAL), id="C29b-name-utf8-e-acute"),
    pytest.param({"name": b"\xc0\xdf\xff"}, None, id="C26c-name-latin1-letters"),
    pytest.param({"name": b"\xd7"}, cerr(EINVAL), id="C29c-name-latin1-times"),
    pytest.param({"value_size": 1, "max_entries": 1}, created(1, 1), id="C12b-smallest"),
]


@pytest.mark.parametrize("create,expected", CREATE_CASES)
def test_create(create: dict[str, Any], expected: Any, kernel: None) -> None:
    check(create, None, expected)


@pytest.mark.parametrize("bit", range(32), ids=lambda b: f"C06-C09-flag-bit{b}")
def test_create_single_flag_bit(bit: int, kernel: None) -> None:
    check({"flags": 1 << bit}, None, _flag_bit_expect(bit))


@pytest.mark.parametrize("byte", range(1, 256), ids=lambda b: f"C26-C30-name-byte-{b:02x}")
def test_create_name_byte(byte: int, kernel: None) -> None:
    # bpf_obj_name_cpy(): the kernel's isalnum() (lib/ctype.c: Latin-1 letters count), '_', '.'
    ch = chr(byte)
    good = (ch.isascii() and ch.isalnum()) or ch in "_." or (byte >= 192 and byte not in (215, 247))
    name = bytes([byte, ord("x")])
    expected = None if byte >= 128 else (created(name=ch + "x") if good else cerr(EINVAL))
    check({"name": name}, None, expected)
    # Outside ASCII, compare the raw verdict: the decoded name is lossy.
    if byte >= 128:
        results = {be: run(be, {"name": name}, None)[0] for be in ("emulated", "kernel")}
        assert results["kernel"] == ("created" if good else "create-errno")


def test_create_value_4MiB_plus_8(kernel: None) -> None:
    """C25, C25b: value_size 4 MiB + 8, one entry: create, lookup, update, lookup."""
    vs = 4 * 1024 * 1024 + 8
    big = bytes(range(256)) * (vs // 256) + b"\x01" * (vs % 256)
    check(
        {"value_size": vs, "max_entries": 1},
        seq(L(0), lambda m: m.update(0, big), L(0)),
        ok([ok(sparse(bytes(vs))), ok(None), ok(sparse(big))]),
    )


# ------------------------------------------------------------------- info

INFO_CASES = [
    pytest.param(
        {"value_size": 12, "max_entries": 5, "flags": MM, "name": "probe_info"},
        INFO,
        ok(("info", 2, 0, 4, 12, 5, MM, "probe_info")),
        id="I01-I09-info-fields",
    ),
    pytest.param(
        {"flags": MM | BPF_F_RDONLY_PROG | BPF_F_INNER_MAP | BPF_F_NUMA_NODE},
        INFO,
        ok(("info", 2, 0, 4, 12, 4, 0x1484, "")),
        id="I16-flags-kept",
    ),
    pytest.param(
        {"flags": MM | BPF_F_RDONLY},
        lambda m: (m.info(), m.flags, m.access),
        ok((("info", 2, 0, 4, 12, 4, MM, ""), MM, "r")),
        id="R00-R11-RDONLY-stripped",
    ),
    pytest.param(
        {"flags": BPF_F_WRONLY},
        lambda m: (m.info(), m.flags, m.access),
        ok((("info", 2, 0, 4, 12, 4, 0, ""), 0, "w")),
        id="I17-I18-W00-info-write-only",
    ),
    pytest.param(
        {"value_size": 13, "max_entries": 7},
        INFO,
        ok(("info", 2, 0, 4, 13, 7, 0, "")),
        id="I03-value_size-not-rounded",
    ),
    pytest.param(
        {"flags": MM},
        seq(FROZEN, INFO, FRZ, FROZEN, INFO),
        ok(
            [
                ok(False),
                ok(("info", 2, 0, 4, 12, 4, MM, "")),
                ok(None),
                ok(True),
                ok(("info", 2, 0, 4, 12, 4, MM, "")),
            ]
        ),
        id="F12-F15-frozen-flag-and-info",
    ),
]

# ------------------------------------------------------------------- lookup

LOOKUP_CASES = [
    pytest.param({}, L(0), ok(Z12), id="L01-fresh-key0-zero"),
    pytest.param({}, filled(L(0), L(3)), ok([ok(val(0)), ok(val(3))]), id="L01c-after-update"),
    pytest.param({}, L(4), err(ENOENT), id="L02-key-eq-max"),
    pytest.param({}, L(U32), err(ENOENT), id="L03-key-u32max"),
    pytest.param({}, L(0, BPF_F_LOCK), err(EINVAL), id="L04-flag-LOCK"),
    pytest.param({}, L(0, 1), err(EINVAL), id="L05-flags-1"),
    pytest.param({}, L(0, 8), err(EINVAL), id="L06-flags-8"),
    pytest.param({}, L(0, 2**63), err(EINVAL), id="L06b-flags-bit63"),
    pytest.param({}, L(0, BPF_F_LOCK | 1), err(EINVAL), id="L06c-flags-LOCK-1"),
    pytest.param({}, L(4, 1), err(EINVAL), id="L06d-bad-flags-before-key"),
    pytest.param({}, L(4, BPF_F_LOCK), err(EINVAL), id="L04b-LOCK-before-key"),
    pytest.param({"flags": MM}, frozen_then(L(1)), ok([ok(val(1))]), id="F05-frozen-lookup"),
    pytest.param(
        {"flags": BPF_F_RDONLY},
        seq(L(0), L(4), L(0, 1)),
        ok([ok(Z12), err(ENOENT), err(EINVAL)]),
        id="R03-P10-read-only-lookup",
    ),
    pytest.param({"flags": BPF_F_WRONLY}, L(0), err(EPERM), id="W01-P15-write-only-lookup"),
    pytest.param({"flags": BPF_F_WRONLY}, L(0, 1), err(EINVAL), id="W02-write-only-flags-first"),
    pytest.param({"flags": BPF_F_WRONLY}, L(0, BPF_F_LOCK), err(EPERM), id="W02b-write-only-LOCK"),
    pytest.param({"flags": BPF_F_WRONLY}, L(9), err(EPERM), id="W02c-write-only-key-oor"),
    pytest.param(
        {"flags": BPF_F_RDONLY_PROG}, filled(L(2)), ok([ok(val(2))]), id="F20b-RDONLY_PROG-lookup"
    ),
]


def _lookup_into(m: ArrayMap) -> Any:
    m.update(1, val(1))
    buf = bytearray(b"\xee" * 20)
    m.lookup_into(1, buf)
    return buf


# ------------------------------------------------------------------- update

UPDATE_CASES = [
    pytest.param({}, seq(U(0, BPF_ANY, val(9)), L(0)), ok([ok(), ok(val(9))]), id="U01-ANY"),
    pytest.param({}, seq(U(0, BPF_NOEXIST), L(0)), ok([err(EEXIST), ok(Z12)]), id="U02-NOEXIST"),
    pytest.param({}, seq(U(3, BPF_EXIST, val(5)), L(3)), ok([ok(), ok(val(5))]), id="U03-EXIST"),
    pytest.param({}, U(0, BPF_F_LOCK), err(EINVAL), id="U04-LOCK"),
    pytest.param({}, U(0, BPF_F_LOCK | BPF_EXIST), err(EINVAL), id="U05-LOCK-EXIST"),
    pytest.param({}, U(0, 3), err(EINVAL), id="U06-flags-3"),
    pytest.param({}, U(0, 8), err(EINVAL), id="U07-flags-8"),
    pytest.param({}, U(0, 2**64 - 1), err(EINVAL), id="U08-flags-all"),
    pytest.param({}, U(0, 2**63), err(EINVAL), id="U08b-flags-bit63"),
    pytest.param({}, U(4, BPF_ANY), err(E2BIG), id="U09-key-eq-max-ANY"),
    pytest.param({}, U(4, BPF_NOEXIST), err(E2BIG), id="U10-key-eq-max-NOEXIST"),
    pytest.param({}, U(4, BPF_EXIST), err(E2BIG), id="U11-key-eq-max-EXIST"),
    pytest.param({}, U(4, 3), err(EINVAL), id="U12-key-eq-max-flags3"),
    pytest.param({}, U(U32), err(E2BIG), id="U13-key-u32max"),
    pytest.param({}, U(4, BPF_F_LOCK), err(EINVAL), id="U04b-LOCK-before-range"),
    pytest.param(
        {},
        seq(U(1, BPF_ANY, val(1)), U(1, BPF_ANY, val(2)), CONTENTS),
        ok([ok(), ok(), ok([Z12, val(2), Z12, Z12])]),
        id="U01b-overwrite",
    ),
    pytest.param({"flags": MM}, frozen_then(U(0)), ok([err(EPERM)]), id="F03-frozen-update"),
    pytest.param({"flags": MM}, frozen_then(U(0, 3)), ok([err(EPERM)]), id="F04-frozen-bad-flags"),
    pytest.param({"flags": MM}, frozen_then(U(9)), ok([err(EPERM)]), id="F04b-frozen-key-oor"),
    pytest.param(
        {"flags": MM},
        frozen_then(U(0, BPF_F_LOCK), U(0, BPF_NOEXIST), CONTENTS),
        ok([err(EPERM), err(EPERM), ok([val(k) for k in range(4)])]),
        id="F04c-frozen-LOCK-NOEXIST",
    ),
    pytest.param({"flags": BPF_F_RDONLY}, U(0), err(EPERM), id="R01-P09-read-only-update"),
    pytest.param({"flags": BPF_F_RDONLY}, U(9), err(EPERM), id="R02-read-only-key-oor"),
    pytest.param({"flags": BPF_F_RDONLY}, U(0, 3), err(EPERM), id="R02b-read-only-bad-flags"),
    pytest.param(
        {"flags": BPF_F_WRONLY},
        seq(U(0), U(4), U(0, 1), U(0, 3)),
        ok([ok(), err(E2BIG), err(EEXIST), err(EINVAL)]),
        id="W04-P16-write-only-update",
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY_PROG},
        seq(U(0, BPF_ANY, val(3)), L(0)),
        ok([ok(), ok(val(3))]),
        id="F20-RDONLY_PROG-update",
    ),
]

# ------------------------------------------------------------- delete & co

DELETE_CASES = [
    pytest.param({}, D(0), err(EINVAL), id="D01-delete-key0"),
    pytest.param({}, D(4), err(EINVAL), id="D02-delete-key-eq-max"),
    pytest.param({}, D(U32), err(EINVAL), id="D02b-delete-key-u32max"),
    pytest.param(
        {}, filled(D(1), L(1)), ok([err(EINVAL), ok(val(1))]), id="D01b-delete-keeps-value"
    ),
    pytest.param({"flags": BPF_F_WRONLY}, D(0), err(EINVAL), id="W05-write-only-delete"),
    pytest.param(
        {"flags": MM}, frozen_then(D(0), D(9)), ok([err(EPERM), err(EPERM)]), id="F06-frozen-delete"
    ),
    pytest.param({"flags": BPF_F_RDONLY}, D(0), err(EPERM), id="R05-read-only-delete"),
    pytest.param({}, LAD(0), err(ENOTSUPP), id="D04-lookup_and_delete"),
    pytest.param({}, LAD(9), err(ENOTSUPP), id="D04b-lookup_and_delete-key-oor"),
    pytest.param({}, LAD(0, BPF_F_LOCK), err(EINVAL), id="D04c-lookup_and_delete-LOCK"),
    pytest.param({}, LAD(0, 1), err(EINVAL), id="D04d-lookup_and_delete-flags1"),
    pytest.param(
        {"flags": MM}, frozen_then(LAD(0)), ok([err(EPERM)]), id="F08-frozen-lookup_and_delete"
    ),
    pytest.param(
        {"flags": MM},
        frozen_then(LAD(0, 1), LAD(0, BPF_F_LOCK)),
        ok([err(EINVAL), err(EPERM)]),
        id="F08b-frozen-lad-flags-order",
    ),
    pytest.param(
        {"flags": BPF_F_WRONLY}, LAD(0), err(EPERM), id="W06-write-only-lookup_and_delete"
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY}, LAD(0), err(EPERM), id="R05b-read-only-lookup_and_delete"
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY}, LAD(0, 8), err(EINVAL), id="R05c-read-only-lad-flags-first"
    ),
]

NEXT_KEY_CASES = [
    pytest.param({}, N(None), ok(0), id="N01-next-of-NULL"),
    pytest.param({}, N(0), ok(1), id="N02-next-of-0"),
    pytest.param({}, N(2), ok(3), id="N03-next-of-2"),
    pytest.param({}, N(3), err(ENOENT), id="N04-next-of-last"),
    pytest.param({}, N(4), ok(0), id="N05-next-of-max-restarts"),
    pytest.param({}, N(U32), ok(0), id="N06-next-of-u32max-restarts"),
    pytest.param(
        {"max_entries": 1},
        seq(N(None), N(0), N(1)),
        ok([ok(0), err(ENOENT), ok(0)]),
        id="N04b-single",
    ),
    pytest.param(
        {"flags": MM},
        frozen_then(N(None), N(3)),
        ok([ok(0), err(ENOENT)]),
        id="F07-frozen-next-key",
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY}, seq(N(None), N(1)), ok([ok(0), ok(2)]), id="R04-read-only-next-key"
    ),
    pytest.param(
        {"flags": BPF_F_WRONLY},
        seq(N(None), N(3)),
        ok([err(EPERM), err(EPERM)]),
        id="W03-write-only-next-key",
    ),
    pytest.param(
        {"max_entries": 3},
        filled(lambda m: list(m), lambda m: list(m.items())),
        ok([ok([0, 1, 2]), ok([(k, val(k)) for k in range(3)])]),
        id="N01b-iteration",
    ),
]

# ------------------------------------------------------------------- batches

BATCH_CASES = [
    pytest.param(
        {},
        filled(LB(4)),
        ok([ok(("batch", [0, 1, 2, 3], vals(0, 1, 2, 3), 3, False))]),
        id="B01-lookup-all",
    ),
    pytest.param(
        {"value_size": 5, "max_entries": 3},
        filled(LB(3)),
        ok([ok(("batch", [0, 1, 2], vals(0, 1, 2, vs=5), 2, False))]),
        id="B01d-value_size-stride",
    ),
    pytest.param(
        {},
        filled(LB(4, in_batch=3)),
        ok([ok(("batch", [], b"", None, True))]),
        id="B02-in_batch-last",
    ),
    pytest.param(
        {},
        filled(LB(10)),
        ok([ok(("batch", [0, 1, 2, 3], vals(0, 1, 2, 3), 3, True))]),
        id="B03-count-over",
    ),
    pytest.param(
        {},
        filled(LB(3), LB(3, in_batch=2)),
        ok(
            [
                ok(("batch", [0, 1, 2], vals(0, 1, 2), 2, False)),
                ok(("batch", [3], vals(3), 3, True)),
            ]
        ),
        id="B04-two-steps",
    ),
    pytest.param({}, filled(LB(0)), ok([ok(("batch", [], b"", None, False))]), id="B05-count-0"),
    pytest.param(
        {},
        filled(LB(0, in_batch=3)),
        ok([ok(("batch", [], b"", None, False))]),
        id="B05b-count-0-in-last",
    ),
    pytest.param(
        {},
        filled(LB(2, in_batch=100)),
        ok([ok(("batch", [0, 1], vals(0, 1), 1, False))]),
        id="B06-in_batch-past-end",
    ),
    pytest.param(
        {},
        filled(LB(9, in_batch=U32)),
        ok([ok(("batch", [0, 1, 2, 3], vals(0, 1, 2, 3), 3, True))]),
        id="B06b-in_batch-u32max",
    ),
    pytest.param(
        {},
        filled(LB(2, in_batch=1)),
        ok([ok(("batch", [2, 3], vals(2, 3), 3, False))]),
        id="B06c-in_batch-middle",
    ),
    pytest.param({}, LB(4, elem_flags=BPF_F_LOCK), err(EINVAL), id="B07-elem_flags-LOCK"),
    pytest.param({}, LB(4, elem_flags=1), err(EINVAL), id="B08-elem_flags-1"),
    pytest.param({}, LB(0, elem_flags=1), err(EINVAL), id="B08b-elem_flags-before-count0"),
    pytest.param({}, LB(4, elem_flags=2**63), err(EINVAL), id="B08c-elem_flags-bit63"),
    pytest.param(
        {},
        filled(LB(4, flags=1)),
        ok([ok(("batch", [0, 1, 2, 3], vals(0, 1, 2, 3), 3, False))]),
        id="B09-flags-ignored",
    ),
    pytest.param(
        {},
        filled(LB(2, flags=2**64 - 1)),
        ok([ok(("batch", [0, 1], vals(0, 1), 1, False))]),
        id="B09b-flags-all-ignored",
    ),
    pytest.param(
        {},
        seq(UBv([0, 1, 2]), CONTENTS),
        ok([ok(3), ok([bytes([0x40]) * 12, bytes([0x41]) * 12, bytes([0x42]) * 12, Z12])]),
        id="B12-update-batch",
    ),
    pytest.param(
        {},
        seq(UBv([0, 9, 2]), CONTENTS),
        ok([err(E2BIG, 1), ok([bytes([0x40]) * 12, Z12, Z12, Z12])]),
        id="B13-update-batch-stops",
    ),
    pytest.param(
        {}, seq(UBv([5]), CONTENTS), ok([err(E2BIG, 0), ok([Z12] * 4)]), id="B13b-first-key-oor"
    ),
    pytest.param(
        {},
        seq(UBv([3, 2, U32, 0]), CONTENTS),
        ok([err(E2BIG, 2), ok([Z12, Z12, bytes([0x41]) * 12, bytes([0x40]) * 12])]),
        id="B13c-stop-at-u32max",
    ),
    pytest.param(
        {},
        seq(UBv([1, 1, 1]), CONTENTS),
        ok([ok(3), ok([Z12, bytes([0x42]) * 12, Z12, Z12])]),
        id="B12b-duplicate-keys-last-wins",
    ),
    pytest.param(
        {"value_size": 5, "max_entries": 6},
        seq(UBv([2, 3, 4, 0]), CONTENTS),
        ok([ok(4), ok([b"\x43" * 5, bytes(5), b"\x40" * 5, b"\x41" * 5, b"\x42" * 5, bytes(5)])]),
        id="B12c-update-batch-value_size-stride",
    ),
    pytest.param(
        {}, UB([0, 1, 2], elem_flags=BPF_NOEXIST), err(EINVAL, 3), id="B14-elem_flags-NOEXIST"
    ),
    pytest.param(
        {}, UB([0, 1, 2], elem_flags=BPF_EXIST), err(EINVAL, 3), id="B15-elem_flags-EXIST"
    ),
    pytest.param(
        {}, UB([0, 1, 2], elem_flags=BPF_F_LOCK), err(EINVAL, 3), id="B16-elem_flags-LOCK"
    ),
    pytest.param(
        {}, UB([], elem_flags=BPF_F_LOCK), err(EINVAL, 0), id="B16b-elem_flags-before-count0"
    ),
    pytest.param({}, UB([9], elem_flags=1), err(EINVAL, 1), id="B16c-elem_flags-before-key"),
    pytest.param({}, UB([]), ok(0), id="B17-update-count-0"),
    pytest.param({}, UB([0], flags=5), ok(1), id="B17b-update-flags-ignored"),
    pytest.param({}, DB([0, 1]), err(ENOTSUPP, 2), id="B18-delete-batch"),
    pytest.param(
        {}, DB([], elem_flags=1, flags=1), err(ENOTSUPP, 0), id="B18b-delete-batch-any-args"
    ),
    pytest.param(
        {"flags": MM}, frozen_then(UB([0])), ok([err(EPERM, 1)]), id="F09-frozen-update-batch"
    ),
    pytest.param(
        {"flags": MM},
        frozen_then(UB([0], elem_flags=1)),
        ok([err(EPERM, 1)]),
        id="F09b-frozen-before-elem_flags",
    ),
    pytest.param(
        {"flags": MM},
        frozen_then(LB(4)),
        ok([ok(("batch", [0, 1, 2, 3], vals(0, 1, 2, 3), 3, False))]),
        id="F10-frozen-lookup-batch",
    ),
    pytest.param(
        {"flags": MM}, frozen_then(DB([0])), ok([err(EPERM, 1)]), id="F11-frozen-delete-batch"
    ),
    # bpf_map_do_batch(): the perm checks come before the op's own count-0 shortcut.
    pytest.param(
        {"flags": MM},
        frozen_then(UB([]), DB([])),
        ok([err(EPERM, 0), err(EPERM, 0)]),
        id="F09c-frozen-count-0",
    ),
    pytest.param({"flags": BPF_F_RDONLY}, UB([]), err(EPERM, 0), id="R08c-read-only-count-0"),
    pytest.param({"flags": BPF_F_WRONLY}, LB(0), err(EPERM), id="W07c-write-only-count-0"),
    pytest.param(
        {"flags": BPF_F_RDONLY},
        LB(2),
        ok(("batch", [0, 1], bytes(24), 1, False)),
        id="R07-read-only-lookup-batch",
    ),
    pytest.param({"flags": BPF_F_RDONLY}, UB([0]), err(EPERM, 1), id="R08-read-only-update-batch"),
    pytest.param({"flags": BPF_F_RDONLY}, DB([0]), err(EPERM, 1), id="R08b-read-only-delete-batch"),
    pytest.param({"flags": BPF_F_WRONLY}, LB(2), err(EPERM), id="W07-write-only-lookup-batch"),
    pytest.param(
        {"flags": BPF_F_WRONLY}, LB(0, elem_flags=1), err(EPERM), id="W07b-write-only-perm-first"
    ),
    pytest.param({"flags": BPF_F_WRONLY}, UB([0, 3]), ok(2), id="W08-write-only-update-batch"),
    pytest.param(
        {"flags": BPF_F_WRONLY}, DB([0]), err(ENOTSUPP, 1), id="W08b-write-only-delete-batch"
    ),
]


def _selftest_batches(m: ArrayMap) -> list[Any]:
    """array_map_batch_ops.c: for each step, loop lookup_batch until ENOENT; total == 10."""
    m.update_batch(range(10), [val(k, m.value_size) for k in range(10)])
    out = []
    for step in range(1, 10):
        got, token = [], None
        while True:
            b = m.lookup_batch(step, in_batch=token)
            got.extend(b.items())
            if b.done:
                break
            token = b.out_batch
        out.append(got)
    return out


BATCH_CASES.append(
    pytest.param(
        {"value_size": 8, "max_entries": 10},
        _selftest_batches,
        ok([[(k, val(k, 8)) for k in range(10)]] * 9),
        id="B04b-selftest-array_map_batch_ops",
    )
)

# ------------------------------------------------------------------- freeze


def _second_handle(m: ArrayMap) -> ArrayMap:
    return ArrayMap.from_fd(os.dup(m.fd))


def _f13_f14(m: ArrayMap) -> Any:
    b = _second_handle(m)
    try:
        return [o(m.freeze), o(lambda: b.update(0, bytes(12))), o(b.freeze), o(lambda: b.frozen)]
    finally:
        b.close()


def _m05(m: ArrayMap) -> Any:
    rw = m.mmap(writable=True)
    try:
        first = o(m.freeze)
    finally:
        rw.close()
    return [first, o(m.freeze), o(m.freeze)]


def _m15(m: ArrayMap) -> Any:
    ro = m.mmap(writable=False)
    try:
        return [o(m.freeze), o(lambda: bytes(ro[:12]))]
    finally:
        ro.close()


FREEZE_CASES = [
    pytest.param({}, seq(FRZ, FROZEN), ok([ok(), ok(True)]), id="F01-freeze"),
    pytest.param(
        {}, seq(FRZ, FRZ, FROZEN), ok([ok(), err(EPERM), ok(True)]), id="F02-freeze-again"
    ),
    pytest.param(
        {"flags": MM},
        _f13_f14,
        ok([ok(), err(EPERM), err(EPERM), ok(True)]),
        id="F13-F14-second-handle",
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY},
        seq(FRZ, FROZEN),
        ok([err(EPERM), ok(False)]),
        id="F16-R06-P11-read-only-freeze",
    ),
    pytest.param(
        {"flags": BPF_F_WRONLY},
        seq(FRZ, FRZ, U(0), D(0)),
        ok([ok(), err(EPERM), err(EPERM), err(EPERM)]),
        id="F17-W11-write-only-freeze",
    ),
    pytest.param(
        {"flags": BPF_F_RDONLY_PROG | MM},
        seq(U(0, BPF_ANY, val(1)), FRZ, U(0), L(0)),
        ok([ok(), ok(), err(EPERM), ok(val(1))]),
        id="F21-F23-RDONLY_PROG-freeze",
    ),
    pytest.param(
        {"flags": BPF_F_WRONLY_PROG},
        seq(FRZ, U(0)),
        ok([ok(), err(EPERM)]),
        id="F24-WRONLY_PROG-freeze",
    ),
    pytest.param(
        {"flags": MM}, _m05, ok([err(EBUSY), ok(), err(EPERM)]), id="M05-freeze-with-rw-mapping"
    ),
    pytest.param({"flags": MM}, _m15, ok([ok(), ok(Z12)]), id="M15-M62-freeze-with-ro-mapping"),
    pytest.param(
        {"flags": MM},
        frozen_then(N(None), LB(1), L(2), UB([0]), DB([0]), LAD(0), D(0), U(0), FRZ),
        ok(
            [
                ok(0),
                ok(("batch", [0], vals(0), 0, False)),
                ok(val(2)),
                err(EPERM, 1),
                err(EPERM, 1),
                err(EPERM),
                err(EPERM),
                err(EPERM),
                err(EPERM),
            ]
        ),
        id="F03-F11-every-op-after-freeze",
    ),
]

# -------------------------------------------------- zero init, padding (E*)


def _e01(m: ArrayMap) -> Any:
    return m.mmap()


def _e02_e06(m: ArrayMap) -> Any:
    """Padding and tail written through mmap: never returned, never cleared."""
    r = m.mmap()
    try:
        r[0 : len(r)] = b"\xff" * len(r)
        got = [o(lambda: m.lookup(0)), o(lambda: m.lookup_batch(3))]
        m.update(1, val(1))  # E03: value replaced, padding 28..31 kept
        got.append(o(lambda: bytes(r[8:40])))
        m.update_batch([2], [val(2)])
        got.append(o(lambda: bytes(r[:64])))
        return got
    finally:
        r.close()


PAD_CASES = [
    pytest.param(
        {"value_size": 12, "max_entries": 5, "flags": MM},
        _e01,
        ok(("region", P, ("bytes", P, []))),
        id="E01-zero-initialised",
    ),
    pytest.param(
        {"value_size": 12, "max_entries": 3, "flags": MM},
        _e02_e06,
        ok(
            [
                ok(b"\xff" * 12),
                ok(("batch", [0, 1, 2], b"\xff" * 36, 2, False)),
                ok(b"\xff" * 8 + val(1) + b"\xff" * 12),
                ok(b"\xff" * 16 + val(1) + b"\xff" * 4 + val(2) + b"\xff" * 20),
            ]
        ),
        id="E02-E06-M41-M42-padding",
    ),
    pytest.param(
        {"value_size": 1, "max_entries": 9, "flags": MM},
        lambda m: (fill(m), m.mmap())[1],
        ok(("region", P, ("bytes", P, [(8 * k, val(k, 1)) for k in range(9)]))),
        id="E01b-value_size-1-stride-8",
    ),
]

# --------------------------------------------------------------------- mmap

TWO = {"value_size": 8, "max_entries": 2 * P // 8, "flags": MM}  # 2 pages
ZREG2 = ok(("region", 2 * P, ("bytes", 2 * P, [])))


def _m03_m04(m: ArrayMap) -> Any:
    r = m.mmap()
    try:
        r[8:16] = b"\x11" * 8
        m.update(2, b"\x22" * 8)
        return [o(lambda: m.lookup(1)), o(lambda: bytes(r[16:24]))]
    finally:
        r.close()


def _m25_m26(m: ArrayMap) -> Any:
    m.update(512, b"\x55" * 8)
    m.update(511, b"\x44" * 8)
    return m.mmap(offset=P, length=P)


def _m40(m: ArrayMap) -> Any:
    fill(m)
    r = m.mmap()
    try:
        r[48:P] = b"\x77" * (P - 48)  # the tail: writable, ignored by syscalls
        return [o(lambda: bytes(r[:56])), o(lambda: contents(m)), o(lambda: m.lookup_batch(9))]
    finally:
        r.close()


def _region_survives_close(m: ArrayMap) -> Any:
    m.update(3, b"\x33" * 8)
    r = m.mmap(writable=False, length=P)
    m.close()
    try:
        return bytes(r[24:32])
    finally:
        r.close()


MMAP_CASES = [
    pytest.param(TWO, MM_(), ZREG2, id="M01-M02-rw-whole"),
    pytest.param(TWO, MM_(writable=False), ZREG2, id="M01b-ro-whole"),
    pytest.param(TWO, _m03_m04, ok([ok(b"\x11" * 8), ok(b"\x22" * 8)]), id="M03-M04-coherent"),
    pytest.param(TWO, frozen_then(MM_()), ok([err(EPERM)]), id="M13-frozen-rw"),
    pytest.param(
        TWO,
        frozen_then(MM_(writable=False, length=16)),
        ok([ok(("region", 16, ("bytes", 16, [(0, val(0, 8) + val(1, 8))])))]),
        id="M15-M16-frozen-ro",
    ),
    pytest.param(TWO, MM_(writable=False, shared=False), err(EINVAL), id="M19-private-ro"),
    pytest.param(TWO, MM_(writable=True, shared=False), err(EINVAL), id="M20-private-rw"),
    pytest.param(
        TWO,
        frozen_then(MM_(writable=True, shared=False), MM_(writable=False, shared=False)),
        ok([err(EINVAL), err(EINVAL)]),
        id="M21-private-frozen",
    ),
    pytest.param(TWO, MM_(length=3 * P), err(EINVAL), id="M22-three-pages"),
    pytest.param(TWO, MM_(length=2 * P + 1), err(EINVAL), id="M23-two-pages-plus-1"),
    pytest.param(
        {"value_size": 12, "max_entries": 3, "flags": MM},
        MM_(length=2 * P),
        err(EINVAL),
        id="M43-two-pages-of-48-bytes",
    ),
    pytest.param(TWO, MM_(length=1), ok(("region", 1, sparse(b"\x00"))), id="M24-one-byte"),
    pytest.param(
        TWO,
        _m25_m26,
        ok(("region", P, ("bytes", P, [(0, b"\x55" * 8)]))),
        id="M25-M26-offset-one-page",
    ),
    pytest.param(TWO, MM_(offset=P), ok(("region", P, ("bytes", P, []))), id="M25b-offset-rest"),
    pytest.param(TWO, MM_(offset=P, length=2 * P), err(EINVAL), id="M27-offset-plus-two-pages"),
    pytest.param(TWO, MM_(offset=2 * P), err(EINVAL), id="M28-offset-at-end"),
    pytest.param(TWO, MM_(offset=2 * P, length=P), err(EINVAL), id="M28b-offset-at-end-one-page"),
    pytest.param(TWO, MM_(offset=2**40, length=P), err(EINVAL), id="M28c-offset-far"),
    pytest.param(TWO, MM_(offset=100), err(EINVAL), id="M29-offset-unaligned"),
    pytest.param(TWO, MM_(length=0), err(EINVAL), id="M30-length-0"),
    # do_mmap(): __get_unmapped_area() refuses a length with no room in the
    # address space (ENOMEM) before any file, VM_SHARED or bounds check.
    pytest.param(TWO, MM_(length=2**62), err(ENOMEM), id="M22b-length-beyond-TASK_SIZE"),
    pytest.param(TWO, MM_(length=2**48), None, id="M22c-length-2^48"),
    pytest.param(TWO, MM_(length=2**46), err(EINVAL), id="M22d-length-2^46-fits"),
    pytest.param(
        TWO, MM_(offset=100, length=2**62), err(EINVAL), id="M29b-unaligned-before-ENOMEM"
    ),
    pytest.param(
        TWO, frozen_then(MM_(length=2**62)), ok([err(ENOMEM)]), id="M13c-ENOMEM-before-frozen"
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY},
        MM_(length=2**62),
        err(ENOMEM),
        id="M72d-ENOMEM-before-EACCES",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_WRONLY},
        MM_(writable=False, length=2**62),
        err(ENOMEM),
        id="M74f-ENOMEM-before-EACCES",
    ),
    pytest.param(
        {"value_size": 8, "max_entries": 4},
        MM_(shared=False, length=2**62),
        err(ENOMEM),
        id="M51b-ENOMEM-before-private-and-plain",
    ),
    pytest.param(
        {"value_size": 12, "max_entries": 3, "flags": MM},
        _m40,
        ok(
            [
                ok(vals(0) + bytes(4) + vals(1) + bytes(4) + vals(2) + bytes(4) + b"\x77" * 8),
                ok([val(0), val(1), val(2)]),
                ok(("batch", [0, 1, 2], vals(0, 1, 2), 2, True)),
            ]
        ),
        id="M40-M42-layout-and-tail",
    ),
    pytest.param(
        {"value_size": 8, "max_entries": 4}, MM_(writable=False), err(EINVAL), id="M50-plain-ro"
    ),
    pytest.param({"value_size": 8, "max_entries": 4}, MM_(), err(EINVAL), id="M51-plain-rw"),
    pytest.param(
        {"value_size": 8, "max_entries": 4},
        frozen_then(MM_()),
        ok([err(EPERM)]),
        id="M52-plain-frozen-rw",
    ),
    pytest.param(
        {"value_size": 8, "max_entries": 4},
        frozen_then(MM_(writable=False)),
        ok([err(EINVAL)]),
        id="M52b-plain-frozen-ro",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY_PROG}, MM_(), err(EACCES), id="M60-RDONLY_PROG-rw"
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY_PROG},
        MM_(writable=False),
        ZREG2,
        id="M61-RDONLY_PROG-ro",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY_PROG},
        frozen_then(MM_()),
        ok([err(EPERM)]),
        id="M64-RDONLY_PROG-frozen-rw",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY_PROG},
        MM_(length=3 * P),
        err(EACCES),
        id="M60b-RDONLY_PROG-before-bounds",
    ),
    pytest.param(
        {"value_size": 8, "max_entries": 4, "flags": BPF_F_RDONLY_PROG},
        MM_(),
        err(EACCES),
        id="M60c-RDONLY_PROG-before-MMAPABLE",
    ),
    pytest.param(
        TWO, frozen_then(MM_(length=3 * P)), ok([err(EPERM)]), id="M13b-frozen-before-bounds"
    ),
    pytest.param({**TWO, "flags": MM | BPF_F_WRONLY_PROG}, MM_(), ZREG2, id="M63-WRONLY_PROG-rw"),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY},
        MM_(writable=False),
        err(EINVAL),
        id="M70-R09-read-only-fd-ro",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY},
        MM_(writable=False, shared=False),
        err(EINVAL),
        id="M70b-read-only-fd-private",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY}, MM_(), err(EACCES), id="M72-R10-read-only-fd-rw"
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY},
        MM_(shared=False),
        err(EINVAL),
        id="M72b-read-only-fd-rw-private",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_RDONLY},
        MM_(offset=100),
        err(EINVAL),
        id="M72c-read-only-fd-offset-first",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_WRONLY},
        MM_(writable=False),
        err(EACCES),
        id="M74-W09-write-only-fd-ro",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_WRONLY}, MM_(), err(EACCES), id="M74b-W10-write-only-fd-rw"
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_WRONLY},
        MM_(shared=False),
        err(EACCES),
        id="M74c-write-only-fd-private",
    ),
    pytest.param(
        {**TWO, "flags": MM | BPF_F_WRONLY},
        MM_(length=0),
        err(EINVAL),
        id="M74d-write-only-fd-length0-first",
    ),
    pytest.param(
        {"value_size": 8, "max_entries": 4, "flags": BPF_F_WRONLY},
        MM_(),
        err(EACCES),
        id="M74e-write-only-plain",
    ),
    pytest.param(TWO, _region_survives_close, ok(b"\x33" * 8), id="K01-region-outlives-handle"),
]


ALL_CASES = (
    INFO_CASES
    + LOOKUP_CASES
    + [
        pytest.param(
            {}, _lookup_into, ok(val(1) + b"\xee" * 8), id="L01b-lookup_into-tail-untouched"
        )
    ]
    + UPDATE_CASES
    + DELETE_CASES
    + NEXT_KEY_CASES
    + BATCH_CASES
    + FREEZE_CASES
    + PAD_CASES
    + MMAP_CASES
)


@pytest.mark.parametrize("create,op,expected", ALL_CASES)
def test_case(
    create: dict[str, Any], op: Callable[[ArrayMap], Any], expected: Any, kernel: None
) -> None:
    check(create, op, expected)


def test_ids_are_unique_and_positive(kernel: None) -> None:
    """I10: every map gets an id > 0, different from every other live map's."""
    maps = [ArrayMap(8, 1, backend=be) for be in ("emulated", "emulated", "kernel", "kernel")]
    try:
        ids = [m.id for m in maps]
        assert all(i > 0 for i in ids)
        assert ids[0] != ids[1] and ids[2] != ids[3]
        assert [m.info().id for m in maps] == ids
    finally:
        for m in maps:
            m.close()


def test_page_size_is_what_the_cases_assume() -> None:
    assert P & (P - 1) == 0 and P >= 4096


def test_create_token_flag_with_fd0_closed(kernel: None) -> None:
    """C43 variant: BPF_F_TOKEN_FD with map_token_fd 0 while fd 0 is closed -> EBADF."""
    saved = os.dup(0)
    os.close(0)
    try:
        results = [run(be, {"flags": BPF_F_TOKEN_FD}, None) for be in ("emulated", "kernel")]
        order = [
            run(be, {"flags": BPF_F_TOKEN_FD, "value_size": U32}, None)
            for be in ("emulated", "kernel")
        ]
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert results[0] == results[1] == cerr(errno.EBADF)
    assert order[0] == order[1] == cerr(E2BIG)


# ------------------------------------------------ lookup_batch_into, both backends


def _into(m: ArrayMap, count: int, prefill: int = 0xEE, **kw: Any) -> Any:
    """lookup_batch_into on buffers pre-filled with ``prefill``: (result, keys, values)."""
    keys = array.array("I", [prefill]) * count
    values = bytearray([prefill]) * (count * m.value_size + 3)  # 3 spare bytes stay untouched
    return (m.lookup_batch_into(keys, values, **kw), list(keys), bytes(values))


INTO_CASES = [
    pytest.param({}, 4, {}, id="all"),
    pytest.param({}, 10, {}, id="count-over"),
    pytest.param({}, 0, {}, id="count-0"),
    pytest.param({}, 2, {"in_batch": 1}, id="in_batch-middle"),
    pytest.param({}, 4, {"in_batch": 3}, id="in_batch-last"),
    pytest.param({}, 2, {"in_batch": 100}, id="in_batch-past-end"),
    pytest.param({}, 9, {"in_batch": U32}, id="in_batch-u32max"),
    pytest.param({"value_size": 5, "max_entries": 3}, 3, {}, id="value_size-stride"),
    pytest.param({}, 4, {"elem_flags": BPF_F_LOCK}, id="elem_flags-LOCK"),
    pytest.param({}, 4, {"flags": 2**64 - 1}, id="flags-ignored"),
    pytest.param({"flags": BPF_F_WRONLY}, 2, {}, id="write-only"),
]


@pytest.mark.parametrize("create,count,kw", INTO_CASES)
def test_lookup_batch_into(
    create: dict[str, Any], count: int, kw: dict[str, Any], kernel: None
) -> None:
    """Same bytes and errno on both backends, and the same data as ``lookup_batch``."""

    def op(m: ArrayMap) -> Any:
        if m.access == "rw":
            fill(m)
        plain = o(lambda: m.lookup_batch(count, **kw))
        try:
            (got, out_batch, done), keys, values = _into(m, count, **kw)
        except OSError as exc:
            assert plain == ("errno", exc.errno)
            return plain
        vs = m.value_size
        assert plain == ok(norm(("batch", keys[:got], values[: got * vs], out_batch, done)))
        assert keys[got:] == [0xEE] * (count - got)
        assert values[got * vs :] == b"\xee" * ((count - got) * vs + 3)
        return plain

    check(create, op, None)


def test_lookup_batch_into_rejects_what_it_cannot_fill() -> None:
    m = ArrayMap(8, 4)
    with m:
        with pytest.raises(TypeError, match="writable uint32 buffer"):
            m.lookup_batch_into([0, 0], bytearray(16))
        with pytest.raises(TypeError, match="native uint32"):
            m.lookup_batch_into(bytearray(8), bytearray(16))
        with pytest.raises(TypeError, match="writable"):
            m.lookup_batch_into(memoryview(array.array("I", [0, 0])).toreadonly(), bytearray(16))
        with pytest.raises(TypeError, match="writable"):
            m.lookup_batch_into(array.array("I", [0, 0]), bytes(16))
        with pytest.raises(ValueError, match="at least 16 bytes, got 15"):
            m.lookup_batch_into(array.array("I", [0, 0]), bytearray(15))
