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

from ._buffers import address_of
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


class InsnLoop:
    """:func:`alu_loop` loaded on ``backend`` (``"emulated"``: the interpreter; ``"kernel"``:
    an XDP program, the kernel's JIT): :meth:`run` times ``loops`` runs, :attr:`executed` is
    the instructions of one run. ``bpfmap bench``'s ``alu_loop`` rows and :func:`figures`
    both time it."""

    def __init__(self, backend: str) -> None:
        code = alu_loop()
        self._packet, self._md = bytearray(64), bytearray(24)
        self._vm: Vm | None = Vm(code, name="alu_loop")
        self.executed = self._vm.run(0, []).executed
        self._kernel: Any = None
        if backend == "kernel":
            from ._vm_kernel import KernelProgram

            self._vm.close()
            self._vm = None
            self._kernel = KernelProgram(code, "xdp")
        elif backend != "emulated":
            raise ValueError(f"backend: expected 'emulated' or 'kernel', not {backend!r}")
        self._arg = address_of(self._md)
        self._regions = _packet_regions(self._packet, self._md)
        self.run(3)  # warm

    def run(self, loops: int) -> int:
        """ns that ``loops`` runs of the loop took (the kernel times its own runs)."""
        if self._vm is not None:
            start = time.perf_counter_ns()
            self._vm.run(self._arg, self._regions, repeat=loops)
            return time.perf_counter_ns() - start
        if self._kernel is None:
            raise ValueError("the loop is closed")
        _, duration, _, _ = self._kernel.test_run(bytes(self._packet), repeat=loops)
        return int(duration) * loops  # the kernel reports the mean of the runs

    def close(self) -> None:
        if self._vm is not None:
            self._vm.close()
            self._vm = None
        if self._kernel is not None:
            self._kernel.close()
            self._kernel = None

    def __enter__(self) -> InsnLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ns_per_insn(backend: str, repeat: int = 200) -> float:
    with InsnLoop(backend) as loop:
        return loop.run(repeat) / (repeat * loop.executed)


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
    out = {"insn/vm": ns_per_insn("emulated")}
    out.update({f"{k}/vm": v for k, v in per_access("emulated").items()})
    if kernel:
        out["insn/kernel"] = ns_per_insn("kernel")
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
