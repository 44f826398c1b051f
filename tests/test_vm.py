"""The interpreter, instruction by instruction, against the kernel: each program stores what it
computed into its context (a ``syscall`` program), and the kernel's run and the interpreter's
must leave the same retval, context and map bytes. Then every refusal of the interpreter:
what the kernel's verifier refuses at load, and what only a run can see."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest
from conftest import require_kernel

from bpfmap import ArrayMap
from bpfmap._vm import READ, WRITE, Region, Vm, insn
from bpfmap._vm_kernel import KernelProgram, run_kernel, run_vm

ALU, JMP, JMP32, ALU64, LDX, ST, STX = 0x04, 0x05, 0x06, 0x07, 0x01, 0x02, 0x03
K, X = 0x00, 0x08
B, H, W, DW = 0x10, 0x08, 0x00, 0x18
MEM, MEMSX, ATOMIC = 0x60, 0x80, 0xC0
EXIT = insn(JMP | 0x90)


def lddw(dst: int, value: int, src: int = 0) -> bytes:
    lo, hi = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
    return insn(0x18, dst, src, 0, struct.unpack("<i", struct.pack("<I", lo))[0]) + insn(
        0, imm=struct.unpack("<i", struct.pack("<I", hi))[0])


def program(*body: bytes, regs: tuple[int, ...] = (0, 1, 2, 3)) -> bytes:
    """r9 = ctx; r0-r3 = 0; body; ctx[8*i] = r_i for i in regs; exit."""
    out = insn(ALU64 | 0xB0 | X, 9, 1) + b"".join(insn(ALU64 | 0xB0, r) for r in range(4))
    out += b"".join(body)
    for r in regs:
        out += insn(STX | MEM | DW, 9, r, 8 * r)
    return out + EXIT


A, C = 0x8000_0000_0000_0005, 0xFFFF_FFFF_FFFF_FFFD  # a big positive, a small negative


def alu_cases() -> list[tuple[str, bytes]]:
    cases = []
    names = {0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and",
             0x60: "lsh", 0x70: "rsh", 0x90: "mod", 0xA0: "xor", 0xB0: "mov", 0xC0: "arsh"}
    for cls, width in ((ALU64, 64), (ALU, 32)):
        for op, name in names.items():
            for b in (7, 0, C, 63, 0x1_0000_0003):
                init = lddw(0, A) + lddw(1, C) + lddw(2, b)
                cases.append((f"{name}{width}_x_{b:#x}", init + insn(cls | op | X, 1, 2)))
                if op in (0x60, 0x70, 0xC0):
                    imm = b & (width - 1)
                elif op in (0x30, 0x90) and b == 0:
                    continue  # a zero immediate divisor: refused at load (tested below)
                else:
                    imm = struct.unpack("<i", struct.pack("<I", b & 0xFFFFFFFF))[0]
                cases.append((f"{name}{width}_k_{b:#x}", init + insn(cls | op | K, 1, 0, 0, imm)))
            if op in (0x30, 0x90):  # signed division and modulo (off 1), -1 and 0 included
                for b in (7, 0, C, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF):
                    init = lddw(1, 0x8000_0000_0000_0000 if width == 64 else 0x8000_0000)
                    cases.append((f"s{name}{width}_x_{b:#x}",
                                  init + lddw(2, b) + insn(cls | op | X, 1, 2, 1)))
        cases.append((f"neg{width}", lddw(1, A) + insn(cls | 0x80, 1)))
        for off in (8, 16, 32) if width == 64 else (8, 16):
            cases.append((f"movsx{width}_{off}", lddw(2, 0x1234_5678_9ABC_DEF0)
                          + insn(cls | 0xB0 | X, 1, 2, off)))
    for imm in (16, 32, 64):
        init = lddw(1, 0x0102_0304_0506_0708)
        cases.append((f"le{imm}", init + insn(ALU | 0xD0, 1, 0, 0, imm)))
        cases.append((f"be{imm}", init + insn(ALU | 0xD0 | X, 1, 0, 0, imm)))
        cases.append((f"bswap{imm}", init + insn(ALU64 | 0xD0, 1, 0, 0, imm)))
    return cases


def jmp_cases() -> list[tuple[str, bytes]]:
    cases = []
    ops = {0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset", 0x50: "jne", 0x60: "jsgt",
           0x70: "jsge", 0xA0: "jlt", 0xB0: "jle", 0xC0: "jslt", 0xD0: "jsle"}
    for cls, width in ((JMP, 64), (JMP32, 32)):
        for op, name in ops.items():
            for a, b in ((5, 5), (C, 5), (5, C), (0x1_0000_0005, 5)):
                body = lddw(1, a) + lddw(2, b) + insn(ALU64 | 0xB0, 0, 0, 0, 1)
                taken = insn(ALU64 | 0xB0, 0, 0, 0, 2)
                cases.append((f"{name}{width}_x_{a:#x}_{b:#x}",
                              body + insn(cls | op | X, 1, 2, 1) + insn(JMP) + taken))
                imm = struct.unpack("<i", struct.pack("<I", b & 0xFFFFFFFF))[0]
                cases.append((f"{name}{width}_k_{a:#x}_{b:#x}",
                              body + insn(cls | op | K, 1, 0, 1, imm) + insn(JMP) + taken))
    # gotol: JMP32 ja with the offset in imm
    cases.append(("gotol", insn(ALU64 | 0xB0, 0, 0, 0, 1) + insn(JMP | 0x10, 0, 0, 1, 1)
                  + insn(JMP32, imm=1) + insn(ALU64 | 0xB0, 0, 0, 0, 3)
                  + insn(ALU64 | 0xB0, 1, 0, 0, 4)))
    return cases


def mem_cases() -> list[tuple[str, bytes]]:
    cases = []
    init = lddw(1, 0x8182_8384_8586_8788) + insn(STX | MEM | DW, 10, 1, -8)
    for size, name in ((B, "b"), (H, "h"), (W, "w"), (DW, "dw")):
        cases.append((f"ldx_{name}", init + insn(LDX | MEM | size, 2, 10, -8)))
        cases.append((f"st_{name}", init + insn(ST | MEM | size, 10, 0, -8, -2)
                      + insn(LDX | MEM | DW, 2, 10, -8)))
        cases.append((f"stx_{name}", init + lddw(3, C) + insn(STX | MEM | size, 10, 3, -8)
                      + insn(LDX | MEM | DW, 2, 10, -8)))
        if size != DW:
            cases.append((f"ldsx_{name}", init + insn(LDX | MEMSX | size, 2, 10, -8)))
    for size, name in ((W, "w"), (DW, "dw")):
        for op in (0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1):
            cases.append((f"atomic_{name}_{op:#x}", init + lddw(2, 0x0F0F_0000_F0F0_0001)
                          + lddw(0, 0x8586_8788 if size == W else 0x8182_8384_8586_8788)
                          + insn(STX | ATOMIC | size, 10, 2, -8, op)
                          + insn(LDX | MEM | DW, 3, 10, -8)))
    return cases


def call_cases() -> list[tuple[str, bytes]]:
    # bpf-to-bpf: the callee gets its own frame and r10; r6-r9 come back; r0 is its result
    callee = (insn(ST | MEM | DW, 10, 0, -8, 11) + insn(LDX | MEM | DW, 0, 10, -8)
              + insn(ALU64 | 0x00 | X, 0, 1) + insn(ALU64 | 0xB0, 6, 0, 0, 99) + EXIT)
    main = (insn(ALU64 | 0xB0, 6, 0, 0, 5) + insn(ALU64 | 0xB0, 1, 0, 0, 30)
            + insn(ST | MEM | DW, 10, 0, -8, 7) + insn(JMP | 0x80, 0, 1, 0, 0))
    # the call's imm is patched in test_calls (it depends on the program's length)
    after = insn(LDX | MEM | DW, 2, 10, -8) + insn(ALU64 | 0xB0 | X, 3, 6)
    return [("call", main + after), ("callee", callee)]


CASES = alu_cases() + jmp_cases() + mem_cases()


@pytest.mark.parametrize("body", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_instruction_like_the_kernel(body: bytes) -> None:
    require_kernel()
    prog = program(body)
    assert run_vm(prog, "syscall", [], ctx=bytes(32)) == run_kernel(prog, "syscall", [],
                                                                     ctx=bytes(32))


def test_calls_like_the_kernel() -> None:
    require_kernel()
    (_, main), (_, callee) = call_cases()
    # after the call: r2 = the caller's stack slot, r3 = r6 (callee-saved); r1-r5 are the
    # callee's scratch registers, which the verifier forbids reading after a call
    body = bytearray(insn(ALU64 | 0xB0 | X, 9, 1) + main)
    call_at = next(i for i in range(len(body) // 8) if body[i * 8] == JMP | 0x80)
    body += b"".join(insn(STX | MEM | DW, 9, r, 8 * r) for r in (0, 2, 3)) + EXIT
    struct.pack_into("<i", body, call_at * 8 + 4, len(body) // 8 - call_at - 1)
    prog = bytes(body) + callee
    ours = run_vm(prog, "syscall", [], ctx=bytes(32))
    assert ours == run_kernel(prog, "syscall", [], ctx=bytes(32))
    assert struct.unpack("<4q", ours.ctx) == (41, 0, 7, 5)


def map_program() -> bytes:
    """map value pseudo-load, map lookup (a hit and a miss), update, delete, atomics."""
    return program(
        lddw(6, 0, src=2),  # r6 = &value of map 0, element 0
        insn(ST | MEM | W, 6, 0, 8, 77),
        insn(ST | MEM | W, 10, 0, -4, 1),  # key 1
        lddw(1, 0, src=1), insn(ALU64 | 0xB0 | X, 2, 10), insn(ALU64 | 0x00 | K, 2, 0, 0, -4),
        insn(JMP | 0x80, imm=1),  # map_lookup_elem(map, &1): NULL (one entry)

        insn(ST | MEM | W, 10, 0, -4, 0), insn(ST | MEM | DW, 10, 0, -16, 5),
        insn(ST | MEM | DW, 10, 0, -24, 6),
        lddw(1, 0, src=1), insn(ALU64 | 0xB0 | X, 2, 10), insn(ALU64 | 0x00 | K, 2, 0, 0, -4),
        insn(ALU64 | 0xB0 | X, 3, 10), insn(ALU64 | 0x00 | K, 3, 0, 0, -24),
        insn(ALU64 | 0xB0, 4, 0, 0, 0),
        insn(JMP | 0x80, imm=2),  # map_update_elem(map, &0, &{6, 5}, BPF_ANY): 0
        insn(ALU64 | 0xB0 | X, 8, 0),
        lddw(1, 0, src=1), insn(ALU64 | 0xB0 | X, 2, 10), insn(ALU64 | 0x00 | K, 2, 0, 0, -4),
        insn(ALU64 | 0xB0 | X, 3, 10), insn(ALU64 | 0x00 | K, 3, 0, 0, -24),
        insn(ALU64 | 0xB0, 4, 0, 0, 1),
        insn(JMP | 0x80, imm=2),  # BPF_NOEXIST on an array: -EEXIST
        insn(ALU64 | 0xB0 | X, 6, 0),
        lddw(1, 0, src=1), insn(ALU64 | 0xB0 | X, 2, 10), insn(ALU64 | 0x00 | K, 2, 0, 0, -4),
        insn(JMP | 0x80, imm=3),  # map_delete_elem: -EINVAL
        insn(ALU64 | 0xB0 | X, 7, 0),
        lddw(1, 0, src=1), insn(ALU64 | 0xB0 | X, 2, 10), insn(ALU64 | 0x00 | K, 2, 0, 0, -4),
        insn(JMP | 0x80, imm=1),
        insn(JMP | 0x10 | K, 0, 0, 2, 0),
        insn(ALU64 | 0xB0, 1, 0, 0, 3), insn(STX | ATOMIC | DW, 0, 1, 0, 0x01),
        insn(ALU64 | 0xB0 | X, 1, 8), insn(ALU64 | 0xB0 | X, 2, 7), insn(ALU64 | 0xB0 | X, 3, 6),
        insn(ALU64 | 0xB0, 0, 0, 0, 0),
    )


@pytest.mark.parametrize("backend_value", [16, 12])
def test_map_helpers_like_the_kernel(backend_value: int) -> None:
    require_kernel()
    kmap = ArrayMap(backend_value, 1, backend="kernel")
    emap = ArrayMap(backend_value, 1)
    for m in (kmap, emap):
        m.update(0, bytes(range(backend_value)))
    with kmap, emap:
        prog = map_program()
        ours = run_vm(prog, "syscall", [emap], ctx=bytes(32))
        assert ours == run_kernel(prog, "syscall", [kmap], ctx=bytes(32))
        assert struct.unpack("<4q", ours.ctx)[2:] == (-errno.EINVAL, -errno.EEXIST)


def test_program_writes_land_in_shared_memory() -> None:
    with ArrayMap(8, 1, flags=0x400) as m:
        region = m.mmap()
        prog = program(lddw(6, 0, src=2), insn(ST | MEM | DW, 6, 0, 0, 1234), regs=())
        run_vm(prog, "syscall", [m], ctx=bytes(8))
        assert region[:8] == struct.pack("<q", 1234)
        region[:8] = struct.pack("<q", 99)  # and Python's writes reach the program
        prog2 = program(lddw(6, 0, src=2), insn(LDX | MEM | DW, 0, 6, 0), regs=(0,))
        assert struct.unpack("<q", run_vm(prog2, "syscall", [m], ctx=bytes(8)).ctx) == (99,)
        region.close()


# -- refusals -------------------------------------------------------------------------------


def load_error(code: bytes, maps: list[ArrayMap] | None = None) -> OSError:
    with pytest.raises(OSError) as info:
        Vm(code, maps or []).close()
    return info.value


@pytest.mark.parametrize("code, err, text", [
    (insn(0xFF) + EXIT, errno.EINVAL, "insn 0: unknown opcode"),
    (insn(ALU64 | 0xB0, 11, 0, 0, 1) + EXIT, errno.EINVAL, "invalid register r11"),
    (insn(ALU64 | 0xB0, 10, 0, 0, 1) + EXIT, errno.EACCES, "frame pointer"),
    (insn(JMP, off=5) + EXIT, errno.EINVAL, "jump to 6, outside"),
    (insn(JMP, off=-2) + EXIT, errno.EINVAL, "jump to -1, outside"),
    (insn(ALU64 | 0xB0, 0, 0, 0, 1), errno.EINVAL, "falls off the end"),
    (insn(ALU64 | 0x30, 0, 0, 0, 0) + EXIT, errno.EINVAL, "divides by zero"),
    (insn(ALU64 | 0x60, 0, 0, 0, 64) + EXIT, errno.EINVAL, "shifts by an invalid amount"),
    (insn(JMP | 0x80, imm=9999) + EXIT, errno.EINVAL, "unknown helper"),
    (insn(0x18, 0), errno.EINVAL, "missing its second half"),
    (lddw(0, 1) + insn(JMP, off=-2) + EXIT, errno.EINVAL, "into an ld_imm64"),
    (lddw(0, 0, src=1) + EXIT, errno.EBADF, "not in the map table"),
    (insn(0x38) + EXIT, errno.EINVAL, "reserved fields"),  # BPF_LD|BPF_ABS|BPF_DW
    (insn(0x20, 1) + EXIT, errno.EINVAL, "reserved fields"),  # BPF_ABS into r1
    (insn(0x20, 0, 2) + EXIT, errno.EINVAL, "reserved fields"),  # BPF_ABS with a source
    (insn(0x60) + EXIT, errno.EINVAL, "unknown opcode"),  # BPF_LD|BPF_MEM
    (insn(JMP | 0x80, 0, 3, 0, 0) + EXIT, errno.EINVAL, "reserved fields"),
])
def test_load_refusals(code: bytes, err: int, text: str) -> None:
    exc = load_error(code)
    assert exc.errno == err and text in str(exc)


@pytest.mark.parametrize("body, err, text", [
    (insn(LDX | MEM | DW, 0, 10, 0), errno.EACCES, "insn 0: 8-byte load from"),
    (insn(ST | MEM | B, 10, 0, -513, 1), errno.EACCES, "insn 0: 1-byte store to"),
    (lddw(1, 0x1000) + insn(LDX | MEM | W, 0, 1, 0), errno.EACCES, "outside any region"),
    (insn(LDX | MEM | DW, 0, 1, 4), errno.EACCES, "crossing the end of a region"),
    (insn(STX | ATOMIC | DW, 10, 1, -12, 0), errno.EACCES, "misaligned 8-byte atomic"),
    (insn(JMP, off=-1), errno.E2BIG, "budget of 1000"),
    (insn(JMP | 0x80, imm=200), errno.EINVAL, "helper #200, which the emulated backend"),
    (insn(JMP | 0x80, 0, 2, 0, 0), errno.EINVAL, "kfunc"),
])
def test_run_refusals(body: bytes, err: int, text: str) -> None:
    ctx = bytearray(8)
    from bpfmap._core import ffi

    with Vm(body + EXIT) as vm, pytest.raises(OSError) as info:
        vm.run(int(ffi.cast("uintptr_t", ffi.from_buffer(ctx))), [Region(ctx, READ | WRITE)],
               budget=1000)
    assert info.value.errno == err and text in str(info.value)


def test_call_depth_limit() -> None:
    # a function calling itself: the ninth frame is refused, as MAX_CALL_FRAMES
    code = insn(JMP | 0x80, 0, 1, 0, -1) + EXIT
    with Vm(insn(ALU64 | 0xB0, 0, 0, 0, 0) + code) as vm, pytest.raises(OSError) as info:
        vm.run()
    assert info.value.errno == errno.E2BIG and "limit of 8 frames" in str(info.value)


def test_map_value_padding_and_readonly_maps() -> None:
    with ArrayMap(12, 2) as m, ArrayMap(8, 1, flags=1 << 7) as ro:
        lookup = (insn(ST | MEM | W, 10, 0, -4, 0) + lddw(1, 0, src=1)
                  + insn(ALU64 | 0xB0 | X, 2, 10) + insn(ALU64 | 0x00 | K, 2, 0, 0, -4)
                  + insn(JMP | 0x80, imm=1) + insn(JMP | 0x10, 0, 0, 1, 0))
        # bytes 12..15 of element 0 are the stride's padding: not the program's
        with Vm(lookup + insn(LDX | MEM | W, 1, 0, 12) + EXIT, [m]) as vm, pytest.raises(
            PermissionError, match="outside the value of a map element"
        ):
            vm.run()
        # a write the load-time check cannot follow (through the stack) is refused at run time
        sneaky = (lddw(1, 0, src=2) + insn(STX | MEM | DW, 10, 1, -8)
                  + insn(LDX | MEM | DW, 2, 10, -8) + insn(ST | MEM | DW, 2, 0, 0, 1)
                  + insn(ALU64 | 0xB0, 0, 0, 0, 0) + EXIT)
        with Vm(sneaky, [ro]) as vm, pytest.raises(PermissionError, match="read-only"):
            vm.run()
        direct = lddw(1, 0, src=2) + insn(ST | MEM | DW, 1, 0, 0, 1) + EXIT
        assert load_error(direct, [ro]).errno == errno.EACCES
        update = (lddw(1, 0, src=1) + insn(JMP | 0x80, imm=2) + EXIT)
        assert "write into map forbidden" in str(load_error(update, [ro]))


def test_frozen_map_write_is_refused_clearly() -> None:
    # Known difference: the emulation seals a frozen map against every write.
    with ArrayMap(8, 1) as m:
        m.freeze()
        prog = lddw(1, 0, src=2) + insn(ST | MEM | DW, 1, 0, 0, 1) + EXIT
        with Vm(prog, [m]) as vm, pytest.raises(PermissionError, match="frozen map"):
            vm.run()
        read = lddw(1, 0, src=2) + insn(LDX | MEM | DW, 0, 1, 0) + EXIT
        with Vm(read, [m]) as vm:
            assert vm.run().retval == 0


def test_helpers_and_trace() -> None:
    import os

    fmt = b"n=%d x=%x s=%s\0"
    words = fmt + bytes(-len(fmt) % 8)
    store = b"".join(insn(ST | MEM | W, 10, 0, -len(words) + i, struct.unpack_from("<i", words,
                                                                                    i)[0])
                     for i in range(0, len(words), 4))
    s = b"ok\0\0\0\0\0\0"
    store += insn(ST | MEM | W, 10, 0, -len(words) - 8, struct.unpack_from("<i", s)[0])
    store += insn(ST | MEM | W, 10, 0, -len(words) - 4, 0)
    code = (store + insn(ALU64 | 0xB0 | X, 1, 10) + insn(ALU64 | 0x00 | K, 1, 0, 0, -len(words))
            + insn(ALU64 | 0xB0, 2, 0, 0, len(fmt)) + insn(ALU64 | 0xB0, 3, 0, 0, -5)
            + insn(ALU64 | 0xB0, 4, 0, 0, 255) + insn(ALU64 | 0xB0 | X, 5, 10)
            + insn(ALU64 | 0x00 | K, 5, 0, 0, -len(words) - 8)
            + insn(JMP | 0x80, imm=6) + insn(ALU64 | 0xB0 | X, 6, 0)
            + insn(JMP | 0x80, imm=14) + EXIT)
    with Vm(code) as vm:
        assert vm.run().retval == os.getpid() << 32 | os.getpid()
        assert vm.trace() == "n=-5 x=ff s=ok"
        assert vm.trace() == ""
    for helper in (5, 7, 8, 15, 125):
        with Vm(insn(JMP | 0x80, imm=helper) + EXIT) as vm:
            vm.run()


def test_kernel_program_refusal_is_readable() -> None:
    require_kernel()
    with pytest.raises(OSError) as info:
        KernelProgram(insn(LDX | MEM | DW, 0, 10, 0) + EXIT, "syscall")
    assert info.value.errno == errno.EACCES and "invalid read from stack" in str(info.value)


def test_vm_misuse() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        Vm(b"\0" * 7)
    vm = Vm(insn(ALU64 | 0xB0, 0, 0, 0, 3) + EXIT)
    assert vm.run().retval == 3 and vm.run(repeat=5).executed == 10
    with pytest.raises(ValueError, match="repeat"):
        vm.run(repeat=0)
    vm.close()
    vm.close()
    with pytest.raises(ValueError, match="closed"):
        vm.run()
    m = ArrayMap(8, 1)
    m.close()
    with pytest.raises(ValueError):
        Vm(EXIT, [m])
    with ArrayMap(8, 1) as m:
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vm-ro-{os.getpid()}"
        m.pin(path)
        try:
            with ArrayMap.open_pinned(path, readonly=True) as ro, pytest.raises(
                ValueError, match="read-write handle"
            ):
                Vm(EXIT, [ro])
        finally:
            path.unlink()


def test_region_and_argument_checks() -> None:
    with Vm(insn(ST | MEM | DW, 1, 0, 0, 5) + insn(ALU64 | 0xB0, 0, 0, 0, 0) + EXIT) as vm:
        with pytest.raises(TypeError, match="writable buffer"):
            vm.run(0, [Region(b"12345678", READ | WRITE)])
        with pytest.raises(ValueError, match="arg"):
            vm.run(-1)
        with pytest.raises(TypeError, match="budget"):
            vm.run(0, budget=1.5)  # type: ignore[arg-type]
        data = b"12345678"
        from bpfmap._core import ffi

        ro = ffi.from_buffer(data)
        with pytest.raises(PermissionError, match="read-only region"):
            vm.run(int(ffi.cast("uintptr_t", ro)), [Region(data, READ)])
        assert data == b"12345678"


def test_threads_share_a_vm_safely() -> None:
    import threading

    loop = insn(ALU64 | 0xB0, 2, 0, 0, 2000) + insn(ALU64 | 0x17, 2, 0, 0, 1) + insn(
        JMP | 0x50, 2, 0, -2, 0) + insn(ALU64 | 0xB0, 0, 0, 0, 9) + EXIT
    vm = Vm(loop)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(50):
                results.append(vm.run(repeat=3).retval)
        except ValueError as exc:  # closed under it: refused, not a crash
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    vm.close()
    for t in threads:
        t.join()
    assert set(results) <= {9} and all("closed" in str(e) for e in errors)


# -- socket filters: __sk_buff fields, BPF_ABS/BPF_IND, bpf_skb_load_bytes ---------------------

FRAMES = [
    bytes(range(1, 61)),  # multicast destination (01:...), protocol 0x0d0e
    bytes(6) + bytes(range(6)) + b"\x08\x00" + bytes(range(100, 146)),  # to lo's address
    b"\x02" + bytes(11) + b"\x00\x30" + b"\xff\xff" + bytes(30),  # 802.3 length, raw
    b"\x02" + bytes(11) + b"\x00\x30" + b"\xaa\xaa" + bytes(3),  # 802.3 length, LLC
    bytes(14),  # a MAC header only
]
R6 = insn(ALU64 | 0xB0 | X, 6, 1)
SKB_CASES = {
    **{f"field_{off}": insn(LDX | MEM | W, 0, 6, off)
       for off in (0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 64, 68, 84, 176)},
    "narrow_len": insn(LDX | MEM | B, 0, 6, 1),
    "narrow_proto": insn(LDX | MEM | H, 0, 6, 16),
    "cb_dw": insn(ST | MEM | DW, 6, 0, 56, -3) + insn(LDX | MEM | DW, 0, 6, 56),
    **{f"abs_{size}_{k}": insn(0x20 | code, 0, 0, 0, k)
       for size, code in (("w", 0x00), ("h", 0x08), ("b", 0x10))
       for k in (0, 1, 2, 30, 43, 44, 45, 46, 200, -0x100000, -0x100000 + 2, -0x200000,
                 -0x200000 + 12, -0x200000 + 58, -1, -0x300000)},
    "ind": insn(ALU64 | 0xB0, 7, 0, 0, 3) + insn(0x48, 0, 7, 0, 5),
    "ind_negative": insn(ALU64 | 0xB0, 7, 0, 0, -10) + insn(0x50, 0, 7, 0, 2),
    "abs_then_more": insn(0x30, 0, 0, 0, 0) + insn(ALU64 | 0xB0 | X, 7, 0)
    + insn(0x30, 0, 0, 0, 1) + insn(ALU64 | 0x00 | X, 0, 7),
    **{f"load_bytes_{off}_{n}": insn(ALU64 | 0xB0 | X, 1, 6) + insn(ALU64 | 0xB0, 2, 0, 0, off)
       + insn(ALU64 | 0xB0 | X, 3, 10) + insn(ALU64 | 0x00 | K, 3, 0, 0, -8)
       + insn(ALU64 | 0xB0, 4, 0, 0, n) + insn(JMP | 0x80, imm=26) + insn(ALU64 | 0xB0 | X, 7, 0)
       + insn(LDX | MEM | DW, 0, 10, -8) + insn(ALU64 | 0x00 | X, 0, 7)
       for off, n in ((0, 8), (2, 4), (40, 6), (41, 6), (-1, 2))},
}


@pytest.mark.parametrize("frame", range(len(FRAMES)))
@pytest.mark.parametrize("body", list(SKB_CASES.values()), ids=list(SKB_CASES))
def test_socket_filter_like_the_kernel(body: bytes, frame: int) -> None:
    require_kernel()
    prog = R6 + insn(ST | MEM | DW, 10, 0, -8, 0) + body + EXIT
    data = FRAMES[frame]
    assert run_vm(prog, "socket_filter", [], data=data) == run_kernel(prog, "socket_filter",
                                                                      [], data=data)


def test_socket_filter_fields_it_may_not_touch() -> None:
    require_kernel()
    for body in (insn(ST | MEM | W, 6, 0, 8, 5), insn(LDX | MEM | W, 0, 6, 76),
                 insn(LDX | MEM | W, 0, 6, 72)):
        prog = R6 + body + insn(ALU64 | 0xB0, 0, 0, 0, 0) + EXIT
        with pytest.raises(PermissionError):
            run_kernel(prog, "socket_filter", [], data=FRAMES[0])
        with pytest.raises(PermissionError, match="may not touch"):
            run_vm(prog, "socket_filter", [], data=FRAMES[0])
    with pytest.raises(OSError, match="only socket filters"):
        run_vm(insn(0x30) + EXIT, "syscall", [], ctx=bytes(8))


def test_mutated_programs_are_refused_or_run_never_crash() -> None:
    # the Python side of tools/fuzz_vm.sh: random verifier-accepted programs with a few bytes
    # changed, against an 8-byte map where they expect 64 bytes, in this process
    import random

    from bpfmap import _vm_random
    from bpfmap._core import ffi

    rng = random.Random(18)
    outcomes: set[object] = set()
    with ArrayMap(8, 1) as m:
        for seed in range(1500):
            code = bytearray(_vm_random.generate(seed, body=12))
            for _ in range(rng.randrange(0, 4)):
                code[rng.randrange(len(code))] = rng.randrange(256)
            ctx = bytearray(64)
            try:
                with Vm(bytes(code), [m]) as vm:
                    vm.run(int(ffi.cast("uintptr_t", ffi.from_buffer(ctx))),
                           [Region(ctx, READ | WRITE)], budget=5000)
                    outcomes.add("ran")
            except OSError as exc:
                outcomes.add(exc.errno)
    assert {"ran", errno.EACCES, errno.EINVAL} <= outcomes
