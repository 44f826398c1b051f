"""The peers: what a user would pick instead of bpfmap to reach the kernel's map from Python.

Each peer does the same operation on a kernel array map of the same shape (value_size 8,
1024 entries, key 5; pylibbpf's map comes from a BPF object: the bench object's one-entry
``slots``, key 0), in the same run as bpfmap's rows:

``core-cffi``
    bpfmap's own C core called bare through cffi (``lib.bpfmap_lookup``): the floor under the
    kernel backend's Python layer;
``libbpf-cffi``
    libbpf's ``bpf_map_lookup_elem``/``bpf_map_update_elem`` through cffi in ABI mode
    (dlopen of ``libbpf.so.1``), called bare;
``ctypes``
    a 30-line ctypes wrapper of the ``bpf()`` syscall, what a user writes by hand;
``pylibbpf``, ``bpfmaps``, ``bcc``
    those packages' own map objects, when they are installed (skipped with the reason when
    they are not).

``lookup`` gives the value as a Python object (bytes, or the peer's own type; the bare routes
take the bytes by slicing an ``ffi.buffer`` of their C buffer made once, the fastest way, half
the cost of ``ffi.unpack``); ``lookup_into`` fills a buffer the caller made once (the bare
routes: a C ``char[]``, which needs no export; bpfmap's row: a ``bytearray``); ``update``
writes a value made once.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import platform
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .. import BPF_F_MMAPABLE, ArrayMap
from .core import ELEMENT_ENTRIES, ELEMENT_VALUE_SIZE, KEY, Case, Prepared, Result, stmt_case

PEERS = ("core-cffi", "libbpf-cffi", "ctypes", "pylibbpf", "bpfmaps", "bcc")
PEER_TITLES = {
    "core-cffi": "C core (bare cffi)",
    "libbpf-cffi": "libbpf (cffi ABI)",
    "ctypes": "ctypes bpf()",
    "pylibbpf": "pylibbpf",
    "bpfmaps": "bpfmaps",
    "bcc": "bcc",
}
OPS = ("lookup", "lookup_into", "update")
#: the Python route to the same syscall that a kernel-backend row must be within 1.1x of
BARE = ("core-cffi", "libbpf-cffi")
BENCH_OBJECT = Path(__file__).resolve().parent.parent / "bpf" / "bench.bpf.o"
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351}
_BPF_MAP_LOOKUP_ELEM, _BPF_MAP_UPDATE_ELEM = 1, 2


class _ElemAttr(ctypes.Structure):
    """union bpf_attr as BPF_MAP_*_ELEM reads it."""

    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class CtypesMap:
    """The hand-written ``bpf()`` wrapper a user would write with ctypes (checks included)."""

    def __init__(self, fd: int, value_size: int) -> None:
        nr = _SYS_BPF.get(platform.machine())
        if nr is None:
            raise OSError(f"no bpf() syscall number known for {platform.machine()}")
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._nr = nr
        self._fd, self._vs = fd, value_size
        self._key = ctypes.c_uint32()
        self._value = ctypes.create_string_buffer(value_size)
        self._attr = _ElemAttr(fd, 0, ctypes.addressof(self._key), 0, 0)
        self._attr_p, self._size = ctypes.byref(self._attr), ctypes.sizeof(self._attr)

    def _call(self, cmd: int) -> None:
        if self._syscall(self._nr, cmd, self._attr_p, self._size) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def lookup_into(self, key: int, buf: Any) -> None:
        self._key.value = key
        self._attr.value = ctypes.addressof(buf)
        self._call(_BPF_MAP_LOOKUP_ELEM)

    def lookup(self, key: int) -> bytes:
        self.lookup_into(key, self._value)
        return self._value.raw

    def update(self, key: int, value: Any, flags: int = 0) -> None:
        self._key.value = key
        self._attr.value = ctypes.addressof(value)
        self._attr.flags = flags
        self._call(_BPF_MAP_UPDATE_ELEM)


def _libbpf() -> tuple[Any, Any]:
    from cffi import FFI  # type: ignore[import-untyped]

    from .._libbpf import SONAME

    ffi = FFI()
    ffi.cdef(
        "int bpf_map_lookup_elem(int fd, const void *key, void *value);"
        "int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags);"
    )
    return ffi, ffi.dlopen(SONAME)


def missing(peer: str) -> str | None:
    """Why ``peer`` cannot run here, or None."""
    if peer == "libbpf-cffi":
        try:
            _libbpf()
        except (ImportError, OSError) as exc:
            return f"libbpf.so.1 could not be loaded ({exc})"
    elif peer == "ctypes" and platform.machine() not in _SYS_BPF:
        return f"no bpf() syscall number known for {platform.machine()}"
    elif peer in ("pylibbpf", "bpfmaps", "bcc"):
        try:
            with warnings.catch_warnings():  # bpfmaps warns at import (importlib.resources)
                warnings.simplefilter("ignore", DeprecationWarning)
                importlib.import_module(peer)
        except ImportError:
            how = (
                "it is not on PyPI; Debian's python3-bpfcc gives it to the system Python"
                if peer == "bcc"
                else f"pip install {peer}"
            )
            return f"{peer} is not installed ({how})"
        except Exception as exc:  # a package that fails at import is as good as absent
            return f"{peer} failed to import: {type(exc).__name__}: {exc}"
    return None


def _no_into(peer: str) -> str:
    return f"{peer} has no lookup into a caller's buffer"


def _kernel_map(closers: list[Callable[[], None]]) -> ArrayMap:
    m = ArrayMap(
        ELEMENT_VALUE_SIZE,
        ELEMENT_ENTRIES,
        flags=BPF_F_MMAPABLE,
        name="bpfmap_bench",
        backend="kernel",
    )
    closers.append(m.close)
    m.update(KEY, b"\x5a" * ELEMENT_VALUE_SIZE)
    return m


def _bare(peer: str, op: str, closers: list[Callable[[], None]]) -> tuple[str, dict[str, Any]]:
    m = _kernel_map(closers)
    vs = ELEMENT_VALUE_SIZE
    if peer == "core-cffi":
        from .. import _bindings

        ffi, lib = _bindings.ffi, _bindings.lib
        ns: dict[str, Any] = {"h": m._handle(), "k": KEY, "f": lib.bpfmap_lookup}
        ns["buf"] = ffi.new("char[]", vs)
        ns["out"] = ffi.buffer(ns["buf"])
        if op == "update":
            ns["f"] = lib.bpfmap_update
            ns["v"] = ffi.new("char[]", b"\x5a" * vs)
            return "f(h, k, v, 0)", ns
        if op == "lookup_into":
            return "f(h, k, buf, 0)", ns
        return "f(h, k, buf, 0) or out[:]", ns
    ffi, lib = _libbpf()
    ns = {"fd": m.fd, "kp": ffi.new("uint32_t *", KEY), "buf": ffi.new("char[]", vs)}
    ns["out"] = ffi.buffer(ns["buf"])
    if op == "update":
        ns["f"] = lib.bpf_map_update_elem
        ns["v"] = ffi.new("char[]", b"\x5a" * vs)
        return "f(fd, kp, v, 0)", ns
    ns["f"] = lib.bpf_map_lookup_elem
    if op == "lookup_into":
        return "f(fd, kp, buf)", ns
    return "f(fd, kp, buf) or out[:]", ns


def _wrapped(peer: str, op: str, closers: list[Callable[[], None]]) -> tuple[str, dict[str, Any]]:
    vs = ELEMENT_VALUE_SIZE
    if peer == "ctypes":
        w = CtypesMap(_kernel_map(closers).fd, vs)
        ns: dict[str, Any] = {"m": w, "k": KEY, "buf": ctypes.create_string_buffer(vs)}
        ns["v"] = ctypes.create_string_buffer(b"\x5a" * vs, vs)
        return {"lookup": "m.lookup(k)", "lookup_into": "m.lookup_into(k, buf)"}.get(
            op, "m.update(k, v)"
        ), ns
    if peer == "pylibbpf":
        pylibbpf: Any = importlib.import_module("pylibbpf")
        obj = pylibbpf.BpfObject(str(BENCH_OBJECT))
        obj.load()
        pm = obj["slots"]
        closers.append(partial(_drop, [obj, pm]))
        return ("pm.lookup(0)" if op == "lookup" else "pm.update(0, 7)"), {"pm": pm}
    if peer == "bpfmaps":
        bpfmaps: Any = importlib.import_module("bpfmaps")
        m = _kernel_map(closers)
        bm = bpfmaps.BPF_Map(
            2, b"bpfmap_bench", 4, vs, ELEMENT_ENTRIES, 0, fd=m.fd,
            key_type=ctypes.c_uint32, value_type=ctypes.c_uint64,
        )  # fmt: skip
        ns = {"bm": bm, "k": KEY, "v": ctypes.c_uint64(7)}
        return ("bm[k]" if op == "lookup" else "bm[k] = v"), ns
    # bcc: a table of its own (bcc's tables come from the programs it compiles)
    bcc: Any = importlib.import_module("bcc")
    bpf = bcc.BPF(text=f"BPF_ARRAY(bench, u64, {ELEMENT_ENTRIES});")
    closers.append(bpf.cleanup)
    table = bpf["bench"]
    ns = {"t": table, "k": table.Key(KEY), "v": table.Leaf(7)}
    return ("t[k]" if op == "lookup" else "t[k] = v"), ns


def _drop(objs: list[Any]) -> None:
    objs.clear()  # pylibbpf closes its object when the last reference goes


def peer_case(peer: str, op: str) -> Prepared:
    closers: list[Callable[[], None]] = []

    def cleanup() -> None:
        while closers:
            closers.pop()()

    try:
        stmt, ns = (_bare if peer in BARE else _wrapped)(peer, op, closers)
        return stmt_case(stmt, ns, cleanup)
    except OSError:
        cleanup()
        raise
    except Exception as exc:  # a peer that fails to set up is skipped with the reason
        cleanup()
        raise OSError(f"{peer}: {type(exc).__name__}: {exc}") from exc


def peer_cases(kernel_reason: str | None) -> list[Case]:
    """One case per peer and operation, value_size 8 (the rows the targets compare)."""
    out = []
    params = {"value_size": ELEMENT_VALUE_SIZE}
    for op in OPS:
        for peer in PEERS:
            skip = f"kernel backend unavailable: {kernel_reason}" if kernel_reason else None
            skip = skip or missing(peer)
            if skip is None and op == "lookup_into" and peer in ("pylibbpf", "bpfmaps", "bcc"):
                skip = _no_into(peer)
            note = "the bench object's slots map, key 0" if peer == "pylibbpf" else ""
            setup = None if skip else partial(peer_case, peer, op)
            out.append(Case("peers", op, peer, dict(params), setup, skip, note))
    return out


# ------------------------------------------------------------------ the report


def _value(results: Sequence[Result], op: str, backend: str) -> float | None:
    for r in results:
        c = r.case
        if c.op == op and c.backend == backend and c.params.get("value_size") == 8:
            return r.ns_per_op
    return None


def verdict(mine: float | None, peers: dict[str, float]) -> str:
    """Which peers ``mine`` beats and by how much: "beats ctypes 1.21x; behind libbpf 0.93x"."""
    if mine is None:
        return "n/a"
    beats = [(p / mine, n) for n, p in peers.items() if p >= mine]
    behind = [(p / mine, n) for n, p in peers.items() if p < mine]
    parts = []
    if beats:
        parts.append("beats " + ", ".join(f"{n} {r:.2f}x" for r, n in sorted(beats)))
    if behind:
        parts.append("behind " + ", ".join(f"{n} {r:.2f}x" for r, n in sorted(behind)))
    return "; ".join(parts) or "no peer ran"


def rows(results: Sequence[Result]) -> list[tuple[str, dict[str, str], str, str]]:
    """Per operation: (label, cell per column, the emulated verdict, the kernel verdict)."""
    from .report import fmt_ns

    out = []
    for op in OPS:
        cols: dict[str, str] = {}
        ran: dict[str, float] = {}
        for be in ("emulated", "kernel", *PEERS):
            v = _value(results, op, be)
            skipped = any(r.case.op == op and r.case.backend == be and r.skipped for r in results)
            cols[be] = fmt_ns(v) if v is not None else ("skip" if skipped else "")
            if v is not None and be in PEERS:
                ran[PEER_TITLES[be]] = v
        emu, ker = _value(results, op, "emulated"), _value(results, op, "kernel")
        out.append((f"{op} value_size=8", cols, verdict(emu, ran), verdict(ker, ran)))
    return out


def table(results: Sequence[Result], md: bool = False) -> str:
    """bpfmap's two backends beside every peer, and per row what bpfmap beats and by how much."""
    if not any(r.case.group == "peers" for r in results):
        return ""
    titles = ["bpfmap emulated", "bpfmap kernel"] + [PEER_TITLES[p] for p in PEERS]
    body = rows(results)
    if md:
        lines = [
            "| operation | " + " | ".join(titles) + " |",
            "|---" * (len(titles) + 1) + "|",
        ]
        lines += [f"| {label} | " + " | ".join(cols.values()) + " |" for label, cols, _, _ in body]
    else:
        grid = [[label, *cols.values()] for label, cols, _, _ in body]
        head = ["operation", *titles]
        widths = [max(len(str(row[i])) for row in [head, *grid]) for i in range(len(head))]
        fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*head), "-" * (sum(widths) + 2 * (len(widths) - 1))]
        lines += [fmt.format(*row) for row in grid]
    lines.append("")
    for label, _, emu, ker in body:
        lines.append(f"{label}: bpfmap emulated {emu}")
        lines.append(f"{label}: bpfmap kernel {ker}")
    return "\n".join(lines)
