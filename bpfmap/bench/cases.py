"""The catalogue of ``bpfmap bench``: single elements, batches, region access styles,
create cycles, the writer->reader stream, the references; plus the peers, the program side
and the dump rows that their own modules build."""

from __future__ import annotations

import struct
from functools import partial
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Callable

from .. import BPF_F_MMAPABLE, ArrayMap, _bindings
from .core import (
    BATCH_SIZES,
    ELEMENT_ENTRIES,
    ELEMENT_VALUE_SIZE,
    KEY,
    Case,
    Prepared,
    Resources,
    elem_size,
    kind_of,
    nothing,
    stmt_case,
)
from .dump import dump_cases
from .peers import peer_cases
from .programs import program_cases
from .stream import stream_case

lib: Any = _bindings.lib  # cffi: no stubs


def _element_case(op: str, backend: str, vs: int, n: int = ELEMENT_ENTRIES) -> Prepared:
    res = Resources()
    try:
        off = KEY * elem_size(vs)
        ns: dict[str, Any] = {"k": KEY, "o": off, "e": off + vs, "v": b"\x5a" * vs}
        if backend in ("emulated", "kernel"):
            ns["m"] = m = res.map(backend, vs, n)
            m.update(KEY, ns["v"])
            ns["ba"] = bytearray(vs)
            stmt = {
                "lookup": "m.lookup(k)",
                "lookup_into": "m.lookup_into(k, ba)",
                "update": "m.update(k, v)",
            }[op]
        else:
            if backend == "kernel-mmap":
                buf: Any = res.region(res.map(backend, vs, n))
            else:
                buf = res.shm(n * elem_size(vs)).buf
            buf[off : off + vs] = ns["v"]
            ns["b"] = buf
            ns["src"] = res.view(buf)
            ns["dst"] = res.view(bytearray(vs))
            stmt = {
                "lookup": "b[o:e]" if backend == "kernel-mmap" else "b[o:e].tobytes()",
                "lookup_into": "dst[:] = src[o:e]",
                "update": "b[o:e] = v",
            }[op]
        return stmt_case(stmt, ns, res.close)
    except BaseException:
        res.close()
        raise


