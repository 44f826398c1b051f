"""``bpfmap object show FILE``: what a BPF object holds, checked against the object's own
BTF as bpftool reads it and against the maps the kernel creates when libbpf loads it.

Every run is the command line as a user runs it (``python -m bpfmap object ...``), without
CAP_BPF where setpriv can drop it: opening an object needs no privileges.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import require_kernel
from elftools.elf.elffile import ELFFile  # type: ignore[import-untyped]
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)

from bpfmap import BpfObject

ROOT = Path(__file__).resolve().parent.parent
BPF = ROOT / "tests" / "bpf"
OBJECTS = sorted(p for p in [*BPF.glob("*.bpf.o"), *(ROOT / "bpfmap" / "bpf").glob("*.bpf.o")]
                 if p.name != "nobtf.bpf.o")
GLOBALS = BPF / "globals.bpf.o"
SETPRIV = shutil.which("setpriv")


class Run(NamedTuple):
    rc: int
    out: str
    err: str


def bpfmap(*args: str, unprivileged: bool = False) -> Run:
    cmd = [sys.executable, "-m", "bpfmap", *args]
    if unprivileged and os.geteuid() == 0 and SETPRIV is not None:
        cmd = [SETPRIV, "--bounding-set", "-bpf,-sys_admin,-perfmon", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert "Traceback" not in r.stderr, r.stderr
    return Run(r.returncode, r.stdout, r.stderr)


def show(path: Path) -> dict[str, Any]:
    r = bpfmap("object", "show", "-j", str(path), unprivileged=True)
    assert r.rc == 0 and not r.err, r
    assert r.out.endswith("}\n") and r.out.count("\n") == 1  # compact: one line
    shown: dict[str, Any] = json.loads(r.out)
    return shown


GLOBALS_PLAIN = """\
object globals  file tests/bpf/globals.bpf.o
section .rodata  size 40B  flags 0x480  rdonly_prog  mmapable  frozen_after_load
\tknob  const volatile __u64  offset 0  size 8  value 7
\tcfg  const volatile struct config  offset 8  size 12  value {scale: 3, offset: -2, tag: [98, 112, 102, 0]}
\trun_mode  const volatile enum mode  offset 20  size 4  value "MODE_COUNT"
\ttarget_tgid  const volatile __u32  offset 24  size 4  value 0
\ttarget_syscall  const volatile __u64  offset 32  size 8  value 0
section .data  size 14B  flags 0x400  mmapable
\tinitialized  int  offset 0  size 4  value 42
\tword  union word  offset 4  size 4  value {value: 16909060, bytes: [4, 3, 2, 1]}
\tsmall  __u16[3]  offset 8  size 6  value [1, 2, 3]
section .data.custom  size 4B  flags 0x400  mmapable
\tcustom_data  __u32  offset 0  size 4  value 9
section .rodata.custom  size 4B  flags 0x480  rdonly_prog  mmapable  frozen_after_load
\tcustom_ro  const volatile __u32  offset 0  size 4  value 11
section .bss  size 80B  flags 0x400  mmapable
\tcounter  __u64  offset 0  size 8  value 0
\thist  __u32[8]  offset 8  size 32  value [0, 0, 0, 0, 0, 0, 0, 0]
\tstats  struct stats  offset 40  size 32  value {seen: {scale: 0, offset: 0, tag: [0, 0, 0, 0]}, packets: 0, last_len: 0}
\tsigned_total  __s64  offset 72  size 8  value 0
map counts  array  key 4B  value 8B  max_entries 4  flags 0x400
map globals.rodata  array  key 4B  value 40B  max_entries 1  flags 0x480  section .rodata
map globals.data  array  key 4B  value 14B  max_entries 1  flags 0x400  section .data
map .data.custom  array  key 4B  value 4B  max_entries 1  flags 0x400  section .data.custom
map .rodata.custom  array  key 4B  value 4B  max_entries 1  flags 0x480  section .rodata.custom
map globals.bss  array  key 4B  value 80B  max_entries 1  flags 0x400  section .bss
program count_packets  xdp  section xdp
program on_sys_enter  raw_tracepoint  section raw_tp/sys_enter
program set_values  syscall  section syscall
"""  # noqa: E501


def test_show_plain() -> None:
    r = bpfmap("object", "show", "tests/bpf/globals.bpf.o", unprivileged=True)
    assert r == Run(0, GLOBALS_PLAIN, "")


def test_show_json_is_the_plain_output() -> None:
    """-j says what the plain output says, with full values; -p is the same JSON indented
    four spaces per level, bpftool's writer."""
    shown = show(GLOBALS)
    rodata = shown["sections"][0]
    assert rodata == {
        "name": ".rodata", "size": 40, "flags": 0x480, "flag_names": ["rdonly_prog", "mmapable"],
        "frozen_after_load": True, "variables": [
            {"name": "knob", "type": "const volatile __u64", "offset": 0, "size": 8, "value": 7},
            {"name": "cfg", "type": "const volatile struct config", "offset": 8, "size": 12,
             "value": {"scale": 3, "offset": -2, "tag": [98, 112, 102, 0]}},
            {"name": "run_mode", "type": "const volatile enum mode", "offset": 20, "size": 4,
             "value": "MODE_COUNT"},
            {"name": "target_tgid", "type": "const volatile __u32", "offset": 24, "size": 4,
             "value": 0},
            {"name": "target_syscall", "type": "const volatile __u64", "offset": 32,
             "size": 8, "value": 0},
        ]}  # fmt: skip
    assert shown["maps"][0] == {"name": "counts", "type": "array", "bytes_key": 4,
                                "bytes_value": 8, "max_entries": 4, "flags": 0x400,
                                "flag_names": ["mmapable"]}
    assert shown["programs"] == [
        {"name": "count_packets", "type": "xdp", "section": "xdp"},
        {"name": "on_sys_enter", "type": "raw_tracepoint", "section": "raw_tp/sys_enter"},
        {"name": "set_values", "type": "syscall", "section": "syscall"},
    ]
    pretty = bpfmap("object", "show", "-p", str(GLOBALS))
    assert pretty.rc == 0 and json.loads(pretty.out) == shown
    assert pretty.out.startswith('{\n    "name": "globals",\n    "file": ')
    # Long arrays are cut short in the plain output only.
    counter = show(ROOT / "bpfmap" / "bpf" / "counter.bpf.o")
    assert counter["sections"][1]["variables"][0]["value"] == [0] * 512


