"""The steps on mappings: mmap, reads and writes, munmap, mprotect, madvise, mremap, MAP_FIXED.

A region keeps a page table of its protections: an access they do not allow
runs in a forked child, whose death by signal is the outcome.
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
from typing import Any

from .._buffers import address_of
from .._map import MapRegion
from .language import JSON, PROTS, Outcome, ScenarioError, capture, encode_bytes
from .libc import MAP_FAILED, MAP_FIXED, MAP_SHARED, libc, plug
from .processes import in_forked_child
from .state import P, Region, SessionState


class RegionSteps(SessionState):
    """The mapping steps, on this session's regions."""

    def _add_region(self, name: str, obj: _mmap.mmap, prot: str) -> None:
        old = self.regions.pop(name, None)
        if old is not None:
            old.obj.close()
        n = max(1, -(-len(obj) // P))
        self.regions[name] = Region(obj, address_of(obj), [prot] * n, [False] * n)

    def op_mmap(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        writable = step.get("writable", True)

        def do() -> JSON:
            r = m.mmap(
                writable=writable,
                shared=step.get("shared", True),
                offset=step.get("offset", 0),
                length=step.get("length"),
            )
            self._add_region(step.get("as", "r"), r, "rw" if writable else "r")
            return {"len": len(r)}

        return capture(do)

    def op_reserve(self, step: dict[str, Any]) -> Outcome:
        def do() -> None:
            obj = _mmap.mmap(-1, step["length"], prot=_mmap.PROT_READ)
            self._add_region(step["as"], obj, "r")

        return capture(do)

    def _range(self, reg: Region, step: dict[str, Any], default_len: int) -> tuple[int, int]:
        off = step.get("offset", 0)
        length = step.get("length", default_len - off)
        if off < 0 or length < 0 or off + length > reg.span:
            raise ValueError("range outside the region")  # never touch memory not ours
        return off, length

    def _allowed(self, reg: Region, off: int, length: int, need: str) -> bool:
        first, last = off // P, (off + max(length, 1) - 1) // P
        return all(
            (p := reg.pages[i]) is not None and need in p for i in range(first, last + 1)
        )

    def op_read(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        try:
            off, length = self._range(reg, step, len(reg.obj))
        except ValueError:
            return {"raise": "ValueError"}
        end = min(off + length, len(reg.obj))

        def get() -> JSON:
            return encode_bytes(reg.obj[off:end])

        if self._allowed(reg, off, end - off, "r"):
            return capture(get)
        return in_forked_child(get)

    def op_write(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        data = bytes.fromhex(step["data"])
        off = step.get("offset", 0)
        obj = reg.obj

        def put() -> None:
            obj[off : off + len(data)] = data

        if off < 0:
            return {"raise": "ValueError"}
        refused = (
            obj.closed  # ValueError
            or (isinstance(obj, MapRegion) and not obj.writable)  # TypeError: read-only
            or isinstance(obj, _mmap.mmap) and not isinstance(obj, MapRegion)  # reserve: RO
            or off + len(data) > len(obj)  # IndexError
        )
        if refused or self._allowed(reg, off, len(data), "w"):
            return capture(put)  # Python refuses before touching memory, or it may write
        return in_forked_child(put)

    def op_close_region(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        return capture(reg.obj.close)

    def _libc_errno(self, rc: int) -> Outcome:
        return {"ok": None} if rc == 0 else {"errno": ctypes.get_errno()}

    def op_munmap(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        try:
            off, length = self._range(reg, step, reg.span)
        except ValueError:
            return {"raise": "ValueError"}
        out = self._libc_errno(libc.munmap(reg.addr + off, length))
        if "ok" in out and length:
            plug(reg.addr + off, length)
            for i in range(off // P, -(-(off + length) // P)):
                reg.pages[i] = None
        return out

    def op_mprotect(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        prot = step["prot"]
        if prot not in PROTS:
            raise ScenarioError(f"unknown prot {prot!r}")
        try:
            off, length = self._range(reg, step, reg.span)
        except ValueError:
            return {"raise": "ValueError"}
        out = self._libc_errno(libc.mprotect(reg.addr + off, length, PROTS[prot]))
        if "ok" in out:
            for i in range(off // P, -(-(off + length) // P)):
                if reg.pages[i] is not None:
                    reg.pages[i] = prot
        return out

    def op_madvise_dontfork(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        try:
            off, length = self._range(reg, step, reg.span)
        except ValueError:
            return {"raise": "ValueError"}

        def do() -> None:
            reg.obj.madvise(_mmap.MADV_DONTFORK, off, length)
            for i in range(off // P, -(-(off + length) // P)):
                reg.dontfork[i] = True

        return capture(do)

    def op_mremap_grow(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        new = step["length"]
        if new <= reg.span:
            return {"raise": "ValueError"}  # grow only
        p = libc.mremap(reg.addr, reg.span, new, 0)  # in place only: never moves
        if p is None or p == MAP_FAILED:
            return {"errno": ctypes.get_errno()}
        libc.mremap(reg.addr, new, reg.span, 0)  # shrinking in place always works
        return {"ok": None}

    def op_mmap_fixed(self, step: dict[str, Any]) -> Outcome:
        """``mmap(MAP_FIXED)`` of a map inside a region, after the API's own checks."""
        from .._bindings import ffi, lib

        m = self._map(step)
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        writable = step.get("writable", False)
        offset = step.get("offset", 0)
        at = step.get("at", 0)
        length = step.get("length", P)
        if at % P or at < 0 or at + length > reg.span or length <= 0:
            return {"raise": "ValueError"}
        h = m._handle()
        fd = ffi.new("int *")
        file_offset = ffi.new("uint64_t *")
        rc = lib.bpfmap_mmap_check(h, bool(writable), True, offset, length, fd, file_offset)
        first, last = at // P, -(-(at + length) // P)
        if rc:
            out: Outcome = {"errno": -rc}
        else:
            prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
            addr = libc.mmap(
                reg.addr + at, length, prot, MAP_SHARED | MAP_FIXED, fd[0], file_offset[0]
            )
            if addr is None or addr == MAP_FAILED:
                out = {"errno": ctypes.get_errno()}
            else:
                for i in range(first, last):
                    reg.pages[i] = "rw" if writable else "r"
                    reg.dontfork[i] = False
                return {"ok": None}
        # A failed MAP_FIXED may or may not have unmapped the range: make it a hole on both.
        plug(reg.addr + at, length)
        for i in range(first, last):
            reg.pages[i] = None
        return out

    # processes ------------------------------------------------------------------
