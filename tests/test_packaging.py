"""Packaging: what a newcomer meets first, and what the package exports.

``import bpfmap`` without its C core (from the source tree, or an incomplete
installation) says what happened and what to do; the CI script ends with one
verdict line; ``bpfmap.kernel_unavailable_reason()`` is ``None`` when the kernel
backend works and says why (as user nobody) when bpf() is denied; the exported
constants match the kernel's own ``linux/bpf.h``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI, require_kernel

import bpfmap
from bpfmap import _constants as C

ROOT = Path(bpfmap.__file__).resolve().parent.parent


def _copy_package(dest: Path) -> None:
    shutil.copytree(
        ROOT / "bpfmap", dest / "bpfmap",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )  # fmt: skip


def _import_error(cwd: Path) -> str:
    # -S: without site-packages (this venv's editable install would be found first, by
    # its meta-path finder); the directory's bpfmap/ is what sys.path[0] finds, as the
    # clone's bpfmap/ shadows a non-editable install.
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import bpfmap"], cwd=cwd, capture_output=True, text=True
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: "), proc.stderr
    assert "No module named" not in proc.stderr
    return last


def test_import_from_the_source_tree_says_what_to_do(tmp_path: Path) -> None:
    """A clone after 'pip install .': the clone's bpfmap/ (no _core) shadows the installed
    one. Before: ModuleNotFoundError: No module named 'bpfmap._core'."""
    _copy_package(tmp_path)
    shutil.copytree(ROOT / "csrc", tmp_path / "csrc")
    msg = _import_error(tmp_path)
    assert f"from its source tree ({tmp_path})" in msg
    assert "run Python from another directory" in msg
    assert "pip install -e ." in msg


def test_an_incomplete_installation_says_reinstall(tmp_path: Path) -> None:
    _copy_package(tmp_path)
    msg = _import_error(tmp_path)
    assert "installation is incomplete" in msg and "pip install --force-reinstall bpfmap" in msg


def test_ci_script_ends_with_one_verdict_line() -> None:
    script = (ROOT / ".ci" / "run").read_text().rstrip().splitlines()
    assert script[-1].startswith('echo "== CI passed')
    # The libFuzzer stage prints its verdict, not its progress lines.
    fuzz = [line for line in script if "fuzz/run.sh" in line]
    assert fuzz and all(">" in line for line in fuzz), fuzz


def test_nothing_reads_backwards() -> None:
    assert not hasattr(bpfmap, "kernel_available")
    assert "kernel_available" not in bpfmap.__all__
    assert "kernel_unavailable_reason" in bpfmap.__all__


def test_no_reason_when_the_kernel_backend_works() -> None:
    require_kernel()
    assert bpfmap.kernel_unavailable_reason() is None
    bpfmap.ArrayMap(8, 1, backend="kernel").close()


def test_the_reason_when_bpf_is_denied() -> None:
    """As nobody: with unprivileged bpf() disabled, the reason and the errno of a kernel
    create; with it allowed, no reason and a kernel map."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI=true but not root: cannot run a probe as nobody")
        pytest.skip("needs root, to run as nobody")
    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        disabled = f.read().strip() != "0"
    code = (
        "import os, bpfmap\n"  # imported first: nobody cannot read root's interpreter
        "os.setgid(65534); os.setuid(65534)\n"
        "reason = bpfmap.kernel_unavailable_reason()\n"
        "try:\n    bpfmap.ArrayMap(8, 1, backend='kernel')\n    print(0)\n"
        "except OSError as e:\n    print(e.errno)\n"
        "print(reason)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(bpfmap.__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    err, reason = out.stdout.splitlines()
    if disabled:
        assert int(err) == errno.EPERM
        assert reason == f"bpf(BPF_MAP_CREATE) failed: {os.strerror(errno.EPERM)} (errno {err})"
    else:
        assert (err, reason) == ("0", "None")


HEADER = Path("/usr/include/linux/bpf.h")


def _header_values() -> dict[str, int]:
    """NAME = value members of the uapi header's enums, plus enum bpf_map_type's implicit ones."""
    text = HEADER.read_text()
    values: dict[str, int] = {}
    for name, expr in re.findall(r"^\s*(BPF_\w+)\s*=\s*([^,/\n]+?)\s*,", text, re.M):
        expr = expr.replace("U", "")
        if re.fullmatch(r"[\d\s()<x]+", expr):
            values[name] = int(eval(expr))  # only digits, '<<', parentheses
    body = re.search(r"enum bpf_map_type \{(.*?)\};", text, re.S)
    assert body is not None
    n = 0
    for line in body.group(1).splitlines():
        mt = re.match(r"\s*(BPF_MAP_TYPE_\w+)\s*(?:=\s*(\d+))?\s*,", line)
        if mt:
            n = int(mt.group(2)) if mt.group(2) else n
            values.setdefault(mt.group(1), n)
            n += 1
    return values


@pytest.mark.skipif(not HEADER.exists(), reason="no /usr/include/linux/bpf.h")
def test_constants_match_the_kernel_header() -> None:
    header = _header_values()
    ours = {k: v for k, v in vars(C).items() if k.startswith("BPF_")}
    compared = [k for k in ours if k in header]
    assert {
        "BPF_ANY",
        "BPF_NOEXIST",
        "BPF_EXIST",
        "BPF_F_LOCK",
        "BPF_F_MMAPABLE",
        "BPF_F_RDONLY",
        "BPF_F_WRONLY",
        "BPF_MAP_TYPE_ARRAY",
    } <= set(compared)
    assert {k: ours[k] for k in compared} == {k: header[k] for k in compared}


def test_constants_exported_and_known_values() -> None:
    for k, v in vars(C).items():
        if k.startswith("BPF_") or k == "ENOTSUPP":
            assert getattr(bpfmap, k) == v, k
    # Flags added after older installed headers: the kernel's values (include/uapi/linux/bpf.h).
    assert tuple(1 << b for b in range(13, 19)) == (
        C.BPF_F_LINK,
        C.BPF_F_PATH_FD,
        C.BPF_F_VTYPE_BTF_OBJ_FD,
        C.BPF_F_TOKEN_FD,
        C.BPF_F_SEGV_ON_FAULT,
        C.BPF_F_NO_USER_CONV,
    )
    assert C.BPF_MAP_TYPE_ARRAY == 2
    assert C.ENOTSUPP == 524
    assert os.strerror(524) == "Unknown error 524"  # libc has no name for it