def test_show_values_of_every_kind() -> None:
    """Floats, bools, 2-D arrays, 128-bit integers, anonymous unions, negative enumerators."""
    data = {v["name"]: v for v in show(BPF / "names.bpf.o")["sections"][0]["variables"]}
    assert data["ratio"]["value"] == 1.5 and data["precise"]["value"] == 0.25
    assert data["flag"]["value"] is True and data["flag"]["type"] == "_Bool"
    assert data["grid"]["value"] == [[1, 2, 3], [4, 5, 6]] and data["grid"]["type"] == "__u16[2][3]"
    assert data["wide"]["value"] == 7 and data["wide"]["size"] == 16
    assert data["level"]["value"] == "LOW"
    shape = data["shape"]["value"]
    assert shape["radius"] == 9 and shape["corner"] == {"x": 9, "y": 0}  # the same union
    assert shape["vertices"] == [{"x": 0, "y": 0}] * 3
    kconfig = show(BPF / "kconfig.bpf.o")["sections"][1]
    assert kconfig["name"] == ".kconfig"
    assert {v["value"] for v in kconfig["variables"]} == {None}  # libbpf fills it at load


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.name)
def test_show_matches_the_elf(path: Path) -> None:
    """Every section's size, every variable's offset and size are the ELF's own (section
    headers and symbol table, read with pyelftools), and every integer's initial value is
    the section's bytes there (zero for .bss)."""
    shown = show(path)
    assert shown["sections"], path
    with path.open("rb") as f:
        elf = ELFFile(f)
        symbols = {(sym.name, sym["st_shndx"]): sym for sym in elf.get_section_by_name(".symtab")
                   .iter_symbols() if sym["st_info"]["type"] == "STT_OBJECT"}
        for sec in shown["sections"]:
            if sec["name"] == ".kconfig":
                continue  # externs: no ELF section, libbpf lays them out
            index = elf.get_section_index(sec["name"])
            header = elf.get_section(index)
            assert header["sh_size"] == sec["size"]
            data = b"" if header["sh_type"] == "SHT_NOBITS" else header.data()
            for v in sec["variables"]:
                sym = symbols[(v["name"], index)]
                assert (sym["st_value"], sym["st_size"]) == (v["offset"], v["size"]), v
                if isinstance(v["value"], int) and not isinstance(v["value"], bool):
                    raw = data[v["offset"] : v["offset"] + v["size"]] or bytes(v["size"])
                    assert v["value"] in (int.from_bytes(raw, sys.byteorder, signed=s)
                                          for s in (False, True))


