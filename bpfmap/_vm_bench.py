"""The interpreter's speed beside the kernel's JIT, for ``bpfmap bench``.

* ns per instruction: an ALU loop (``LOOP`` iterations of 6 instructions) run ``repeat``
  times by the interpreter, divided by the instructions it executed; the kernel runs the same
  bytecode as an XDP program with ``BPF_PROG_TEST_RUN``'s ``repeat`` (its JIT when
  ``net.core.bpf_jit_enable`` is on), divided by the same count.
* ns per map access from a program: ``bpfmap/bpf/bench.bpf.o``'s programs, each touching a
  map value ``ACCESSES`` times (a ``.bss`` global through its pseudo-load, a value from
  ``bpf_map_lookup_elem``, ``bpf_map_update_elem``), minus the empty program, per access.

``python -m bpfmap._vm_bench`` prints them. Figures taken on a busy machine are noisy.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from ._vm import READ, REGION_XDP_MD, WRITE, Region, Vm, insn

LOOP = 1000
ACCESSES = 100  # bench.bpf.c's ACCESSES
PROGRAMS = ("global_increment", "lookup_increment", "update_helper")


def alu_loop() -> bytes:
    """r0 = 2 after LOOP iterations of four ALU instructions, a decrement and a jump."""
    mov, add_x, xor_x, lsh_k, rsh_k, sub_k = 0xB7, 0x0F, 0xAF, 0x67, 0x77, 0x17
    return b"".join([
        insn(mov, 1, imm=1), insn(mov, 3, imm=7), insn(mov, 2, imm=LOOP),
        insn(add_x, 3, 1), insn(xor_x, 1, 3), insn(lsh_k, 1, imm=3), insn(rsh_k, 3, imm=1),
        insn(sub_k, 2, imm=1), insn(0x55, 2, off=-6),  # if r2 != 0 goto loop
        insn(mov, 0, imm=2), insn(0x95),
    ])


def _packet_regions(packet: bytearray, md: bytearray) -> list[Region]:
    return [Region(md, READ, REGION_XDP_MD, packet), Region(packet, READ | WRITE)]


def vm_ns_per_insn(repeat: int = 200) -> float:
    from ._bindings import ffi

    packet, md = bytearray(64), bytearray(24)
    with Vm(alu_loop(), name="alu_loop") as vm:
        arg = int(ffi.cast("uintptr_t", ffi.from_buffer(md)))
        regions = _packet_regions(packet, md)
        vm.run(arg, regions, repeat=3)  # warm
        start = time.perf_counter_ns()
        run = vm.run(arg, regions, repeat=repeat)
        return (time.perf_counter_ns() - start) / run.executed


def kernel_ns_per_insn(repeat: int = 200) -> float:
    from ._vm_kernel import KernelProgram

    code = alu_loop()
    with Vm(code) as vm:  # the same count of executed instructions
        executed = vm.run(0, []).executed
    with KernelProgram(code, "xdp") as prog:
        prog.test_run(bytes(64), repeat=3)
        _, duration, _, _ = prog.test_run(bytes(64), repeat=repeat)
    return duration / executed


def per_access(backend: str, repeat: int = 2000) -> dict[str, float]:
    """ns per map access of each bench program on ``backend`` (``"emulated"``: the
    interpreter; ``"kernel"``: the kernel's test run)."""
    from ._object import BpfObject

    path = resources.files("bpfmap") / "bpf" / "bench.bpf.o"
    out: dict[str, float] = {}
    with resources.as_file(path) as p, BpfObject.open(p, backend=backend) as obj:
        obj.load()
        base = _mean_ns(obj.programs["empty"], repeat)
        for name in PROGRAMS:
            out[name] = max(_mean_ns(obj.programs[name], repeat) - base, 0.0) / ACCESSES
    return out


def _mean_ns(prog: Any, repeat: int) -> float:
    prog.test_run(bytes(64), repeat=3)
    return min(float(prog.test_run(bytes(64), repeat=repeat).duration_ns) for _ in range(3))


def figures(kernel: bool = True) -> dict[str, float]:
    """Every figure: ``insn/vm``, ``insn/kernel``, ``<program>/vm``, ``<program>/kernel``."""
    out = {"insn/vm": vm_ns_per_insn()}
    out.update({f"{k}/vm": v for k, v in per_access("emulated").items()})
    if kernel:
        out["insn/kernel"] = kernel_ns_per_insn()
        out.update({f"{k}/kernel": v for k, v in per_access("kernel").items()})
    return out


def main() -> None:
    from ._map import kernel_unavailable_reason

    f = figures(kernel=kernel_unavailable_reason() is None)
    k_insn = f.get("insn/kernel")
    print(f"ns per instruction: interpreter {f['insn/vm']:.2f}, "
          f"kernel {'n/a' if k_insn is None else f'{k_insn:.2f}'}")
    for name in PROGRAMS:
        k = f.get(f"{name}/kernel")
        print(f"ns per map access, {name}: interpreter {f[name + '/vm']:.2f}, "
              f"kernel {'n/a' if k is None else f'{k:.2f}'}")


if __name__ == "__main__":
    main()
