"""Random programs that the kernel's verifier accepts, run on the kernel and the interpreter.

A program (a ``syscall`` program, sleepable) is: a prologue that saves the context pointer in
r9, points r8 at the value of a 64-byte one-entry array map (``ld_imm64`` map value), fills
r0-r7 with random 64-bit constants and the stack's 64 bytes under r10 with random words;
a body of random ALU/ALU64 (every operation, K and X, signed division and modulo,
sign-extending moves, byte swaps), JMP/JMP32 (forward only), loads of every width (also
sign-extending), stores and atomics (add/or/and/xor with and without fetch, xchg, cmpxchg) on
the stack and the map value, on r0-r7 only, and bpf-to-bpf calls to a subprogram doing the same
on r0-r5 and its own stack frame; an epilogue that stores r0-r7 into the context.
The run's outcome is the 32-bit ``retval``, the 64 context bytes and the 64 map bytes.

``python -m bpfmap._vm_random --count 100000 --seed 1`` runs a batch and prints each
divergence as a replayable command line (``--seed S --replay HEX``: the instructions in hex).
"""

from __future__ import annotations

import argparse
import errno
import random
import struct
import sys
from typing import NamedTuple

from ._map import ArrayMap

_INSN = struct.Struct("<BBhi")
CTX_SIZE = 64
MAP_VALUE = 64
STACK = 64
BODY = 40

# opcode fields
_ALU, _JMP, _JMP32, _ALU64, _LDX, _ST, _STX = 0x04, 0x05, 0x06, 0x07, 0x01, 0x02, 0x03
_K, _X = 0x00, 0x08
_MEM, _MEMSX, _ATOMIC = 0x60, 0x80, 0xC0
_SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_ALU_OPS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0]
_JMP_OPS = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0]
_CALL_MARK = b"\x85\x10\xff\x7f\x00\x00\x00\x00"  # a call placeholder, patched in generate()
_ATOMIC_OPS = [0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1]


