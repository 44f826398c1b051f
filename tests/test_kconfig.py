"""The .kconfig section: libbpf fills it on the kernel backend, bpfmap's rules on the emulated
one; the same Kconfig lines must give the same bytes or the same errno on both."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from conftest import require_kernel
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)

from bpfmap import BpfObject

KCONFIG = Path(__file__).with_name("bpf") / "kconfig.bpf.o"

LINES = [
    None,  # the running kernel's own config
    "CONFIG_HZ=100",
    "CONFIG_HZ=0x7fffffff",
    "CONFIG_HZ=0x80000000",
    "CONFIG_HZ=-1",
    "CONFIG_HZ=-2147483648",
    "CONFIG_HZ=-2147483649",
    "CONFIG_HZ=010",
    "CONFIG_HZ=0x",
    "CONFIG_HZ=12abc",
    "CONFIG_HZ= 7",
    "CONFIG_HZ=+7",
    "CONFIG_HZ=1_000",
    "CONFIG_HZ=y",
    'CONFIG_HZ="5"',
    "CONFIG_HZ=1\nCONFIG_HZ=2",
    "CONFIG_BPF_SYSCALL=n",
    "CONFIG_BPF_SYSCALL=m",
    "CONFIG_BPF_SYSCALL=1",
    "CONFIG_BPF_JIT=m",
    "CONFIG_BPF_JIT=n",
    "CONFIG_BPF_JIT=2",
    "CONFIG_NR_CPUS=18446744073709551615",
    "CONFIG_NR_CPUS=18446744073709551616",
    "CONFIG_NR_CPUS=-5",
    'CONFIG_DEFAULT_HOSTNAME="abcdefghijk"',
    'CONFIG_DEFAULT_HOSTNAME="ab"',
    'CONFIG_DEFAULT_HOSTNAME=""',
    'CONFIG_DEFAULT_HOSTNAME="open',
    "CONFIG_DEFAULT_HOSTNAME=y",
    "CONFIG_DEFAULT_HOSTNAME=abc",
    "CONFIG_BPFMAP_SURELY_MISSING=3",
    "CONFIG_UNRELATED=whatever",
    "CONFIG_NO_SEPARATOR",
    "CONFIG_NO_VALUE=",
    "# CONFIG_HZ is not set\nNOT_CONFIG=1",
]


def _load(backend: str, kconfig: str | None) -> object:
    try:
        with BpfObject.open(KCONFIG, backend=backend, kconfig=kconfig) as o:
            o.load()
            sec = o.sections[".kconfig"]
            assert sec.readonly and sec.map is not None and sec.map.frozen
            return sec.raw()
    except OSError as exc:
        return exc.errno


@pytest.mark.parametrize("lines", LINES, ids=repr)
def test_same_kconfig_bytes_or_errno(lines: str | None) -> None:
    require_kernel()
    assert _load("emulated", lines) == _load("kernel", lines)


def test_values_read_typed() -> None:
    with BpfObject.open(KCONFIG, kconfig='CONFIG_HZ=300\nCONFIG_DEFAULT_HOSTNAME="bpf"') as o:
        k = o.sections[".kconfig"]
        with pytest.raises(ValueError, match="fill .kconfig at load"):
            k.CONFIG_HZ = 5
        o.load()
        assert k.CONFIG_HZ == 300
        assert k.CONFIG_DEFAULT_HOSTNAME.tobytes() == b"bpf" + bytes(5)
        assert k.CONFIG_BPFMAP_SURELY_MISSING == 0 and k.LINUX_KERNEL_VERSION > 0
        with pytest.raises(PermissionError) as info:
            k.CONFIG_HZ = 5
        assert info.value.errno == errno.EPERM


def test_kconfig_must_be_text() -> None:
    with pytest.raises(TypeError):
        BpfObject.open(KCONFIG, kconfig=b"CONFIG_HZ=1")  # type: ignore[arg-type]
