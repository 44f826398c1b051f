"""``Program.test_run`` on the emulated backend: the interpreter in the kernel's test-run shape.

The program's instructions are relocated from the ELF (:mod:`bpfmap._relocate`) against the
object's emulated maps and loaded into the interpreter (:mod:`bpfmap._vm`); each program type
gets the context and the argument checks of the kernel's ``bpf_prog_test_run_*`` for it
(net/bpf/test_run.c), probed against the running kernel:

* ``xdp``: ``data`` of at least 14 bytes (``ETH_HLEN``, else ``EINVAL``), run ``repeat``
  times on the same packet; ``r1`` points at a ``struct xdp_md`` whose ``data``/``data_end``
  loads give the packet's bounds. ``ctx``, if given, is that ``xdp_md`` (``data``: bytes of
  metadata, ``data_end``: the end of what the program sees), returned as it was.
* ``syscall``: no ``data``, ``repeat`` 1, a context buffer of at most 65535 bytes that the
  program may read and write, returned as the program left it.
* ``raw_tracepoint``: no ``data``, ``repeat`` 1, at most 12 u64 arguments, read-only.
* ``socket_filter``: ``data`` of 14 to 3712 bytes, an Ethernet frame received on ``lo``:
  IPv4 and IPv6 frames need their whole header (else ``EINVAL``); ``r1`` is a
  ``struct __sk_buff`` (``len`` without the MAC header, ``pkt_type`` and
  ``protocol`` as ``eth_type_trans`` sets them, ``ifindex`` 1); the packet is read with
  ``BPF_ABS``/``BPF_IND`` loads and ``bpf_skb_load_bytes``; the data returned has its MAC
  header zeroed, as the kernel returns it.
"""

from __future__ import annotations

import errno
import re
import struct
import time
from typing import Any

from ._buffers import address_of
from ._relocate import ElfProgram, Relocated, RelocationError
from ._vm import PAST_CTX, READ, REGION_SKB, REGION_XDP_MD, WRITE, Region, Vm

_ETH_HLEN = 14
# The linear part of an XDP test packet: a page minus XDP_PACKET_HEADROOM and the tailroom
# of skb_shared_info. The kernel puts bytes past it in fragments, which are not emulated.
_XDP_LINEAR_MAX = 3520
_XDP_MD = struct.Struct("<6I")  # data, data_end, data_meta, ingress/rx_queue/egress index
_MAX_RAW_TP_ARGS = 12
_SKB_MAX = 3712  # probed: the largest socket-filter test packet on 4 KiB pages
_SK_BUFF_SIZE = 192
_BPF_F_RDONLY_PROG, _BPF_F_MMAPABLE = 1 << 7, 1 << 10
_ENOTSUPP = 524


def _einval(prog: str, why: str) -> OSError:
    return OSError(errno.EINVAL, f"test_run {prog}: {why}")


def elf_program(obj: Any) -> ElfProgram:
    """The object's relocator, made once, from the very bytes libbpf opened."""
    elf = getattr(obj, "_vm_elf", None)
    if elf is None:
        kconfig = obj.sections.get(".kconfig")
        offsets = {n: v.offset for n, v in kconfig.variables.items()} if kconfig else {}
        elf = ElfProgram(obj._image, offsets)
        obj._vm_elf = elf
    return elf


def relocate(obj: Any, name: str) -> Relocated:
    """The program ``name`` relocated (once: relocation is deterministic); RelocationError."""
    cache = obj.__dict__.setdefault("_vm_relocated", {})
    try:
        relocated: Relocated = cache.get(name) or elf_program(obj).relocate(name)
        cache[name] = relocated
    except RelocationError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed file: whatever pyelftools or the
        # relocation arithmetic trips on (struct.error for an immediate out of range, ...)
        raise RelocationError(f"program {name}: the object's code or relocations are "
                              f"malformed ({type(exc).__name__}: {exc})") from None
    return relocated


