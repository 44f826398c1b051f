"""A program's instructions relocated from the ELF object, as libbpf relocates them at load.

libbpf applies relocations only inside ``bpf_object__load``, which creates kernel maps with
``bpf()``; the emulated backend needs the same instructions without a kernel. pyelftools reads
the ELF (sections, symbols, ``.rel*`` entries); this module applies libbpf 1.1's rules
(``bpf_program__record_reloc``, ``bpf_object__reloc_code``, ``bpf_object__relocate_data``):

* a ``call`` to a subprogram (``src_reg`` ``BPF_PSEUDO_CALL``) appends the subprogram's code
  after the program, depth first as calls are met, and points the call's ``imm`` at it;
* a ``ld_imm64`` of a ``.maps`` symbol becomes ``BPF_PSEUDO_MAP_FD`` (``src_reg`` 1);
* a ``ld_imm64`` of a global variable becomes ``BPF_PSEUDO_MAP_VALUE`` (``src_reg`` 2) with the
  variable's offset in its section (plus the instruction's own addend) in the second half;
* a ``ld_imm64`` of a ``__kconfig`` extern likewise, at the extern's offset in ``.kconfig``.

Where libbpf puts a map descriptor in ``imm``, this puts an index into :attr:`Relocated.maps`
(the maps by bpfmap's name: a data section by its section name, any other map by its own), so
the caller resolves them against whatever maps it has. The tests compare the result with the
instructions libbpf loads into the kernel, instruction by instruction.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any

_INSN = struct.Struct("<BBhi")
_CALL = 0x85  # BPF_JMP | BPF_CALL
_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
PSEUDO_CALL = 1
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
_SHF_EXECINSTR = 0x4
_R_BPF_64_64, _R_BPF_64_32 = 1, 10
_SHT_REL = 9


class RelocationError(ValueError):
    """The object holds a relocation bpfmap cannot apply (libbpf refuses the same ones)."""


@dataclass
class Relocated:
    """One program's instructions ready to run: ``insns`` (8 bytes each) and the maps that its
    ``BPF_PSEUDO_MAP_FD``/``BPF_PSEUDO_MAP_VALUE`` loads refer to, by index."""

    insns: bytes
    maps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Func:
    shndx: int
    start: int  # in instructions, within its section
    count: int


class ElfProgram:
    """The programs and relocations of one BPF ELF object."""

    def __init__(self, data: bytes, kconfig_offsets: dict[str, int]) -> None:
        try:
            from elftools.common.exceptions import ELFError
            from elftools.elf.elffile import ELFFile
        except ImportError:  # pragma: no cover - a dependency of bpfmap
            raise ImportError("relocating programs needs pyelftools (pip install pyelftools)"
                              ) from None
        try:
            elf = ELFFile(io.BytesIO(data))
            self._sections = _sections(elf, data, ELFError)
            self._read(elf)
        except ELFError as exc:
            raise RelocationError(f"not a BPF ELF object: {exc}") from None
        self._kconfig = kconfig_offsets

    def _section(self, shndx: int) -> Any:
        """The section ``shndx``, refused (naming it) where pyelftools could not read it."""
        name, sec = self._sections[shndx]
        if isinstance(sec, str):
            raise RelocationError(f"section {name}: {sec}")
        return sec

    def _read(self, elf: Any) -> None:
        symtab = next((i for i, (name, _) in enumerate(self._sections) if name == ".symtab"),
                      None)
        if symtab is None:
            raise RelocationError("the object has no symbol table")
        self._symbols = list(self._section(symtab).iter_symbols())
        self.functions: dict[str, _Func] = {}
        self._funcs_by_section: dict[int, list[_Func]] = {}
        for sym in self._symbols:
            shndx = sym["st_shndx"]
            if sym["st_info"]["type"] != "STT_FUNC" or not isinstance(shndx, int):
                continue
            func = _Func(shndx, sym["st_value"] // 8, sym["st_size"] // 8)
            self.functions[sym.name] = func
            self._funcs_by_section.setdefault(shndx, []).append(func)
        # relocations by the section they apply to: {shndx: {byte offset: (symbol, type)}}
        self._relocs: dict[int, dict[int, tuple[Any, int]]] = {}
        for shndx, (_, sec) in enumerate(self._sections):
            header = sec.header if not isinstance(sec, str) else _header(elf, shndx)
            if header["sh_type"] not in ("SHT_REL", _SHT_REL):
                continue
            target = header["sh_info"]
            if not 0 <= target < len(self._sections) or \
                    not self._section(target)["sh_flags"] & _SHF_EXECINSTR:
                continue  # .rel.BTF, .rel.debug_*: not code (libbpf skips them too)
            table = self._relocs.setdefault(target, {})
            for rel in self._section(shndx).iter_relocations():
                table[rel["r_offset"]] = (self._symbols[rel["r_info_sym"]], rel["r_info_type"])

    def _code(self, func: _Func) -> bytearray:
        data = self._section(func.shndx).data()
        return bytearray(data[func.start * 8 : (func.start + func.count) * 8])

    def relocate(self, program: str) -> Relocated:
        """The program's instructions with its subprograms appended and every load resolved."""
        func = self.functions.get(program)
        if func is None:
            raise RelocationError(f"no program {program!r} in the object")
        out = Relocated(b"")
        code = self._code(func)
        placed: dict[_Func, int] = {func: 0}
        self._reloc_code(func, 0, code, placed, out.maps)
        out.insns = bytes(code)
        return out

    def _reloc_code(self, func: _Func, base: int, code: bytearray, placed: dict[_Func, int],
                    maps: list[str]) -> None:
        """libbpf's bpf_object__reloc_code() for the ``func`` copied at ``base`` in ``code``."""
        relocs = self._relocs.get(func.shndx, {})
        for i in range(func.count):
            at = (base + i) * 8
            op, regs, off, imm = _INSN.unpack_from(code, at)
            reloc = relocs.get((func.start + i) * 8)
            if op == _CALL and regs >> 4 == PSEUDO_CALL:
                imm = self._call(func, i, imm, reloc, base, code, placed, maps)
                _INSN.pack_into(code, at, op, regs, off, imm)
            elif reloc is not None:
                if op != _LD_IMM64 or reloc[1] != _R_BPF_64_64:
                    raise RelocationError(f"section {self._sections[func.shndx][0]} insn "
                                          f"{func.start + i}: relocation type {reloc[1]} on "
                                          f"opcode {op:#x}")
                self._load(code, at, reloc[0], maps)

    def _call(self, func: _Func, i: int, imm: int, reloc: tuple[Any, int] | None, base: int,
              code: bytearray, placed: dict[_Func, int], maps: list[str]) -> int:
        if reloc is not None:
            sym = reloc[0]
            shndx = sym["st_shndx"]
            if not isinstance(shndx, int) or self._sections[shndx][0] != ".text":
                raise RelocationError(f"section {self._sections[func.shndx][0]} insn "
                                      f"{func.start + i}: a call must reference code in .text")
            target = sym["st_value"] // 8 + imm + 1
        else:  # a call within the same section
            shndx, target = func.shndx, func.start + i + imm + 1
        sub = next((f for f in self._funcs_by_section.get(shndx, [])
                    if f.start <= target < f.start + f.count), None)
        if sub is None:
            raise RelocationError(f"insn {base + i}: call to instruction {target} of "
                                  f"section {self._sections[shndx][0]}, which is no function")
        if sub not in placed:
            placed[sub] = len(code) // 8
            code += self._code(sub)
            self._reloc_code(sub, placed[sub], code, placed, maps)
        return int(placed[sub] + (target - sub.start) - (base + i) - 1)

    def _load(self, code: bytearray, at: int, sym: Any, maps: list[str]) -> None:
        op, regs, off, imm = _INSN.unpack_from(code, at)
        shndx = sym["st_shndx"]
        if shndx == "SHN_UNDEF":  # an extern: libbpf resolves __kconfig ones into .kconfig
            if sym.name not in self._kconfig:
                raise RelocationError(f"extern {sym.name} is not a __kconfig variable")
            key, src, second = ".kconfig", PSEUDO_MAP_VALUE, self._kconfig[sym.name]
        elif not isinstance(shndx, int):
            raise RelocationError(f"symbol {sym.name} in section {shndx}")
        elif self._sections[shndx][0] == ".maps":
            key, src, second = sym.name, PSEUDO_MAP_FD, None
        else:
            key, src = self._sections[shndx][0], PSEUDO_MAP_VALUE
            second = imm + sym["st_value"]
        if key not in maps:
            maps.append(key)
        _INSN.pack_into(code, at, op, (regs & 0x0F) | src << 4, off, maps.index(key))
        if second is not None:
            op2, regs2, off2, _ = _INSN.unpack_from(code, at + 8)
            _INSN.pack_into(code, at + 8, op2, regs2, off2, second)


def _sections(elf: Any, data: bytes, elf_error: type[Exception]) -> list[tuple[str, Any]]:
    """(name, section) by index; where pyelftools refuses a section (a corrupted header: an
    ``sh_entsize`` it does not expect, ...) its reason instead of the section, so that only
    a section the programs need is refused, as libbpf ignores the ones it does not use."""
    out: list[tuple[str, Any]] = []
    for i in range(elf.num_sections()):
        try:
            sec = elf.get_section(i)
            out.append((sec.name, sec))
        except elf_error as exc:
            header = _header(elf, i)
            try:
                name = elf.get_section(elf["e_shstrndx"]).get_string(header["sh_name"])
            except elf_error:
                name = None
            out.append((name or f"#{i}", str(exc)))
    return out


def _header(elf: Any, shndx: int) -> Any:
    """A section's header alone, without building the section (which checks its contents);
    one past the end of the file is pyelftools' ELFParseError, as its own reads are."""
    from elftools.common.utils import struct_parse

    return struct_parse(elf.structs.Elf_Shdr, elf.stream,
                        stream_pos=elf["e_shoff"] + shndx * elf["e_shentsize"])
