"""BPF object files from a hostile or broken source: no file on disk may crash the interpreter.

libbpf 1.1 trusts the ELF and BTF it parses: one changed byte in ``.BTF`` makes its open read out
of bounds and die of SIGSEGV. bpfmap parses the bytes in a forked child first and turns the
child's death into an ``OSError``; its own BTF walk refuses types that refer to themselves, nest
without end or place a variable outside its section. Each case runs in a subprocess, so a crash
fails the test instead of killing pytest.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from test_object import GLOBALS, libbpf  # noqa: F401  (the autouse fixture: libbpf present)

from bpfmap import BpfObject

KCONFIG = GLOBALS.with_name("kconfig.bpf.o")
COUNTER = Path(__file__).parent.parent / "bpfmap" / "bpf" / "counter.bpf.o"
# Opens the object, loads it on the emulated backend, reads every variable; prints the error
# class and errno of a clean refusal, "ok" otherwise. Anything else (a signal, a traceback of
# another exception) is a failure.
CHILD = r"""
import sys, bpfmap
try:
    with bpfmap.BpfObject.open(sys.argv[1]) as obj:
        obj.load()
        for section in obj.sections.values():
            for name in section.variables:
                section[name]
    print("ok")
except (OSError, ValueError) as exc:
    print(type(exc).__name__, getattr(exc, "errno", None), exc)
"""


def _open_in_child(path: Path) -> str:
    run = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"{path.name}: exit {run.returncode}\n{run.stderr[-2000:]}"
    return run.stdout.strip()


def _mutant(tmp_path: Path, source: Path, changes: dict[int, int], name: str) -> Path:
    data = bytearray(source.read_bytes())
    for offset, value in changes.items():
        data[offset] = value
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def _btf_offset(path: Path) -> int:
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as f:
        return int(ELFFile(f).get_section_by_name(".BTF")["sh_offset"])


def test_a_byte_that_crashes_libbpfs_parser_is_a_clean_error(tmp_path: Path) -> None:
    # Found by mutation: this byte of .BTF (a type's name offset) crashes libbpf 1.1's open.
    offset = _btf_offset(GLOBALS) + 311
    out = _open_in_child(_mutant(tmp_path, GLOBALS, {offset: 0x75}, "crash.bpf.o"))
    kind, err, *_ = out.split(maxsplit=2)
    assert (kind, err) == ("OSError", "22"), out
    # Only the libbpf that crashes gets the probe's message; a fixed one refuses by itself.
    if "malformed" not in out:
        assert "open " in out, out


def test_the_section_must_hold_its_variables(tmp_path: Path) -> None:
    """A variable placed outside its section (libbpf takes the offset from the symbol's
    st_value, unchecked) is refused at open, not read out of bounds."""
    import struct

    from elftools.elf.elffile import ELFFile

    with GLOBALS.open("rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        index = next(i for i, s in enumerate(symtab.iter_symbols()) if s.name == "run_mode")
        st_value = symtab["sh_offset"] + index * symtab["sh_entsize"] + 8  # Elf64_Sym
    far = dict(zip(range(st_value, st_value + 8), struct.pack("<Q", 0xFF00_0000)))
    out = _open_in_child(_mutant(tmp_path, GLOBALS, far, "far.bpf.o"))
    assert out.startswith("BtfError None open "), out
    assert "'run_mode'" in out and "does not fit in the section" in out, out


def test_libbpfs_own_error_codes_become_einval(tmp_path: Path) -> None:
    """A truncated object: libbpf answers LIBBPF_ERRNO__FORMAT (4001, no errno); bpfmap says
    EINVAL with the file and the reason, and the CLI says the same."""
    data = COUNTER.read_bytes()
    half = tmp_path / "half.bpf.o"
    half.write_bytes(data[: len(data) // 2])
    out = _open_in_child(half)
    assert out == (f"OSError 22 [Errno 22] open {half}: not a BPF object (invalid ELF object "
                   "format)"), out
    run = subprocess.run([sys.executable, "-m", "bpfmap", "object", "show", str(half)],
                         capture_output=True, text=True, timeout=120)
    assert (run.returncode, run.stdout) == (255, "")
    assert run.stderr == f"Error: {half}: not a BPF object (invalid ELF object format)\n"


def test_an_errno_from_inside_the_file_does_not_read_as_a_missing_file(tmp_path: Path) -> None:
    """One bit of .BTF changed (a string offset): libbpf's open fails with ENOENT for
    something the file names; the errno stays, but the words say the file was read."""
    offset = _btf_offset(COUNTER) + 445
    changed = _mutant(tmp_path, COUNTER, {offset: COUNTER.read_bytes()[offset] ^ 0x08},
                      "enoent.bpf.o")
    out = _open_in_child(changed)
    assert out == (f"FileNotFoundError 2 [Errno 2] open {changed}: libbpf refused the object: "
                   "No such file or directory (a section, symbol or BTF type it names is "
                   "missing)"), out


def _section_header(path: Path, name: str) -> tuple[int, int]:
    """(offset of the section's header, offset of its contents) in the file."""
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == name)
        return (elf["e_shoff"] + index * elf["e_shentsize"],
                int(elf.get_section(index)["sh_offset"]))


