"""The second half of ``bpfmap demo``: a BPF program and Python sharing its global data.

The program is bpfmap/bpf/counter.bpf.c (shipped built). On the kernel backend it runs: attached
to ``raw_tp/sys_enter`` it counts this process's system calls into ``.bss``, which Python reads
live through the mapping. On the emulated backend the same object's data sections become
emulated maps, shared with a forked child; running the program there is not built yet.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from . import BpfObject

COUNTER = Path(__file__).with_name("bpf") / "counter.bpf.o"


def _errno(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno or 0, '?')} ({exc.errno})"


def _kernel() -> None:
    print("kernel backend: libbpf loads the object, the program runs")
    with BpfObject.open(COUNTER, backend="kernel") as obj:
        obj.rodata.target_tgid = os.getpid()  # a .rodata knob, set before load
        obj.load()  # maps created and filled, .rodata frozen, programs verified
        with obj.programs["count_syscalls"].attach():
            for _ in range(1000):
                os.getppid()
        counts = obj.bss.syscalls  # a NumPy view of the live mapping
        top = sorted(((int(n), i) for i, n in enumerate(counts) if n), reverse=True)[:3]
        print(f"  attached raw_tp/sys_enter, called getppid() 1000 times: total {obj.bss.total}")
        print("  busiest system calls (number: count):",
              ", ".join(f"{nr}: {n}" for n, nr in top))
        run = obj.programs["count_packets"].test_run(bytes(64), repeat=1000)
        print(f"  XDP test run x1000: retval {run.retval}, {run.duration_ns} ns each, "
              f"packets {obj.bss.packets}, bytes {obj.bss.bytes}")
        obj.bss.packets = 0  # Python's write reaches the program
        obj.programs["count_packets"].test_run(bytes(64))
        print(f"  Python reset packets to 0, one more run: packets {obj.bss.packets}")
        try:
            obj.rodata.target_tgid = 1
        except PermissionError as exc:
            print(f"  write .rodata after load: {_errno(exc)}, the map is frozen")


def _emulated() -> None:
    print("emulated backend: the same object's data sections, no privileges")
    with BpfObject.open(COUNTER) as obj:
        obj.rodata.target_tgid = os.getpid()
        obj.load()
        for sec in obj.sections.values():
            assert sec.map is not None
            print(f"  {sec.name:<8} {sec.size:>5} bytes, flags {sec.map.flags:#x}, "
                  f"{'frozen' if sec.map.frozen else 'writable'}, through {sec.access}")
        pid = os.fork()
        if pid == 0:  # the child writes through its inherited mapping
            obj.bss.total = 4242
            os._exit(0)
        os.waitpid(pid, 0)
        print(f"  a forked child set total = 4242; the parent reads {obj.bss.total}")
        try:
            obj.rodata.target_tgid = 1
        except PermissionError as exc:
            print(f"  write .rodata after load: {_errno(exc)}, as on the kernel")
        run = obj.programs["count_packets"].test_run(bytes(64), repeat=1000)
        print(f"  XDP test run x1000 in bpfmap's interpreter: retval {run.retval}, "
              f"{run.duration_ns} ns each, packets {obj.bss.packets}, bytes {obj.bss.bytes}")


def main(kernel_unavailable: str | None) -> None:
    print(f"\nA BPF program and Python sharing global data ({COUNTER.name})")
    try:
        from . import _libbpf

        _libbpf.lib()
    except ImportError as exc:
        print(f"skipped: {exc}")
        return
    if kernel_unavailable is None:
        _kernel()
    _emulated()
