"""Bindings of the C core's eBPF interpreter (csrc/vm.c): load checked bytecode, run it.

:class:`Vm` holds one program decoded by ``bpfvm_load`` against a table of emulated maps.
Each map's values are mapped for the run: shared and writable where programs may write it
(so a Python region, or another process, sees the program's writes live), read-only where
they may not (``BPF_F_RDONLY_PROG``, or frozen: the emulation seals a frozen map's memfd
against every write). The mappings live as long as the Vm: close it (or use ``with``) so that
the map can be frozen again (a writable mapping makes ``freeze`` ``EBUSY``, as everywhere).

Every refusal is an ``OSError`` with the kernel's errno and the report of the interpreter:
the instruction index and what it did ("insn 7: 8-byte store to 0x... outside any region").
"""

from __future__ import annotations

import mmap as _mmap
import os
import struct
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from ._bindings import ffi, lib
from ._map import ArrayMap

# What a run may execute before it is stopped (E2BIG): the kernel's verifier bounds every
# program; without it, this bounds every run.
DEFAULT_BUDGET = 1 << 24
READ, WRITE, PAST_CTX = 1, 2, 4
REGION_PLAIN, REGION_XDP_MD, REGION_SKB = 0, 1, 2
_BPF_F_RDONLY_PROG = 1 << 7
_EMULATED = 0


class VmRun(NamedTuple):
    """One call of :meth:`Vm.run`: r0 of the last repetition and the instructions executed
    by all of them."""

    retval: int
    executed: int


class Region(NamedTuple):
    """Memory besides the stack and the maps that a run may touch: a writable buffer (or
    bytes, read-only), its permissions, and for ``REGION_XDP_MD``/``REGION_SKB`` the packet it
    describes (for ``REGION_SKB``: its bytes after the 14-byte MAC header, preceded by it)."""

    buffer: Any
    flags: int = READ | WRITE
    kind: int = REGION_PLAIN
    packet: Any = None
    meta: int = 0  # REGION_XDP_MD: bytes of metadata at the packet's start


def vm_error(rc: int, report: Any, what: str) -> OSError:
    msg = ffi.string(report.msg).decode("utf-8", "replace") or os.strerror(-rc)
    return OSError(-rc, f"{what}: {msg}")


class _MapMemory:
    """One map's values, mapped for a Vm."""

    def __init__(self, amap: ArrayMap) -> None:
        h = amap._handle()
        if h.backend != _EMULATED:
            raise ValueError(f"map {amap.name!r}: the interpreter runs on emulated maps only")
        if amap.access != "rw":
            # a read-only or write-only handle: the mapping below could not honour what
            # programs may do to the map (the program side is not bound by the fd's mode)
            raise ValueError(f"map {amap.name!r}: the interpreter needs a read-write handle, "
                             f"not {amap.access!r}")
        self.map = amap
        self.frozen = amap.frozen
        writable = not (amap.flags & _BPF_F_RDONLY_PROG)
        window = int(lib.bpfmap_mmap_window(h))
        self.frozen_writable = self.frozen and writable
        self.writable = writable and not self.frozen
        # Read-only: a private mapping, never written, sees the shared pages and is no
        # writer; writable: shared, so the program's stores reach every other mapping.
        self.mm = _mmap.mmap(
            int(h.fd), window,
            flags=_mmap.MAP_SHARED if self.writable else _mmap.MAP_PRIVATE,
            prot=_mmap.PROT_READ | (_mmap.PROT_WRITE if self.writable else 0),
            offset=int(h.page_size),
        )
        self.buf = ffi.from_buffer(self.mm)
        self.address = int(ffi.cast("uintptr_t", self.buf))

    def close(self) -> None:
        ffi.release(self.buf)
        self.mm.close()