def load_vm(obj: Any, name: str) -> Vm:
    """The program ``name`` of a loaded emulated object, ready to run against its maps; a
    relocation bpfmap cannot apply is EINVAL, naming the file."""
    try:
        relocated = relocate(obj, name)
    except RelocationError as exc:
        raise _einval(name, f"{obj.path}: cannot relocate it: {exc}") from None
    maps = []
    for key in relocated.maps:
        amap = obj._maps.get(key)
        if amap is None:
            raise OSError(errno.EOPNOTSUPP, f"program {name}: map {key} has no emulated map")
        maps.append(amap)
    try:
        return Vm(relocated.insns, maps, name=name)
    except OSError as exc:  # the C core counts maps; say which
        text = re.sub(r"map (\d+)", lambda m: f"map {relocated.maps[int(m[1])]}",
                      exc.strerror or "")
        raise OSError(exc.errno, text) from None


def check_programs(obj: Any) -> None:
    """What the kernel's load refuses that the interpreter's load sees: unknown opcodes,
    reserved fields, jumps outside the program, writes into ``BPF_F_RDONLY_PROG`` maps
    (EACCES). Helpers and kfuncs this runtime lacks are refused when a run reaches them, so
    that objects with programs it cannot run still load (their data sections are useful)."""
    for name in obj.programs:
        try:
            relocate(obj, name)
        except RelocationError:
            continue  # what bpfmap cannot relocate (ksym externs, ...) stops test_run only
        try:
            load_vm(obj, name).close()
        except OSError as exc:
            raise OSError(exc.errno, f"load {obj.path}: {exc.strerror}") from None


def test_run(prog: Any, data: bytes, ctx: bytes | None, repeat: int) -> tuple[int, int, bytes,
                                                                               bytes]:
    """retval, duration_ns, data, ctx, as the kernel's BPF_PROG_TEST_RUN gives them."""
    kind = prog.type
    if kind == "xdp":
        return _xdp(prog, data, ctx, repeat)
    if kind == "socket_filter":
        return _socket_filter(prog, data, ctx, repeat)
    if kind in ("syscall", "raw_tracepoint"):
        if data:
            raise _einval(prog.name, f"{kind} programs take no data")
        if repeat > 1:
            raise _einval(prog.name, f"{kind} programs run once (repeat 1)")
        return _on_context(prog, kind, ctx)
    raise OSError(_ENOTSUPP, f"test_run {prog.name}: {kind} programs have no test run "
                  "on the emulated backend")


def _xdp(prog: Any, data: bytes, ctx: bytes | None, repeat: int) -> tuple[int, int, bytes,
                                                                          bytes]:
    if len(data) < _ETH_HLEN:
        raise _einval(prog.name, f"an XDP packet has at least {_ETH_HLEN} bytes")
    if len(data) > _XDP_LINEAR_MAX:
        raise ValueError(f"test_run {prog.name}: packets over {_XDP_LINEAR_MAX} bytes (the "
                         "kernel's fragments) are not emulated")
    md = bytearray(_XDP_MD.size)
    meta, linear = 0, len(data)
    if ctx is not None:
        # bpf_prog_test_run_xdp() and xdp_convert_md_to_buff() (probed on 6.18): data is the
        # metadata's length, data_end the end of the linear part (the rest: fragments)
        if len(ctx) < _XDP_MD.size:
            raise OSError(errno.ENOSPC, f"test_run {prog.name}: ctx holds a {_XDP_MD.size}-byte "
                          "struct xdp_md")
        meta, linear, data_meta, ifindex, queue, egress = _XDP_MD.unpack_from(ctx)
        if (len(ctx) > _XDP_MD.size or data_meta or egress or linear > len(data)
                or meta > linear or meta % 4):
            raise _einval(prog.name, "ctx: data_meta and egress_ifindex must be 0, data a "
                          "multiple of 4 up to data_end, data_end up to the size")
        if ifindex not in (0, 1) or queue:
            raise ValueError(f"test_run {prog.name}: only lo's (ifindex 1) queue 0 is emulated")
        md[12:16] = ctx[12:16]
    packet = bytearray(data)
    view = memoryview(packet)
    with load_vm(prog._owner, prog.name) as vm:
        regions = [Region(md, READ, REGION_XDP_MD, view[:linear], meta),
                   Region(view[:linear], READ | WRITE)]
        start = time.perf_counter_ns()
        run = vm.run(address_of(md), regions, repeat=max(repeat, 1))
        elapsed = time.perf_counter_ns() - start
        prog.trace = vm.trace()
    view.release()
    return run.retval & 0xFFFFFFFF, elapsed // max(repeat, 1), bytes(packet), (
        bytes(ctx) if ctx is not None else b"")


