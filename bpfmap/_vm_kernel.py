"""Raw bytecode in the kernel, for the interpreter's differential tests: ``BPF_PROG_LOAD`` and
``BPF_PROG_TEST_RUN`` through ``bpf()`` itself (no libbpf: a program of a few instructions
needs no object file), and the same program on the interpreter against emulated maps.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Sequence
from typing import NamedTuple

from ._buffers import address_of
from ._map import ArrayMap
from ._vm import READ, REGION_SKB, REGION_XDP_MD, WRITE, Region, Vm

_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
BPF_PROG_LOAD, BPF_PROG_TEST_RUN = 5, 10
PROG_TYPE = {"socket_filter": 1, "xdp": 6, "syscall": 31}
BPF_F_SLEEPABLE = 1 << 4
_ATTR_SIZE = 144
_libc = ctypes.CDLL(None, use_errno=True)
_INSN = struct.Struct("<BBhi")


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(): unknown syscall number on {platform.machine()}")
    rc = int(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr))))
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


class Outcome(NamedTuple):
    """What a run left: r0 (32 bits, as test_run reports it), the context, the packet data and
    every map's bytes."""

    retval: int
    ctx: bytes
    data: bytes
    maps: tuple[bytes, ...]


def with_map_fds(insns: bytes, fds: Sequence[int]) -> bytes:
    """The instructions with each map reference's index (ld_imm64 src 1 or 2) made an fd."""
    out = bytearray(insns)
    i = 0
    while i < len(out) // 8:
        op, regs, off, imm = _INSN.unpack_from(out, i * 8)
        if op == 0x18:
            if regs >> 4 in (1, 2):
                _INSN.pack_into(out, i * 8, op, regs, off, fds[imm])
            i += 2
            continue
        i += 1
    return bytes(out)


class KernelProgram:
    """A raw program loaded into the kernel (close it, or use ``with``)."""

    def __init__(self, insns: bytes, prog_type: str, maps: Sequence[ArrayMap] = ()) -> None:
        code = with_map_fds(insns, [m.fd for m in maps])
        try:
            self.fd = self._load(code, prog_type, 0)
        except OSError:  # again with the verifier's log, for the message
            self.fd = self._load(code, prog_type, 1)
        self.type = prog_type

    @staticmethod
    def _load(code: bytes, prog_type: str, log_level: int) -> int:
        log = ctypes.create_string_buffer((1 << 20) if log_level else 1)
        lic = ctypes.create_string_buffer(b"GPL")
        buf = ctypes.create_string_buffer(code, len(code))
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        flags = BPF_F_SLEEPABLE if prog_type == "syscall" else 0
        struct.pack_into("<IIQQIIQII", attr, 0, PROG_TYPE[prog_type], len(code) // 8,
                         ctypes.addressof(buf), ctypes.addressof(lic), log_level,
                         len(log) if log_level else 0, ctypes.addressof(log) if log_level else 0,
                         0, flags)
        try:
            return _bpf(BPF_PROG_LOAD, attr)
        except OSError as exc:
            text = log.value.decode("utf-8", "replace").strip().splitlines()
            raise OSError(exc.errno, f"BPF_PROG_LOAD: {exc.strerror}: "
                          + " | ".join(text[-3:])) from None

    def test_run(self, data: bytes = b"", ctx: bytes | None = None, repeat: int = 0
                 ) -> tuple[int, int, bytes, bytes]:
        """retval, duration, data out, ctx out (in place for syscall programs)."""
        din = ctypes.create_string_buffer(data, max(len(data), 1))
        dout = ctypes.create_string_buffer(max(len(data) + 256, 1))
        cin = ctypes.create_string_buffer(ctx or b"", max(len(ctx or b""), 1))
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into("<IIIIQQIIIIQQ", attr, 0, self.fd, 0, len(data),
                         len(dout) if data else 0,
                         ctypes.addressof(din) if data else 0,
                         ctypes.addressof(dout) if data else 0, repeat, 0,
                         len(ctx or b""), 0, ctypes.addressof(cin) if ctx else 0, 0)
        _bpf(BPF_PROG_TEST_RUN, attr)
        retval, _, size_out = struct.unpack_from("<III", attr, 4)
        duration = struct.unpack_from("<I", attr, 36)[0]
        return retval, duration, dout.raw[:size_out] if data else b"", cin.raw[:len(ctx or b"")]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> KernelProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_kernel(insns: bytes, prog_type: str, maps: Sequence[ArrayMap], data: bytes = b"",
               ctx: bytes | None = None) -> Outcome:
    with KernelProgram(insns, prog_type, maps) as prog:
        retval, _, dout, cout = prog.test_run(data, ctx)
    return Outcome(retval, cout, dout, tuple(_map_bytes(m) for m in maps))


def run_vm(insns: bytes, prog_type: str, maps: Sequence[ArrayMap], data: bytes = b"",
           ctx: bytes | None = None, budget: int = 1 << 24) -> Outcome:
    """The same run on the interpreter (``syscall``: ctx read-write; ``xdp``: the packet)."""
    ctx_buf = bytearray(ctx or b"")
    packet = bytearray(data)
    md = bytearray(24)
    with Vm(insns, maps, name="program") as vm:
        if prog_type == "xdp":
            regions = [Region(md, READ, REGION_XDP_MD, packet), Region(packet, READ | WRITE)]
            arg = address_of(md)
        elif prog_type == "socket_filter":
            from ._vm_run import sk_buff

            skb = sk_buff(bytes(data))
            regions = [Region(skb, READ | WRITE, REGION_SKB, bytes(data))]
            arg = address_of(skb)
            packet[:14] = bytes(14)  # the kernel returns the frame with its MAC header zeroed
        else:
            regions = [Region(ctx_buf, READ | WRITE)] if ctx_buf else []
            arg = address_of(ctx_buf) if ctx_buf else 0
        run = vm.run(arg, regions, budget=budget)
    return Outcome(run.retval & 0xFFFFFFFF, bytes(ctx_buf), bytes(packet),
                   tuple(_map_bytes(m) for m in maps))


def _map_bytes(amap: ArrayMap) -> bytes:
    return b"".join(amap.lookup(i) for i in range(amap.max_entries))
