"""Create: arguments, names, backends, the info a map reports, and memory reserved at create.

Python misuse of ``ArrayMap(...)`` is a ``TypeError``/``ValueError`` saying what was
expected; the kernel's refusals are ``OSError`` with its errno. An emulated map owns
its memory from create, as the kernel's does: in a memory cgroup a map that does not
fit fails with ENOMEM at create (compared with the kernel), and RLIMIT_FSIZE (which
the kernel ignores) never tears a value nor sends SIGXFSZ.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import IN_CI, require_kernel

import bpfmap
from bpfmap import BPF_F_MMAPABLE, ArrayMap
from bpfmap._args import decode_name, name_bytes

MM = BPF_F_MMAPABLE


@pytest.mark.parametrize("name", ["emulated ", "Kernel", "", "memfd", None, 0])
def test_bad_backend(name: Any) -> None:
    with pytest.raises(ValueError, match=r"backend must be 'emulated' or 'kernel', not"):
        ArrayMap(4, 4, backend=name)


@pytest.mark.parametrize("arg", ["value_size", "max_entries", "flags", "key_size"])
def test_create_args(backend: str, arg: str) -> None:
    kw: dict[str, Any] = {"value_size": 4, "max_entries": 4, "backend": backend}
    for bad, exc, msg in [
        ("4", TypeError, rf"{arg} must be an int, not str"),
        (4.0, TypeError, rf"{arg} must be an int, not float"),
        (True, TypeError, rf"{arg} must be an int, not bool"),
        (None, TypeError, rf"{arg} must be an int, not NoneType"),
        (-1, ValueError, rf"{arg} must be in 0\.\.4294967295, got -1"),
        (2**32, ValueError, rf"{arg} must be in 0\.\.4294967295, got {2**32}"),
    ]:
        with pytest.raises(exc, match=msg):
            ArrayMap(**{**kw, arg: bad})


def test_create_name_type(backend: str) -> None:
    for bad in (3, ["a"], bytearray(b"a"), None):
        with pytest.raises(TypeError, match=r"name must be str or bytes, not"):
            ArrayMap(4, 4, name=bad, backend=backend)


def test_create_errno_is_oserror(backend: str) -> None:
    with pytest.raises(OSError) as info:
        ArrayMap(0, 4, backend=backend)
    assert info.value.errno == errno.EINVAL
    assert "map create" in str(info.value)


NAME_HINT = "(name: at most 15 characters of [A-Za-z0-9_.])"


@pytest.mark.parametrize(("args", "kw", "hint"), [
    ((8, 4), {"name": "waytoolongnameforamap"}, NAME_HINT),
    ((8, 4), {"name": "x" * 16}, NAME_HINT),  # 16 bytes leave no room for the NUL
    ((8, 4), {"name": "bad name!"}, NAME_HINT),
    ((8, 4), {"name": "\u00e9"}, NAME_HINT),  # UTF-8 continuation bytes are not alnum
    ((8, 4), {"key_size": 8}, "(key_size: an array map's keys are 4 bytes, not 8)"),
    ((0, 4), {}, "(value_size: 0)"),
    ((8, 0), {}, "(max_entries: 0)"),
    ((8, 4), {"flags": 1 << 30}, "(flags: 0x40000000 is not an array map flag)"),
    # array_map_alloc_check() refuses before the name is copied (after the allocation):
    # the name is not the reason, and the hint does not say it is
    ((8, 4), {"key_size": 8, "name": "bad name"},
     "(key_size: an array map's keys are 4 bytes, not 8)"),
    ((0, 0), {"name": "bad name"}, "(max_entries: 0; value_size: 0)"),
    ((8, 4), {"flags": bpfmap.BPF_F_RDONLY | bpfmap.BPF_F_WRONLY, "key_size": 8},
     "(flags: BPF_F_RDONLY and BPF_F_WRONLY together)"),  # bpf_get_file_flag(): first
    # the token (fd 0 is not one) is checked between the two: no hint, it is not certain
    ((8, 4), {"flags": bpfmap.BPF_F_TOKEN_FD, "name": "bad!"}, ""),
])
def test_create_einval_says_which_argument(backend: str, args: tuple[int, int],
                                           kw: dict[str, Any], hint: str) -> None:
    """The kernel's EINVAL, and the argument it refused when the arguments alone say so."""
    with pytest.raises(OSError) as info:
        ArrayMap(*args, backend=backend, **kw)
    assert info.value.errno == errno.EINVAL and type(info.value) is OSError
    assert str(info.value) == f"[Errno 22] map create: Invalid argument {hint}".rstrip()