def sk_buff(data: bytes) -> bytearray:
    """The ``struct __sk_buff`` a socket filter sees for ``data`` received on ``lo``."""
    skb = bytearray(_SK_BUFF_SIZE)
    dest, proto = data[:6], data[12:14]
    # eth_type_trans(): multicast bit -> PACKET_MULTICAST (lo's broadcast address is zero),
    # lo's own (zero) address -> PACKET_HOST, else PACKET_OTHERHOST
    pkt_type = 2 if dest[0] & 1 else 0 if dest == bytes(6) else 3
    if int.from_bytes(proto, "big") < 0x600:  # an 802.3 length: ETH_P_802_3 or ETH_P_802_2
        proto = (1 if data[14:16] == b"\xff\xff" else 4).to_bytes(2, "big")
    struct.pack_into("<II", skb, 0, len(data) - _ETH_HLEN, pkt_type)
    skb[16:18] = proto  # __be16 in a u32 field
    struct.pack_into("<I", skb, 40, 1)  # ifindex: lo
    return skb


def _socket_filter(prog: Any, data: bytes, ctx: bytes | None, repeat: int
                   ) -> tuple[int, int, bytes, bytes]:
    if not _ETH_HLEN <= len(data) <= _SKB_MAX:
        raise _einval(prog.name, f"a socket filter's packet has {_ETH_HLEN} to {_SKB_MAX} bytes")
    # bpf_prog_test_run_skb() wants the whole network header of IPv4 and IPv6 (probed)
    need = {b"\x08\x00": 20, b"\x86\xdd": 40}.get(bytes(data[12:14]), 0)
    if len(data) - _ETH_HLEN < need:
        raise _einval(prog.name, f"an IPv4/IPv6 frame needs its {need}-byte header")
    if ctx is not None:
        raise ValueError(f"test_run {prog.name}: a __sk_buff ctx is not emulated")
    skb, packet = sk_buff(data), bytes(data)
    with load_vm(prog._owner, prog.name) as vm:
        start = time.perf_counter_ns()
        run = vm.run(address_of(skb), [Region(skb, READ | WRITE, REGION_SKB, packet)],
                     repeat=max(repeat, 1))
        elapsed = time.perf_counter_ns() - start
        prog.trace = vm.trace()
    return (run.retval & 0xFFFFFFFF, elapsed // max(repeat, 1), bytes(_ETH_HLEN) + packet[14:],
            b"")


def _on_context(prog: Any, kind: str, ctx: bytes | None) -> tuple[int, int, bytes, bytes]:
    buf = bytearray(ctx or b"")
    if kind == "raw_tracepoint" and len(buf) > _MAX_RAW_TP_ARGS * 8:
        raise _einval(prog.name, f"a raw tracepoint has at most {_MAX_RAW_TP_ARGS} arguments")
    if kind == "syscall" and len(buf) > 0xFFFF:
        raise _einval(prog.name, "a syscall program's context has at most 65535 bytes")
    flags = READ | (WRITE if kind == "syscall" else 0)
    # The context, then the rest of what the program could address through it: reading
    # there is the kernel's EINVAL (a ctx shorter than the program's max_ctx_offset).
    limit = _MAX_RAW_TP_ARGS * 8 if kind == "raw_tracepoint" else 0xFFFF
    whole = bytearray(limit)
    whole[: len(buf)] = buf
    view = memoryview(whole)
    with load_vm(prog._owner, prog.name) as vm:
        regions = [Region(view[len(buf):], PAST_CTX)]
        if buf:
            regions.append(Region(view[: len(buf)], flags))
        run = vm.run(address_of(whole), regions)
        prog.trace = vm.trace()
        buf[:] = view[: len(buf)]
    view.release()
    out = bytes(buf) if kind == "syscall" else bytes(ctx or b"")
    return run.retval & 0xFFFFFFFF, 0, b"", out if ctx else b""
