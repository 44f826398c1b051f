"""Relocation from the ELF (for the emulated backend) against libbpf's own: the instructions
libbpf loads into the kernel, instruction by instruction, map references by map."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import require_kernel
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)

from bpfmap import BpfObject
from bpfmap._libbpf import lib
from bpfmap._relocate import ElfProgram, RelocationError

ROOT = Path(__file__).resolve().parent.parent
OBJECTS = [
    ROOT / "tests" / "bpf" / "globals.bpf.o",
    ROOT / "tests" / "bpf" / "kconfig.bpf.o",
    ROOT / "tests" / "bpf" / "hashmap.bpf.o",
    ROOT / "bpfmap" / "bpf" / "counter.bpf.o",
]
INSN = struct.Struct("<BBhi")


def _normalized(insns: bytes, key_of: dict[int, str]) -> list[tuple[int, int, int, object]]:
    """Instructions with each map reference's imm replaced by the map's name."""
    out: list[tuple[int, int, int, object]] = []
    previous_ld = False
    for i in range(0, len(insns), 8):
        op, regs, off, imm = INSN.unpack_from(insns, i)
        if op == 0x18 and not previous_ld and regs >> 4 in (1, 2):
            out.append((op, regs, off, key_of[imm]))
            previous_ld = True
            continue
        previous_ld = op == 0x18 and not previous_ld
        out.append((op, regs, off, imm))
    return out


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.name)
def test_same_instructions_as_libbpf(path: Path) -> None:
    require_kernel()
    with BpfObject.open(path, backend="kernel") as obj:
        kconfig = obj.sections.get(".kconfig")
        offsets = {n: v.offset for n, v in kconfig.variables.items()} if kconfig else {}
        elf = ElfProgram(path.read_bytes(), offsets)
        ours = {name: elf.relocate(name) for name in obj.programs}
        assert any(r.maps for r in ours.values())  # the comparison covers map references
        obj.load()
        handles = {**obj._section_maps, **obj._map_handles}  # bpfmap's name -> libbpf's map
        fd_key = {int(lib().bpf_map__fd(m)): name for name, m in handles.items()}
        for name, prog in obj.programs.items():
            mine = ours[name]
            theirs = _normalized(prog.instructions, fd_key)
            assert _normalized(mine.insns, dict(enumerate(mine.maps))) == theirs, name


def test_refusals() -> None:
    with pytest.raises(RelocationError, match="not a BPF ELF"):
        ElfProgram(b"\x7fELF garbage", {})
    elf = ElfProgram(OBJECTS[0].read_bytes(), {})
    with pytest.raises(RelocationError, match="no program"):
        elf.relocate("nope")
    with pytest.raises(RelocationError, match="kconfig"):
        ElfProgram(OBJECTS[1].read_bytes(), {}).relocate("read_config")
