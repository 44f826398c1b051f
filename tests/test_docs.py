"""The examples in docs/ run as written (on the objects they name)."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_kernel
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)

ROOT = Path(__file__).resolve().parent.parent
COUNTER = ROOT / "bpfmap" / "bpf" / "counter.bpf.o"


def _blocks(page: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text()
    return [b.replace('"counter.bpf.o"', repr(str(COUNTER))) for b in
            re.findall(r"```python\n(.*?)```", text, re.S)]


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "example.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


def test_objects_tutorial_on_the_kernel(tmp_path: Path) -> None:
    require_kernel()
    out = _run(_blocks("bpf-objects.md")[0], tmp_path)
    assert out.returncode == 0, out.stderr
    total, top, run = out.stdout.split("\n")[:3]
    assert 1000 <= int(total) < 1100
    if platform.machine() == "x86_64":
        assert top == "110"
    assert run == "2 1000"


def test_objects_emulated_example(tmp_path: Path) -> None:
    code = _blocks("bpf-objects.md")[1]
    code = code.replace("obj.bss.map.lookup(0)[4096:4104]",
                        "print(obj.bss.map.lookup(0)[4096:4104])")
    out = _run(code, tmp_path)
    assert out.stdout == "b'\\x07\\x00\\x00\\x00\\x00\\x00\\x00\\x00'\n"
    assert out.stderr.strip().endswith("PermissionError: [Errno 1] .rodata.target_tgid: "
                                       "update: Operation not permitted")


@pytest.mark.parametrize("page", ["api.md"])
def test_counters_example(page: str, tmp_path: Path) -> None:
    example = next(b for b in _blocks(page) if "class Counters" in b)
    out = _run(example, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 10564)"