@pytest.mark.parametrize("path", [p for p in OBJECTS if p.name != "rejected.bpf.o"],
                         ids=lambda p: p.name)
def test_show_predicts_the_kernel_maps(path: Path) -> None:
    """The maps shown are the maps the kernel holds once libbpf loaded the object: names,
    types, sizes and flags (read back with BPF_OBJ_GET_INFO_BY_FD)."""
    require_kernel()
    shown = show(path)["maps"]
    with BpfObject.open(path, backend="kernel") as obj:
        obj.load()
        kernel = {}
        for m in obj.maps.values():
            if isinstance(m, int):
                continue  # not an array: its fd only
            info = m.info()
            kernel[info.name] = (info.key_size, info.value_size, info.max_entries,
                                 info.map_flags)
    predicted = {m["name"][:15]: (m["bytes_key"], m["bytes_value"], m["max_entries"], m["flags"])
                 for m in shown if m["type"] == "array"}
    assert kernel == predicted


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda d: d / "missing.bpf.o", "{p}: No such file or directory"),
        (lambda d: d, "{p}: not a regular file"),
        (lambda d: _write(d / "text.o", b"hello\n"),
         "{p}: not an ELF file (a BPF object is built with clang -O2 -g -target bpf)"),
        (lambda d: _write(d / "empty.o", b""),
         "{p}: not an ELF file (a BPF object is built with clang -O2 -g -target bpf)"),
        (lambda d: _write(d / "cut.o", GLOBALS.read_bytes()[:2000]),
         "{p}: not a BPF object (invalid ELF object format)"),
        (lambda d: Path(sys.executable).resolve(),
         "{p}: not a BPF object (invalid ELF object format)"),
        (lambda d: BPF / "nobtf.bpf.o", "{p} has no BTF: build it with clang -g"),
    ],
    ids=["missing", "directory", "text", "empty", "truncated", "not-bpf", "no-btf"],
)
def test_errors_are_one_line(tmp_path: Path, make: Any, error: str) -> None:
    path = make(tmp_path)
    for command in (["object", "show"], ["gen", "skeleton"]):
        r = bpfmap(*command, str(path))
        assert r == Run(255, "", f"Error: {error.format(p=path)}\n"), r
    r = bpfmap("object", "show", "-j", str(path))
    assert r.rc == 255 and not r.err
    assert json.loads(r.out) == {"error": error.format(p=path)}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unreadable_file() -> None:
    if os.geteuid() != 0 or SETPRIV is None:
        pytest.skip("needs root and setpriv to read as another user")
    folder = Path(tempfile.mkdtemp(prefix="objtool-"))  # pytest's own folder is 0700
    try:
        folder.chmod(0o755)
        path = _write(folder / "secret.bpf.o", GLOBALS.read_bytes())
        path.chmod(0o600)
        r = subprocess.run([SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, "-m", "bpfmap", "object", "show", str(path)],
                           capture_output=True, text=True, cwd="/",
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        shutil.rmtree(folder)
    assert (r.returncode, r.stdout, r.stderr) == (255, "", f"Error: {path}: Permission denied\n")


def test_usage() -> None:
    assert bpfmap("object", "show").rc == 255
    r = bpfmap("object", "show", str(GLOBALS), "extra")
    assert r == Run(255, "", "Error: what is 'extra'? ('show' takes one FILE)\n")
    r = bpfmap("object", "frob")
    assert r == Run(255, "", "Error: unknown verb 'frob' (see 'bpfmap object help')\n")
    help_text = bpfmap("object", "help")
    assert help_text.rc == 0 and help_text.err.startswith("Usage: bpfmap object { show | list }")
    assert bpfmap("object").rc == 255  # no verb: the usage, and a failure
    assert bpfmap("object", "sh", "tests/bpf/globals.bpf.o").out == GLOBALS_PLAIN  # a prefix
    assert "object" in bpfmap("--help").out and "gen" in bpfmap("--help").out


def test_docs_show_real_output() -> None:
    """Every ``$ bpfmap object show ...`` block in docs/bpf-objects.md is the real output."""
    text = (ROOT / "docs" / "bpf-objects.md").read_text()
    blocks = re.findall(r"```console\n\$ (bpfmap object show [^\n]*)\n(.*?)```", text, re.S)
    assert blocks
    for command, expected in blocks:
        r = bpfmap(*command.split()[1:])
        assert r.rc == 0 and r.out == expected, command


def test_corrupted_object_is_one_line(tmp_path: Path) -> None:
    """One byte changed in names.bpf.o (found by fuzzing) and libbpf 1.1 dies of SIGSEGV
    parsing it: both commands fail with one line, never a signal or a traceback."""
    from elftools.elf.elffile import ELFFile

    from bpfmap import _libbpf

    source = BPF / "names.bpf.o"
    with source.open("rb") as f:
        btf = int(ELFFile(f).get_section_by_name(".BTF")["sh_offset"])
    data = bytearray(source.read_bytes())
    data[btf + 186] = 131  # in a type record, relative to .BTF: stable across rebuilds
    path = _write(tmp_path / "bad.bpf.o", bytes(data))
    error = "the file is malformed (libbpf's parser died of SIGSEGV on it, in a child process)"
    for command in (["object", "show"], ["gen", "skeleton"]):
        run = bpfmap(*command, str(path))
        if _libbpf.version() == "1.1":  # the libbpf that crashes on it
            assert run == Run(255, "", f"Error: {path}: {error}\n")
        else:  # a fixed libbpf refuses it by itself
            assert (run.rc, run.out, run.err.count("\n")) == (255, "", 1), run


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.bpf.o"
    os.mkfifo(fifo)
    r = bpfmap("object", "show", str(fifo))
    assert r == Run(255, "", f"Error: {fifo}: not a regular file\n")


def test_fuzzed_objects_never_crash(tmp_path: Path) -> None:
    """Random byte changes to the shipped and test objects: each command succeeds or fails
    with one line on stderr; it never dies of a signal or prints a traceback."""
    rng = random.Random(2)
    path = tmp_path / "fuzz.bpf.o"
    for _ in range(15):
        data = bytearray(rng.choice(OBJECTS).read_bytes())
        for _ in range(rng.choice([1, 2, 4, 16])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(data)
        for command in (["object", "show"], ["gen", "skeleton"]):
            r = bpfmap(*command, str(path))
            assert r.rc in (0, 255), r
            assert (r.rc == 255) == bool(r.err) and r.err.count("\n") <= 1, r