def _i(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return _INSN.pack(code, (src << 4) | dst, off, imm)


def _lddw(dst: int, value: int, src: int = 0) -> bytes:
    return _i(0x18, dst, src, 0, _s32(value & 0xFFFFFFFF)) + _i(0, 0, 0, 0, _s32(value >> 32))


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _imm(rng: random.Random) -> int:
    return _s32(rng.choice([0, 1, -1, 2, 7, 31, 32, 63, 64, 0x7FFFFFFF, -0x80000000,
                            rng.getrandbits(32), rng.getrandbits(8)]))


def _value(rng: random.Random) -> int:
    return rng.choice([0, 1, 2**64 - 1, 2**63, 2**31, 2**32 - 1, rng.getrandbits(64),
                       rng.getrandbits(16), 2**64 - rng.getrandbits(8)])


def _alu(rng: random.Random, regs: int = 8) -> bytes:
    cls = rng.choice([_ALU, _ALU64])
    dst, src = rng.randrange(regs), rng.randrange(regs)
    kind = rng.random()
    if kind < 0.08:  # byte swap: to_le/to_be (ALU), bswap (ALU64)
        return _i(0xD0 | cls | (_X if cls == _ALU and rng.random() < 0.5 else 0), dst, 0, 0,
                  rng.choice([16, 32, 64]))
    if kind < 0.15:  # sign-extending move
        return _i(0xB0 | cls | _X, dst, src, rng.choice([8, 16] + ([32] if cls == _ALU64 else [])))
    op = rng.choice(_ALU_OPS)
    off = 1 if op in (0x30, 0x90) and rng.random() < 0.5 else 0  # sdiv, smod
    if op == 0x80:  # neg
        return _i(cls | op, dst)
    if rng.random() < 0.5:
        imm = _imm(rng)
        if op in (0x60, 0x70, 0xC0):
            imm = rng.randrange(32 if cls == _ALU else 64)
        if op in (0x30, 0x90) and imm == 0:
            imm = 3
        return _i(cls | op | _K, dst, 0, off, imm)
    return _i(cls | op | _X, dst, src, off)


def _mem_target(rng: random.Random, size: int, map_ok: bool = True) -> tuple[int, int]:
    """(base register, offset) of an aligned access: the stack (r10) or the map value (r8)."""
    if not map_ok or rng.random() < 0.5:
        return 10, -size * rng.randrange(1, STACK // size + 1)
    return 8, size * rng.randrange(MAP_VALUE // size)


def _memory(rng: random.Random, regs: int = 8) -> bytes:
    size = rng.choice([1, 2, 4, 8])
    kind = rng.random()
    map_ok = regs == 8  # a subprogram has no r8 (the map value): its stack only
    if kind < 0.35:
        base, off = _mem_target(rng, size, map_ok)
        mode = _MEMSX if size != 8 and rng.random() < 0.3 else _MEM
        return _i(_LDX | mode | _SIZES[size], rng.randrange(regs), base, off)
    if kind < 0.55:
        base, off = _mem_target(rng, size, map_ok)
        return _i(_STX | _MEM | _SIZES[size], base, rng.randrange(regs), off)
    if kind < 0.7:
        base, off = _mem_target(rng, size, map_ok)
        return _i(_ST | _MEM | _SIZES[size], base, 0, off, _imm(rng))
    size = rng.choice([4, 8])
    base, off = _mem_target(rng, size, map_ok)
    return _i(_STX | _ATOMIC | _SIZES[size], base, rng.randrange(regs), off,
              rng.choice(_ATOMIC_OPS))


def _jump(rng: random.Random, left: int, regs: int = 8) -> bytes:
    off = rng.randrange(left + 1)
    if rng.random() < 0.05:  # ja: only +0, or what it skips would be unreachable (refused)
        return _i(_JMP)
    cls = rng.choice([_JMP, _JMP32])
    op = rng.choice(_JMP_OPS)
    if rng.random() < 0.5:
        return _i(cls | op | _K, rng.randrange(regs), 0, off, _imm(rng))
    return _i(cls | op | _X, rng.randrange(regs), rng.randrange(regs), off)


def _ops(rng: random.Random, count: int, regs: int) -> list[bytes]:
    out = []
    for k in range(count):
        kind = rng.random()
        if kind < 0.55:
            out.append(_alu(rng, regs))
        elif kind < 0.85:
            out.append(_memory(rng, regs))
        else:  # forward, within these ops (each one instruction)
            out.append(_jump(rng, count - k - 1, regs))
    return out


def _subprogram(rng: random.Random) -> list[bytes]:
    """A bpf-to-bpf callee: r1-r5 are its arguments, r0 its result, its own 64-byte frame."""
    code = [_i(_ALU64 | 0xB0 | _X, 0, 1), _i(_ALU64 | 0xA0 | _X, 0, 2)]
    code += [_i(_ST | _MEM | _SIZES[8], 10, 0, off, _imm(rng)) for off in range(-STACK, 0, 8)]
    code += _ops(rng, rng.randrange(4, 16), 6)
    return code + [_i(_JMP | 0x90)]


def generate(seed: int, body: int = BODY) -> bytes:
    """One program; map reference 0 is the array map (see :func:`make_map`)."""
    rng = random.Random(seed)
    code = [_i(_ALU64 | 0xB0 | _X, 9, 1)]  # r9 = ctx
    code.append(_lddw(8, 0, src=2))  # r8 = &map[0] (PSEUDO_MAP_VALUE, map 0, offset 0)
    for r in range(8):
        code.append(_lddw(r, _value(rng)))
    for off in range(-STACK, 0, 8):
        code.append(_i(_ST | _MEM | _SIZES[8], 10, 0, off, _imm(rng)))
    ops = _ops(rng, body, 8)
    calls = []  # bpf-to-bpf calls: a call, then r1-r5 set again (the verifier forgets them)
    for _ in range(rng.choice([0, 0, 1, 2])):
        at = rng.randrange(len(ops) + 1)
        ops.insert(at, _CALL_MARK + b"".join(_i(_ALU64 | 0xB0, r, 0, 0, _imm(rng))
                                             for r in range(1, 6)))
    code += ops
    for r in range(8):
        code.append(_i(_STX | _MEM | _SIZES[8], 9, r, r * 8))
    code.append(_i(_JMP | 0x90))  # exit
    flat = b"".join(code)
    if _CALL_MARK in flat:
        sub = len(flat) // 8  # the subprogram goes after the main program
        flat += b"".join(_subprogram(rng))
        calls = [i for i in range(sub) if flat[i * 8 : i * 8 + 8] == _CALL_MARK]
        out = bytearray(flat)
        for i in calls:
            _INSN.pack_into(out, i * 8, _JMP | 0x80, 1 << 4, 0, sub - i - 1)
        flat = bytes(out)
    return flat


def make_map(seed: int, backend: str) -> ArrayMap:
    amap = ArrayMap(MAP_VALUE, 1, backend=backend)
    amap.update(0, random.Random(seed ^ 0x5A5A).randbytes(MAP_VALUE))
    return amap


class Verdict(NamedTuple):
    seed: int
    status: str  # "same", "rejected" (by the verifier), "diverged"
    detail: str


def check(seed: int, body: int = BODY, insns: bytes | None = None) -> Verdict:
    """Run one random program (or ``insns``, replayed: its map filled from ``seed``) on both
    and compare retval, context and map bytes."""
    from ._vm_kernel import run_kernel, run_vm

    if insns is None:
        insns = generate(seed, body)
    ctx = bytes(CTX_SIZE)
    kmap, emap = make_map(seed, "kernel"), make_map(seed, "emulated")
    try:
        try:
            kernel = run_kernel(insns, "syscall", [kmap], ctx=ctx)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EINVAL):
                return Verdict(seed, "rejected", str(exc))
            raise
        try:
            ours = run_vm(insns, "syscall", [emap], ctx=ctx)
        except OSError as exc:
            return Verdict(seed, "diverged", f"the interpreter refused: {exc}")
        if ours != kernel:
            return Verdict(seed, "diverged", f"kernel {kernel}\nvm     {ours}")
        return Verdict(seed, "same", "")
    finally:
        kmap.close()
        emap.close()


def replay_command(seed: int, insns: bytes) -> str:
    """The command line that runs ``insns`` again with the map of ``seed`` (``--replay HEX``)."""
    return f"python -m bpfmap._vm_random --seed {seed} --replay {insns.hex()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bpfmap._vm_random",
                                     description="random programs: kernel vs interpreter")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1, help="first seed (then seed+1, ...)")
    parser.add_argument("--body", type=int, default=BODY, help="instructions per body")
    parser.add_argument("--replay", metavar="HEX", help="run this program (as printed for a "
                        "divergence) with the map of --seed, and print both outcomes")
    args = parser.parse_args(argv)
    if args.replay:
        v = check(args.seed, insns=bytes.fromhex(args.replay))
        print(f"{v.status}{': ' + v.detail if v.detail else ''}")
        return 0 if v.status == "same" else 1
    counts = {"same": 0, "rejected": 0, "diverged": 0}
    for seed in range(args.seed, args.seed + args.count):
        v = check(seed, args.body)
        counts[v.status] += 1
        if v.status == "diverged":
            print(f"seed {seed} diverged: {v.detail}")
            print(f"  replay: {replay_command(seed, generate(seed, args.body))}")
    print(f"{args.count} programs from seed {args.seed}: {counts['same']} same, "
          f"{counts['rejected']} rejected by the verifier, {counts['diverged']} diverged")
    return 1 if counts["diverged"] else 0


if __name__ == "__main__":
    sys.exit(main())
