"""The README's examples run as written, and every page it (or a docs page) links exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import require_kernel
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COUNTER = ROOT / "bpfmap" / "bpf" / "counter.bpf.o"


def _run(code: str, tmp_path: Path) -> str:
    script = tmp_path / "example.py"
    script.write_text(code.replace('"counter.bpf.o"', repr(str(COUNTER))))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_map_example(tmp_path: Path) -> None:
    assert _run(_blocks()[0], tmp_path) == "b'*\\x00\\x00\\x00\\x00\\x00\\x00\\x00'\n1\n"


def test_object_example(tmp_path: Path) -> None:
    require_kernel()
    total, top = _run(_blocks()[1], tmp_path).split()
    assert 1000 <= int(total) < 1100 and top.isdigit()


def test_interpreter_example_on_both_backends(tmp_path: Path) -> None:
    block = _blocks()[2]
    assert 'BpfObject.open("counter.bpf.o")' in block  # the emulated backend: no root
    as_nobody = block
    if os.geteuid() == 0:  # without root, truly: as nobody (what it imports, imported first:
        # nobody cannot read root's interpreter)
        os.chmod(tmp_path, 0o755)
        as_nobody = ("import os, bpfmap, bpfmap._object, bpfmap._vm_run, elftools.elf.elffile, "
                     "elftools.common.exceptions\nos.setgid(65534); os.setuid(65534)\n" + block)
    assert _run(as_nobody, tmp_path) == "2 500 50000\n1 50060\n"
    require_kernel()  # "the same lines print the same numbers" on the kernel
    on_kernel = block.replace('BpfObject.open("counter.bpf.o")',
                              'BpfObject.open("counter.bpf.o", backend="kernel")')
    assert _run(on_kernel, tmp_path) == "2 500 50000\n1 50060\n"


def test_links_resolve() -> None:
    pages = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "CHANGELOG.md"]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links {target}, which is missing"
