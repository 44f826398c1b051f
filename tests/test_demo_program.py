"""`bpfmap demo`: the map tour agrees step by step, and the program part shows a BPF program
and Python sharing global data on the kernel backend, and the same on the emulated one, where
bpfmap's interpreter runs the program."""

from __future__ import annotations

import platform
import subprocess
import sys

from conftest import require_kernel
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)


def test_demo_runs_the_program_and_shares_its_globals() -> None:
    require_kernel()
    out = subprocess.run(
        [sys.executable, "-m", "bpfmap", "demo"], capture_output=True, text=True, timeout=120,
        check=True,
    ).stdout
    assert "17/17 steps agree" in out
    if platform.machine() == "x86_64":
        assert "busiest system calls (number: count): 110: 1000" in out  # getppid
    assert "packets 1000, bytes 64000" in out and "one more run: packets 1" in out
    assert out.count("write .rodata after load: EPERM (1)") == 2
    assert "a forked child set total = 4242; the parent reads 4242" in out
    assert ".rodata      4 bytes, flags 0x480, frozen, through mmap" in out
    # The emulated backend runs the same XDP program in bpfmap's interpreter.
    assert "in bpfmap's interpreter: retval 2," in out
    assert out.count("packets 1000, bytes 64000") == 2