def test_a_corrupted_header_of_a_section_no_program_uses_is_ignored(tmp_path: Path) -> None:
    """A bit of .rel.debug_frame's sh_entsize flipped: libbpf ignores the section (it relocates
    code only), and so does the emulated run: the program runs as on the kernel."""
    header, _ = _section_header(COUNTER, ".rel.debug_frame")
    entsize = header + 56 + 5  # Elf64_Shdr.sh_entsize, its sixth byte
    path = _mutant(tmp_path, COUNTER, {entsize: COUNTER.read_bytes()[entsize] ^ 1},
                   "debug_frame.bpf.o")
    with BpfObject.open(path) as obj:
        obj.load()
        assert obj.programs["count_packets"].test_run(bytes(64)).retval == 2  # XDP_PASS
        assert obj.bss.packets == 1


def test_a_relocation_bpfmap_cannot_apply_is_einval_at_test_run(tmp_path: Path) -> None:
    """The xdp program's relocation turned into R_BPF_64_32 on its ld_imm64: the object
    loads, and test_run refuses the program with EINVAL naming the file and the section."""
    _, relxdp = _section_header(COUNTER, ".relxdp")
    path = _mutant(tmp_path, COUNTER, {relxdp + 8: 10}, "reltype.bpf.o")  # r_info's type
    with BpfObject.open(path) as obj:
        obj.load()
        with pytest.raises(OSError) as raised:
            obj.programs["count_packets"].test_run(bytes(64))
    assert type(raised.value) is OSError and raised.value.errno == errno.EINVAL
    assert raised.value.strerror == (
        f"test_run count_packets: {path}: cannot relocate it: section xdp insn 0: relocation "
        "type 10 on opcode 0x18")


def test_not_a_regular_file() -> None:
    fifo_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    fifo = fifo_dir / f"bpfmap-fifo-{os.getpid()}.o"
    os.mkfifo(fifo)
    try:
        # A FIFO must not hang the open (nobody writes to it).
        assert _open_in_child(fifo).startswith("OSError 22")
    finally:
        fifo.unlink()
    assert _open_in_child(GLOBALS.parent).startswith("IsADirectoryError 21")
    assert _open_in_child(Path("/dev/null")).startswith("OSError 22")


@pytest.mark.stress
@pytest.mark.parametrize("source", [GLOBALS, KCONFIG], ids=lambda p: p.name)
def test_mutated_objects_never_crash(tmp_path: Path, source: Path) -> None:
    """Random byte changes in the ELF's parsed parts: every outcome is a result or a clean
    error, in one process per file (seeded, so a failure names a reproducible file)."""
    from elftools.elf.elffile import ELFFile

    with source.open("rb") as f:
        ranges = [(s["sh_offset"], s["sh_size"]) for s in ELFFile(f).iter_sections()
                  if s.name in (".BTF", ".BTF.ext", ".symtab", ".strtab", ".maps")
                  or s.name.startswith(".rel") or s.name.startswith(".data")
                  or s.name.startswith(".rodata")]
    rng = random.Random(source.name)
    paths = []
    for i in range(40):
        changes = {}
        for _ in range(rng.choice([1, 1, 2, 4])):
            start, size = rng.choice(ranges)
            changes[start + rng.randrange(size)] = rng.randrange(256)
        paths.append(_mutant(tmp_path, source, changes, f"{source.stem}-{i}.o"))
    script = CHILD.replace("sys.argv[1]", "path").replace("\n", "\n    ")
    loop = "import sys\nfor path in sys.argv[1:]:\n    " + script.strip() + "\n"
    # One process per file would take minutes: the files go through one child, and a crash
    # is then found by the exit status (the failing file is the one after the last output).
    run = subprocess.run([sys.executable, "-c", loop, *map(str, paths)], capture_output=True,
                         text=True, timeout=600)
    done = run.stdout.splitlines()
    assert run.returncode == 0, f"{paths[len(done)]} crashed the process: {run.stderr[-2000:]}"
    assert len(done) == len(paths)
