"""Issue 14 section 5: first contact. ``import bpfmap`` without its C core says what
happened and what to do; the CI script says in one line that everything passed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import bpfmap

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