def _batch_case(op: str, backend: str, count: int) -> Prepared:
    res = Resources()
    try:
        vs = 8
        ns: dict[str, Any] = {
            "c": count,
            "nb": count * vs,
            "vals": bytes(range(256)) * (count * vs // 256) + bytes(count * vs % 256),
        }
        if backend in ("emulated", "kernel"):
            import array

            ns["m"] = m = res.map(backend, vs, count)
            ns["keys"] = array.array("I", range(count))
            m.update_batch(ns["keys"], ns["vals"])
            ns["out_keys"], ns["out"] = array.array("I", [0]) * count, bytearray(count * vs)
            stmt = {
                "lookup_batch": "m.lookup_batch(c)",
                "lookup_batch_into": "m.lookup_batch_into(out_keys, out)",
                "update_batch": "m.update_batch(keys, vals)",
            }[op]
        else:
            if backend == "kernel-mmap":
                buf: Any = res.region(res.map(backend, vs, count))
                ns["b"] = buf
                read = "b[0:nb]"
            else:
                ns["b"] = buf = res.shm(count * vs).buf
                read = "b[0:nb].tobytes()"
            ns["src"], ns["dst"] = res.view(buf), res.view(bytearray(count * vs))
            stmt = {
                "lookup_batch": read,
                "lookup_batch_into": "dst[:] = src[0:nb]",
                "update_batch": "b[0:nb] = vals",
            }[op]
        return stmt_case(stmt, ns, res.close)
    except BaseException:
        res.close()
        raise


REGION_STYLES = {
    # style: (read statement, write statement)
    "struct": ("unpack(b, o)", "pack(b, o, 7)"),
    "memoryview": ("mv[o:e].tobytes()", "mv[o:e] = v"),
    "numpy": ("a[k]", "a[k] = 7"),
}


def _region_case(style: str, write: bool, backend: str) -> Prepared:
    res = Resources()
    try:
        vs, n = 8, ELEMENT_ENTRIES
        off = KEY * vs
        ns: dict[str, Any] = {"k": KEY, "o": off, "e": off + vs, "v": b"\x5a" * vs}
        if backend in ("emulated", "kernel-mmap"):
            buf: Any = res.region(res.map(backend, vs, n))
        elif backend == "mmap":
            buf = res.plain_mmap(res.map(backend, vs, n))
        else:
            buf = res.shm(n * vs).buf
        ns["b"] = buf
        st = struct.Struct("<Q")
        ns["unpack"], ns["pack"] = st.unpack_from, st.pack_into
        if style == "memoryview":
            ns["mv"] = res.view(buf)
        if style == "numpy":
            import numpy as np

            if backend in ("emulated", "kernel-mmap"):
                ns["a"] = buf.ndarray("<u8")
            else:
                ns["a"] = np.ndarray((n,), dtype="<u8", buffer=buf)
        read_stmt, write_stmt = REGION_STYLES[style]
        return stmt_case(write_stmt if write else read_stmt, ns, res.close)
    except BaseException:
        res.close()
        raise


def _cycle_case(backend: str, n: int) -> Prepared:
    vs = 8
    size = n * vs
    if backend == "shared_memory":

        def cycle() -> None:
            s = SharedMemory(create=True, size=size)
            s.close()
            s.unlink()

    else:
        kind = kind_of(backend)

        def cycle() -> None:
            m = ArrayMap(vs, n, flags=BPF_F_MMAPABLE, name="bpfmap_bench", backend=kind)
            r = m.mmap(writable=False)
            m.freeze()
            r.close()
            m.close()

    return stmt_case("cycle()", {"cycle": cycle}, nothing)


# -- references ------------------------------------------------------------------


def _noop_case() -> Prepared:
    return stmt_case("noop()", {"noop": lib.bpfmap_noop}, nothing)


def _noop_attr_case() -> Prepared:
    return stmt_case("lib.bpfmap_noop()", {"lib": lib}, nothing)


def _memcpy_case(nbytes: int) -> Prepared:
    import numpy as np

    src = np.frombuffer(bytes(range(256)) * (nbytes // 256), dtype=np.uint8)
    return stmt_case("src.copy()", {"src": src}, nothing)


# -- the catalogue -----------------------------------------------------------------


def _numpy_missing() -> str | None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "NumPy is not installed (a dependency of bpfmap: pip install numpy)"
    return None


def cases(full: bool = False, kernel_reason: str | None = None) -> list[Case]:
    """Every case of a run; kernel cases carry ``skip`` when ``kernel_reason`` is set."""
    out: list[Case] = []
    no_numpy = _numpy_missing()

    def add(
        group: str,
        op: str,
        backend: str,
        params: dict[str, int],
        setup: Callable[[], Prepared] | None,
        skip: str | None = None,
        note: str = "",
    ) -> None:
        if (
            skip is None
            and kernel_reason
            and kind_of(backend) == "kernel"
            and backend != "reference"
        ):
            skip = f"kernel backend unavailable: {kernel_reason}"
        out.append(Case(group, op, backend, params, None if skip else setup, skip, note))

    add("reference", "noop cffi call", "reference", {}, _noop_attr_case, note="lib.bpfmap_noop()")
    add(
        "reference",
        "memcpy (NumPy copy)",
        "reference",
        {"bytes": 8 << 20},
        partial(_memcpy_case, 8 << 20),
        skip=no_numpy,
    )

    sizes = (8, 64, 512, 4096, 32768) if full else (8, 512, 4096)
    for op in ("lookup", "lookup_into", "update"):
        for vs in sizes if op != "lookup_into" else (8,):
            group = "elements" if vs == ELEMENT_VALUE_SIZE else "value_size"
            for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
                add(group, op, be, {"value_size": vs}, partial(_element_case, op, be, vs))

    for op in ("lookup_batch", "lookup_batch_into", "update_batch"):
        for count in BATCH_SIZES:
            for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
                note = "values only, no keys" if be in ("kernel-mmap", "shared_memory") else ""
                add(
                    "batch",
                    op,
                    be,
                    {"values": count},
                    partial(_batch_case, op, be, count),
                    note=note,
                )

    for style in REGION_STYLES:
        for write in (False, True):
            op = f"region {style} {'write' if write else 'read'}"
            for be in ("emulated", "kernel", "kernel-mmap", "mmap", "shared_memory"):
                skip = None
                if be == "kernel":
                    skip = "the syscall path has no mapping (see kernel-mmap)"
                elif style == "numpy":
                    skip = no_numpy
                add("region", op, be, {}, partial(_region_case, style, write, be), skip=skip)

    entries = (1, 4096, 1 << 20) if not full else (1, 64, 4096, 65536, 1 << 20)
    for n in entries:
        for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
            skip = "the same cycle as kernel (it maps the map)" if be == "kernel-mmap" else None
            note = "create+map+close, no freeze" if be == "shared_memory" else ""
            add(
                "cycle",
                "create+mmap+freeze+close",
                be,
                {"max_entries": n},
                partial(_cycle_case, be, n),
                skip=skip,
                note=note,
            )

    for be in ("emulated", "kernel", "kernel-mmap", "shared_memory"):
        add(
            "stream",
            "writer->reader message",
            be,
            {},
            partial(stream_case, be),
            note="2 processes, 64-slot ring",
        )
    out += peer_cases(kernel_reason)
    out += program_cases(kernel_reason)
    out += dump_cases(full, kernel_reason)
    return out
