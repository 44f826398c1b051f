"""Issue 14: the kernel backend probe has a name that reads right."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from conftest import IN_CI, require_kernel

import bpfmap


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
