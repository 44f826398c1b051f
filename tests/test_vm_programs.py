"""Every program of the test objects and of bpfmap's own objects, run on both backends with the
same inputs: the same retval, data, ctx, and every section and map byte afterwards. Then the
kernel's map rules from the program side, on the emulated backend."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest
from conftest import require_kernel
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)

from bpfmap import BpfObject
from bpfmap.conformance.programs import inputs as _inputs
from bpfmap.conformance.programs import outcome as _outcome
from bpfmap.conformance.programs import prepare as _prepare
from bpfmap.conformance.programs import state as _state

ROOT = Path(__file__).resolve().parent.parent
OBJECTS = [
    ROOT / "tests" / "bpf" / "globals.bpf.o",
    ROOT / "tests" / "bpf" / "kconfig.bpf.o",
    ROOT / "tests" / "bpf" / "vm.bpf.o",
    ROOT / "bpfmap" / "bpf" / "counter.bpf.o",
    ROOT / "bpfmap" / "bpf" / "bench.bpf.o",
]
@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.name)
def test_every_program_like_the_kernel(path: Path) -> None:
    require_kernel()
    with BpfObject.open(path, backend="kernel") as k, BpfObject.open(path) as e:
        for o in (k, e):
            _prepare(o)
            o.load()
        assert _state(e) == _state(k)
        for name, prog in k.programs.items():
            for args in _inputs(prog.type):
                kr = _outcome(prog, args)
                assert _outcome(e.programs[name], args) == kr, (name, args)
                assert _state(e) == _state(k), (name, args)


def test_writes_are_live_in_python_and_in_other_processes() -> None:
    with BpfObject.open(ROOT / "tests" / "bpf" / "globals.bpf.o") as o:
        o.load()
        hist = o.bss.hist  # a live view of the .bss mapping, taken before the runs
        region = o.maps["counts"].mmap()  # type: ignore[union-attr]
        pid = os.fork()
        if pid == 0:  # the child runs the program; the parent's mappings must see it
            try:
                o.programs["count_packets"].test_run(bytes(64), repeat=4)
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        assert hist.tolist() == [4, 0, 0, 0, 0, 0, 0, 0] and o.bss.counter == 28
        assert region[:8] == struct.pack("<Q", 4)
        o.bss.counter = 1000  # and Python's writes reach the program
        o.programs["count_packets"].test_run(bytes(64))
        assert o.bss.counter == 1007
        region.close()


def test_trace_printk_is_captured() -> None:
    with BpfObject.open(ROOT / "tests" / "bpf" / "vm.bpf.o") as o:
        o.load()
        prog = o.programs["printk"]
        run = prog.test_run(ctx=struct.pack("<QQqIi", 5, 6, -7, 8, -9))
        assert prog.trace == "a=5 d=8 e=-9\nliteral x\n" and run.retval == len(prog.trace)


def test_rodata_write_refused_at_load_on_both() -> None:
    path = ROOT / "tests" / "bpf" / "rejected.bpf.o"
    with BpfObject.open(path) as e, pytest.raises(PermissionError) as info:
        e.load()
    assert info.value.errno == errno.EACCES and "write into map forbidden" in str(info.value)
    assert "writes_rodata" in str(info.value) and ".rodata" in str(info.value)
    assert not e.loaded


def test_frozen_writable_map_is_a_known_difference() -> None:
    # The kernel lets programs write a frozen map (tests/test_object.py shows it); the
    # emulation seals a frozen map's memory against every write, so the run stops clearly.
    with BpfObject.open(ROOT / "tests" / "bpf" / "globals.bpf.o") as o:
        o.load()
        o.maps["counts"].freeze()  # type: ignore[union-attr]
        with pytest.raises(PermissionError) as info:
            o.programs["set_values"].test_run(ctx=bytes(8))
        assert info.value.errno == errno.EPERM and "frozen map" in str(info.value)


def test_emulated_test_run_checks_like_the_kernel() -> None:
    with BpfObject.open(ROOT / "tests" / "bpf" / "globals.bpf.o") as o:
        with pytest.raises(ValueError, match="load"):
            o.programs["count_packets"].test_run(bytes(64))
        o.load()
        xdp, sysc, raw = (o.programs[n] for n in ("count_packets", "set_values", "on_sys_enter"))
        cases = [
            (lambda: xdp.test_run(bytes(13)), errno.EINVAL),
            (lambda: xdp.test_run(bytes(64), ctx=bytes(8)), errno.ENOSPC),
            (lambda: sysc.test_run(b"x" * 20), errno.EINVAL),
            (lambda: sysc.test_run(ctx=bytes(4), repeat=2), errno.EINVAL),
            (lambda: raw.test_run(ctx=bytes(104)), errno.EINVAL),
        ]
        for call, err in cases:
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno == err
        run = xdp.test_run(bytes(64), ctx=struct.pack("<6I", 0, 64, 0, 0, 0, 0))
        assert run.ctx == struct.pack("<6I", 0, 64, 0, 0, 0, 0)
    require_kernel()
    with BpfObject.open(ROOT / "tests" / "bpf" / "globals.bpf.o", backend="kernel") as k:
        k.load()
        for name, kwargs, err in (
            ("count_packets", {"data": bytes(13)}, errno.EINVAL),
            ("count_packets", {"data": bytes(64), "ctx": bytes(8)}, errno.ENOSPC),
            ("set_values", {"data": b"x" * 20}, errno.EINVAL),
            ("set_values", {"ctx": bytes(4), "repeat": 2}, errno.EINVAL),
            ("on_sys_enter", {"ctx": bytes(104)}, errno.EINVAL),
        ):
            with pytest.raises(OSError) as info:
                k.programs[name].test_run(**kwargs)  # type: ignore[arg-type]
            assert info.value.errno == err


def test_docs_runtime_example_on_both_backends(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    text = (ROOT / "docs" / "bpf-objects.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S)
                 if "no root needed" in b)
    counter = repr(str(ROOT / "bpfmap" / "bpf" / "counter.bpf.o"))
    backends = {"emulated": block.replace('"counter.bpf.o"', counter)}
    if conftest_kernel():
        backends["kernel"] = backends["emulated"].replace(
            "BpfObject.open(" + counter + ")",
            "BpfObject.open(" + counter + ", backend='kernel')")
    for backend, code in backends.items():
        script = tmp_path / f"{backend}.py"
        script.write_text(code)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "2 1000 64000\n1000\n", backend


def conftest_kernel() -> bool:
    require_kernel()
    return True


def test_speed_figures_are_measured() -> None:
    from bpfmap import _vm_bench

    require_kernel()
    figures = _vm_bench.figures()
    names = ["insn"] + list(_vm_bench.PROGRAMS)
    assert set(figures) == {f"{n}/{b}" for n in names for b in ("vm", "kernel")}
    assert all(v >= 0 for v in figures.values()) and figures["insn/vm"] > 0