class Vm:
    """A program loaded into the interpreter against ``maps`` (index i answers the map
    references whose ``imm`` is i, as :class:`bpfmap._relocate.Relocated` makes them)."""

    def __init__(self, insns: bytes, maps: Sequence[ArrayMap] = (), *, name: str = "program"
                 ) -> None:
        self._vm: Any = None
        self._mem: list[_MapMemory] = []
        self.name = name
        # The C core releases the GIL: one run at a time (a run's regions and stack live in
        # the Vm), and no close while one runs.
        self._lock = threading.Lock()
        code = bytes(memoryview(insns))
        if not code or len(code) % 8:
            raise ValueError(f"{name}: the instructions must be a non-empty multiple of 8 "
                             f"bytes, not {len(code)}")
        table = ffi.new("struct bpfvm_map[]", max(len(maps), 1))
        try:
            for i, amap in enumerate(maps):
                mem = _MapMemory(amap)
                self._mem.append(mem)
                t = table[i]
                t.fd = i
                t.map_type = 2
                t.key_size = amap.key_size
                t.value_size = amap.value_size
                t.max_entries = amap.max_entries
                t.map_flags = amap.flags
                t.elem_size = mem.map._handle().elem_size
                t.base = ffi.cast("unsigned char *", mem.address)
                t.frozen = mem.frozen_writable
            out = ffi.new("struct bpfvm **")
            report = ffi.new("struct bpfvm_report *")
            rc = lib.bpfvm_load(out, code, len(code) // 8, table, len(maps), report)
            if rc:
                raise vm_error(rc, report, f"load {name}")
        except BaseException:
            self._unmap()
            raise
        self._vm = ffi.gc(out[0], lib.bpfvm_free)
        self._report = report

    def _handle(self) -> Any:
        if self._vm is None:
            raise ValueError(f"{self.name}: operation on a closed Vm")
        return self._vm

    def run(self, arg: int = 0, regions: Sequence[Region] = (), *, repeat: int = 1,
            budget: int = DEFAULT_BUDGET, seed: int | None = None) -> VmRun:
        """Run ``repeat`` times with r1 = ``arg``; ``regions`` adds memory the run may touch
        (a region with ``WRITE`` needs a writable buffer). Each repetition executes at most
        ``budget`` instructions."""
        for what, value, low, bits in (("arg", arg, 0, 64), ("repeat", repeat, 1, 32),
                                       ("budget", budget, 1, 64)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{what} must be an int, not {type(value).__name__}")
            if not low <= value < 2**bits:
                raise ValueError(f"{what} must be in {low}..{2**bits - 1}, got {value}")
        table = ffi.new("struct bpfvm_region[]", max(len(regions), 1))
        keep = []
        for i, region in enumerate(regions):
            try:
                buf = ffi.from_buffer(region.buffer, require_writable=bool(region.flags & WRITE))
            except (TypeError, BufferError):
                raise TypeError(f"region {i}: a {'writable ' if region.flags & WRITE else ''}"
                                f"buffer is needed, not {type(region.buffer).__name__}"
                                ) from None
            keep.append(buf)
            r = table[i]
            r.base = ffi.cast("uintptr_t", buf)
            r.len = len(buf)
            r.flags = region.flags
            r.kind = region.kind
            if region.packet is not None:
                pkt = ffi.from_buffer(region.packet)
                keep.append(pkt)
                start = int(ffi.cast("uintptr_t", pkt))
                r.data = start + (14 if region.kind == REGION_SKB else region.meta)
                r.data_end = start + len(pkt)
                r.data_meta = start
        retval = ffi.new("uint64_t *")
        executed = 0
        with self._lock:
            vm = self._handle()
            if seed is not None:
                lib.bpfvm_set_seed(vm, seed)
            # In slices, so that Ctrl-C (Python's signal handlers) gets through between them.
            while repeat:
                n = min(repeat, 1024)
                rc = lib.bpfvm_run(vm, arg, table, len(regions), budget, n, retval,
                                   self._report)
                executed += int(self._report.executed)
                if rc:
                    raise vm_error(rc, self._report, f"run {self.name}")
                repeat -= n
        return VmRun(int(retval[0]), executed)

    def trace(self, clear: bool = True) -> str:
        """What ``bpf_trace_printk`` wrote so far (and, by default, forget it)."""
        size = ffi.new("uint64_t *")
        with self._lock:
            vm = self._handle()
            raw: bytes = ffi.string(lib.bpfvm_trace_output(vm, size), size[0])
            if clear:
                lib.bpfvm_trace_clear(vm)
        return raw.decode("utf-8", "replace")

    def _unmap(self) -> None:
        for mem in self._mem:
            mem.close()
        self._mem = []

    def close(self) -> None:
        """Free the program and unmap the maps (the maps themselves stay open)."""
        with self._lock:
            if self._vm is not None:
                ffi.release(self._vm)
                self._vm = None
            self._unmap()

    @property
    def closed(self) -> bool:
        return self._vm is None

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte instruction (little-endian, as on x86 and arm64)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