@pytest.mark.parametrize("name", ["x" * 15, "a_b.C9", b"ab\0 not copied!", b"\xc0\xff"])
def test_create_names_the_kernel_takes(backend: str, name: str | bytes) -> None:
    with ArrayMap(8, 1, name=name, backend=backend) as m:
        assert m.info().name == decode_name(name_bytes(name)[:16])


def test_info_is_a_named_tuple(backend: str) -> None:
    with ArrayMap(12, 5, flags=MM, name="probe_info", backend=backend) as m:
        info = m.info()
        assert info == (2, m.id, 4, 12, 5, MM, "probe_info")
        assert info._fields == (
            "type",
            "id",
            "key_size",
            "value_size",
            "max_entries",
            "map_flags",
            "name",
        )


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(bpfmap.__file__)))


def _memory_cgroup() -> tuple[int, str] | None:
    """(1 or 2, the directory of this process's memory cgroup), or None."""
    v1 = v2 = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            hier, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                v1 = path
            elif hier == "0" and controllers == "":
                v2 = path
    version, want = (1, v1) if v1 is not None else (2, v2)
    if want is None:
        return None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, (fstype, _source, opts) = pre.split(), post.split()[:3]
            root, mnt = fields[3], fields[4]
            if version == 1 and not (fstype == "cgroup" and "memory" in opts.split(",")):
                continue
            if version == 2 and fstype != "cgroup2":
                continue
            rel = want if root == "/" else want[len(root) :] if want.startswith(root) else None
            if rel is not None and os.path.isdir(mnt + rel):
                return version, mnt + rel
    return None


@pytest.fixture
def memory_cgroup() -> Iterator[tuple[int, str]]:
    """A new child memory cgroup of ours (v1 or v2); skipped with the reason outside CI."""
    found = _memory_cgroup()
    reason = None
    if found is None:
        reason = "no memory cgroup hierarchy is mounted"
    elif os.geteuid() != 0:
        reason = "making a cgroup needs root"
    if reason is None:
        assert found is not None
        version, parent = found
        path = os.path.join(parent, f"h-cli-bpfmap-{uuid.uuid4().hex[:8]}")
        try:
            os.mkdir(path)
        except OSError as exc:
            reason = f"cannot make a cgroup under {parent}: {exc}"
        else:
            limit = "memory.limit_in_bytes" if version == 1 else "memory.max"
            if not os.path.exists(os.path.join(path, limit)):
                os.rmdir(path)
                reason = f"the memory controller is not enabled for {parent}'s children"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true but no memory cgroup can be made: {reason}")
        pytest.skip(reason)
    try:
        yield version, path
    finally:
        os.rmdir(path)  # the child that joined it has exited


def run_in_cgroup(
    cgroup: tuple[int, str], limit: int, code: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter that joins ``cgroup`` limited to ``limit`` bytes."""
    version, path = cgroup
    knob = "memory.limit_in_bytes" if version == 1 else "memory.max"
    with open(os.path.join(path, knob), "w") as f:
        f.write(str(limit))
    prologue = (
        "import os\n"
        f"open({os.path.join(path, 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


MIB = 1 << 20


def test_create_too_big_for_the_cgroup_is_enomem_as_in_the_kernel(
    memory_cgroup: tuple[int, str],
) -> None:
    """Before: the emulated 512 MiB map was created in a 64 MiB cgroup, and the process
    was OOM-killed (SIGKILL) by a loop over it; the kernel's create said ENOMEM."""
    require_kernel()
    proc = run_in_cgroup(
        memory_cgroup,
        64 * MIB,
        """
        import bpfmap
        for backend in ("kernel", "emulated"):
            try:
                m = bpfmap.ArrayMap(8, 64 << 20, backend=backend)  # 512 MiB of values
            except OSError as e:
                print(backend, e.errno)
                continue
            for batch in m.batches(1 << 16):  # what killed the process before
                pass
            for key in range(0, 64 << 20, 512):
                m.update(key, b"12345678")
            print(backend, "created")
        """,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.split() == ["kernel", str(errno.ENOMEM), "emulated", str(errno.ENOMEM)]


def test_a_map_that_fits_is_whole_from_create(memory_cgroup: tuple[int, str]) -> None:
    """Created, it can be written through entirely (every page) without any later charge."""
    require_kernel()
    proc = run_in_cgroup(
        memory_cgroup,
        128 * MIB,
        """
        import mmap, bpfmap
        for backend in ("kernel", "emulated"):
            m = bpfmap.ArrayMap(8, 4 << 20, flags=bpfmap.BPF_F_MMAPABLE, backend=backend)
            region = m.mmap()
            for off in range(0, len(region), mmap.PAGESIZE):
                region[off] = 1
            for batch in m.batches(1 << 16):
                pass
            print(backend, m.lookup(512)[0], m.lookup((4 << 20) - 512)[0])
            region.close()
            m.close()
        """,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.split() == ["kernel", "1", "1", "emulated", "1", "1"]


def test_emulated_memory_is_allocated_at_create() -> None:
    """The memfd is not sparse: all its blocks exist right after create."""
    m = bpfmap.ArrayMap(8, 1 << 16)
    st = os.fstat(m.fd)
    assert st.st_blocks * 512 >= st.st_size == os.sysconf("SC_PAGESIZE") + 8 * (1 << 16)


FSIZE_SNIPPET = """
    import errno, os, resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # a host that keeps the default dies of it
    import bpfmap
    PAGE = os.sysconf("SC_PAGESIZE")
    m = bpfmap.ArrayMap(4104, 4, backend="emulated")
    old = bytes([7]) * 4104
    m[1] = old
    # Value 1 is at PAGE + 4104 .. PAGE + 8208: the limit cuts it.
    resource.setrlimit(resource.RLIMIT_FSIZE, (PAGE + 4104 + 4096, resource.RLIM_INFINITY))
    for how in ("bytes", "bytearray", "batch"):
        new = bytes([9]) * 4104
        try:
            if how == "bytes":
                m[1] = new
            elif how == "bytearray":
                m.update(1, bytearray(new))
            else:
                m.update_batch([0, 1], bytes(4104) + new)
        except OSError as e:
            print(how, e.errno, getattr(e, "count", "-"), m[1] == old)
        else:
            print(how, "written", m[1] == new)
    # A value wholly past the limit: no write at all, so no SIGXFSZ either.
    try:
        m[3] = bytes(4104)
    except OSError as e:
        print("past", e.errno)
    # A map whose memory is past the limit cannot be created (ftruncate would signal).
    try:
        bpfmap.ArrayMap(8, 1 << 20)
    except OSError as e:
        print("create", e.errno)
    print("alive")
"""


def test_rlimit_fsize_never_tears_a_value_nor_signals() -> None:
    """Before: the update wrote 4096 new bytes and kept 8 old ones, then SIGXFSZ killed
    the process (default disposition)."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FSIZE_SNIPPET)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    efbig = str(errno.EFBIG)
    assert proc.stdout.splitlines() == [
        f"bytes {efbig} - True",
        f"bytearray {efbig} - True",
        f"batch {efbig} 1 True",  # element 0 written, element 1 refused whole
        f"past {efbig}",
        f"create {efbig}",
        "alive",
    ]


def test_create_hint_takes_numpy_integers(backend: str) -> None:
    """The arguments may be NumPy integers (check_uint takes them): the EINVAL's hint must
    not overflow on them (NumPy 2 refuses np.uint32 & a negative mask)."""
    import numpy as np

    with pytest.raises(OSError) as raised:
        ArrayMap(np.uint32(8), np.uint32(4), flags=np.uint32(1 << 20), backend=backend)
    assert raised.value.errno == errno.EINVAL
    assert "not an array map flag" in str(raised.value)
