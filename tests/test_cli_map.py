"""``bpfmap map``: bpftool's map verbs, compared with the real bpftool.

Every comparison runs the CLI as a subprocess (``python -m bpfmap map ...``)
and bpftool on the same arguments: exit status, stdout and stderr must be the
same bytes, on kernel maps (the same map for both tools) and on emulated maps
(modulo the map's id and path). bpftool is required under ``CI=true`` and
skipped with the reason elsewhere, as the kernel backend is.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import IN_CI, KERNEL_UNAVAILABLE, require_kernel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfmap.cli import common, json_writer
from bpfmap.cli import libc as cli_libc
from bpfmap.cli import map as map_command
from bpfmap.cli.map import handles

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "map-verbs.sh"
BPFFS = "/sys/fs/bpf"
BPFTOOL = shutil.which("bpftool")
SETPRIV = shutil.which("setpriv")
_names = itertools.count()


class Run(NamedTuple):
    rc: int
    out: bytes
    err: bytes


def bpfmap(*args: str) -> Run:
    r = subprocess.run([sys.executable, "-m", "bpfmap", "map", *args], capture_output=True)
    assert b"Traceback" not in r.stderr, r.stderr.decode()
    return Run(r.returncode, r.stdout, r.stderr)


def bpftool(*args: str) -> Run:
    assert BPFTOOL is not None
    # -n: bpftool must never mount a bpffs of its own over a directory of ours.
    r = subprocess.run(["bpftool", "-n", "map", *args], executable=BPFTOOL, capture_output=True)
    return Run(r.returncode, r.stdout, r.stderr)


def on_bpffs() -> bool:
    try:
        return os.statvfs(BPFFS) is not None and handles._is_bpffs(BPFFS) is True
    except OSError:
        return False


def require_bpftool() -> None:
    """The kernel, bpffs and bpftool: skipped with the reason, or failed under CI=true."""
    require_kernel()
    missing = None
    if BPFTOOL is None:
        missing = "bpftool is not installed"
    elif not on_bpffs():
        missing = f"no bpffs at {BPFFS}"
    if missing is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {missing}")
    pytest.skip(missing)


def unique(stem: str) -> str:
    """A name for a pin: no dots (bpffs refuses them) and unique to this run."""
    return f"bpfmap_cli_{os.getpid()}_{next(_names)}_{stem}"


def unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def normalize(data: bytes, paths: dict[str, str]) -> bytes:
    """Paths (longest first) and map ids replaced by placeholders."""
    for path, name in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        data = data.replace(path.encode(), name.encode())
    data = re.sub(rb"(?m)^[0-9]+: ", b"ID: ", data)
    data = re.sub(rb'"id": ?[0-9]+', b'"id":ID', data)
    return data


def same(a: Run, b: Run) -> bool:
    """Equal runs; bpftool's usage text and bpfmap's are compared as 'both printed usage'."""
    if a.rc != b.rc or a.out != b.out:
        return False
    if a.err.startswith(b"Usage:") or b"\nUsage:" in a.err:
        return (
            b"Usage: bpfmap map" in b.err and b.err.split(b"Usage:")[0] == a.err.split(b"Usage:")[0]
        )
    return a.err == b.err


VALUES = {1: "1 2 3 4 5 6 7 8", 2: "hex ff ee dd cc bb aa 99 88"}


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A kernel map made by bpftool and an emulated map made by bpfmap, same contents."""
    require_bpftool()
    kpath = f"{BPFFS}/{unique('k')}"
    epath = str(tmp_path_factory.mktemp("cli") / "emulated")
    create = ("type", "array", "key", "4", "value", "8", "entries", "4", "name", "cli",
              "flags", "1024")  # fmt: skip
    assert bpftool("create", kpath, *create).rc == 0
    try:
        assert bpfmap("create", epath, *create).rc == 0
        try:
            for key, value in VALUES.items():
                for tool, path in ((bpftool, kpath), (bpfmap, epath)):
                    run = tool("update", "pinned", path, "key", str(key), "0", "0", "0",
                               "value", *value.split())  # fmt: skip
                    assert run.rc == 0, run
            yield kpath, epath
        finally:
            unlink(epath)
    finally:
        unlink(kpath)


# Commands that leave the map as it is (updates write what is already there).
STATELESS = [
    "show pinned P", "-j show pinned P", "-p show pinned P", "show pinned P -j",
    "list pinned P", "s pinned P", "show pin P",
    "dump pinned P", "-j dump pinned P", "-p dump pinned P", "--json --pretty dump pinned P",
    "lookup pinned P key 1 0 0 0", "-j lookup pinned P key 1 0 0 0",
    "-p lookup pinned P key 1 0 0 0", "lookup pinned P key hex 02 00 00 00",
    "lookup pinned P key 0x01 0 0 0", "lookup pinned P k h 0x2 0 0 0",
    "lookup pinned P key 9 0 0 0", "-j lookup pinned P key 9 0 0 0",
    "lookup pinned P key 300 0 0 0", "lookup pinned P key 0x100 0 0 0",
    "lookup pinned P key 010 0 0 0", "lookup pinned P key 08 0 0 0",
    "lookup pinned P key 0x 0 0 0", "lookup pinned P key zz 0 0 0",
    "lookup pinned P key +1 0 0 0", "lookup pinned P -- key -1 0 0 0",
    "lookup pinned P key 99999999999999999999999 0 0 0",
    "lookup pinned P key 1 0 0", "lookup pinned P key 1 0 0 0 0", "lookup pinned P",
    "lookup pinned P key", "lookup pinned P key hex", "lookup pinned P key 1 0 0 0 value 1",
    "peek pinned P key 1 0 0 0", "peek pinned P",
    "update pinned P key 1 0 0 0 value 1 2 3 4 5 6 7 8",
    "-j update pinned P key 1 0 0 0 value 1 2 3 4 5 6 7 8 exist",
    "update pinned P value 1 2 3 4 5 6 7 8 key 1 0 0 0 any",
    "push pinned P key 1 0 0 0 value 1 2 3 4 5 6 7 8",
    "update pinned P key 1 0 0 0 value 1 2 3 4 5 6 7 8 noexist",
    "-j update pinned P key 1 0 0 0 value 1 2 3 4 5 6 7 8 noexist",
    "-p update pinned P key 1 0 0 0 value 1 2 3 4 5 6 7 8 noexist",
    "update pinned P key 9 0 0 0 value 1 2 3 4 5 6 7 8", "update pinned P key 1 0 0 0",
    "update pinned P key 1 0 0 0 value 1", "update pinned P key 1 0 0 0 key 1 0 0 0",
    "update pinned P key 1 0 0 0 value 1 2 3 4 5 6 7 8 any exist",
    "push pinned P value 1 2 3 4 5 6 7 8",
    "delete pinned P key 1 0 0 0", "-j delete pinned P key 1 0 0 0", "delete pinned P",
    "getnext pinned P", "-j getnext pinned P", "-p getnext pinned P",
    "getnext pinned P key 1 0 0 0", "-j getnext pinned P key 1 0 0 0",
    "getnext pinned P key 3 0 0 0", "getnext pinned P key 9 0 0 0", "getnext pinned P key",
    "getnext pinned P junk", "getnext pinned P key 1 0 0 0 junk",
    "pop pinned P", "-j pop pinned P", "dequeue pinned P", "event_pipe pinned P", "e pinned P",
    "dump pinned P extra", "dump", "show pinned P extra", "show pinned", "show foo",
    "show foo bar", "dump foo bar", "lookup foo bar key 1", "l pinned P key 1 0 0 0",
    "freeze pinned P extra", "freeze", "freeze pinned", "pin pinned P", "pin pinned P P",
    "bogus", "-j bogus", "-x show pinned P", "-j -x show pinned P", "--js show pinned P",
    "--pre show pinned P", "--json=1 show pinned P", "-jp show pinned P", "-pj show pinned P",
    "-p -j lookup pinned P key 1 0 0 0", "create", "create P type array",
]  # fmt: skip


@pytest.mark.parametrize("command", STATELESS)
def test_kernel_map_same_as_bpftool(maps: tuple[str, str], command: str) -> None:
    """bpfmap and bpftool on the same kernel map: the same bytes and exit status."""
    kpath, _ = maps
    args = [kpath if w == "P" else w for w in command.split()]
    theirs, ours = bpftool(*args), bpfmap(*args)
    assert same(theirs, ours), (theirs, ours)


@pytest.mark.parametrize("command", STATELESS)
def test_emulated_map_same_as_bpftool(maps: tuple[str, str], command: str) -> None:
    """bpfmap on an emulated map prints what bpftool prints for the kernel map."""
    kpath, epath = maps
    theirs = bpftool(*[kpath if w == "P" else w for w in command.split()])
    ours = bpfmap(*[epath if w == "P" else w for w in command.split()])
    paths = {kpath: "PATH", epath: "PATH"}
    theirs = Run(theirs.rc, normalize(theirs.out, paths), normalize(theirs.err, paths))
    ours = Run(ours.rc, normalize(ours.out, paths), normalize(ours.err, paths))
    assert same(theirs, ours), (theirs, ours)


SHAPES = [  # value_size, max_entries, flags
    (1, 1, 0), (5, 3, 0), (8, 4, 1024), (100, 1000, 0), (8, 512, 1024), (8, 513, 1024),
    (3, 1000, 1024), (4096, 3, 1024), (16, 2, 0), (20, 2, 0), (21, 2, 1024), (40, 3, 0),
    (8, 1, 128), (8, 2, 8), (8, 2, 16),
]  # fmt: skip


@pytest.mark.parametrize(("value_size", "max_entries", "flags"), SHAPES)
def test_shapes_emulated_as_kernel(
    tmp_path: Path, value_size: int, max_entries: int, flags: int
) -> None:
    """show (bytes_memlock: the kernel's own fdinfo) and dump layouts, emulated vs kernel."""
    require_bpftool()
    kpath, epath = f"{BPFFS}/{unique('shape')}", str(tmp_path / "shape")
    create = ["type", "array", "key", "4", "value", str(value_size), "entries",
              str(max_entries), "name", "shape", "flags", str(flags)]  # fmt: skip
    assert bpftool("create", kpath, *create).rc == 0
    try:
        assert bpfmap("create", epath, *create).rc == 0
        try:
            value = [str(i % 256) for i in range(value_size)]
            for tool, path in ((bpftool, kpath), (bpfmap, epath)):
                assert tool("update", "pinned", path, "key", "0", "0", "0", "0",
                            "value", *value).rc == 0  # fmt: skip
            paths = {kpath: "PATH", epath: "PATH"}
            for command in (["show"], ["-j", "show"], ["dump"], ["-p", "dump"],
                            ["lookup"], ["-j", "lookup"]):  # fmt: skip
                extra = ["key", "0", "0", "0", "0"] if command[-1] == "lookup" else []
                theirs = bpftool(*command, "pinned", kpath, *extra)
                ours = bpfmap(*command, "pinned", epath, *extra)
                assert theirs.rc == ours.rc == 0
                assert normalize(ours.out, paths) == normalize(theirs.out, paths)
                # ... and bpfmap on the kernel map is bpftool, byte for byte.
                assert bpfmap(*command, "pinned", kpath, *extra) == theirs
            shown = json.loads(bpfmap("-j", "show", "pinned", epath).out)
            assert shown["bytes_memlock"] == handles.emulated_memlock(
                value_size, max_entries, flags
            )
        finally:
            unlink(epath)
    finally:
        unlink(kpath)


def _script(tool: str, path: str, *, unprivileged: bool = False) -> bytes:
    cmd = ["bash", str(SCRIPT), tool, path]
    if unprivileged and os.geteuid() == 0 and SETPRIV is not None:
        cmd = [SETPRIV, "--bounding-set", "-bpf,-sys_admin,-perfmon", *cmd]
    r = subprocess.run(cmd, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    assert r.returncode == 0 and not r.stderr, r
    assert b"Traceback" not in r.stdout, r.stdout.decode()
    return normalize(r.stdout, {})


def test_acceptance_script(tmp_path: Path) -> None:
    """examples/map-verbs.sh, unchanged: bpftool on a kernel map, bpfmap on a kernel map,
    and bpfmap on an emulated map without CAP_BPF/CAP_SYS_ADMIN: the same output."""
    require_bpftool()
    tool = f"{sys.executable} -m bpfmap"
    kernel_bpftool = _script(BPFTOOL or "bpftool", f"{BPFFS}/{unique('verbs')}")
    kernel_bpfmap = _script(tool, f"{BPFFS}/{unique('verbs')}")
    emulated_dir = tmp_path / "shared"
    emulated_dir.mkdir()
    emulated_dir.chmod(0o777)
    emulated = _script(tool, str(emulated_dir / "verbs"), unprivileged=True)
    assert kernel_bpfmap == kernel_bpftool
    assert emulated == kernel_bpftool
    # The script did what it says.
    assert kernel_bpftool.count(b"$ map ") == 32
    for line in (b"Error: update failed: File exists\n[exit 239]",
                 b"Error: update failed: Argument list too long\n[exit 249]",
                 b"Error: delete failed: Invalid argument\n[exit 234]",
                 b"Error: failed to freeze map: Operation not permitted\n[exit 255]",
                 b"Error: pop failed: Unknown error 524\n[exit 244]",
                 b"\tfrozen\n", b'"frozen":1}', b"Found 4 elements",
                 b"key:\n04 00 00 00\n\nNot found\n[exit 254]"):  # fmt: skip
        assert line in kernel_bpftool, line


def test_emulated_script_without_kernel(tmp_path: Path) -> None:
    """The script's emulated run works wherever bpfmap does: no bpf(), no bpftool."""
    out = _script(f"{sys.executable} -m bpfmap", str(tmp_path / "verbs"), unprivileged=True)
    assert out.count(b"[exit 0]") == 21
    assert b"key: 01 00 00 00  value: 2a 00 00 00 00 00 00 00\n" in out
    assert b'"bytes_memlock":8192,"frozen":1}' in out
    assert b"Error: update failed: Operation not permitted\n[exit 255]" in out
    assert not (tmp_path / "verbs").exists()


CREATE_ERRORS = [
    "create P type array key 4 value 8 entries 4",
    "create P type array key 4 value 8 entries 0 name x",
    "create P type bogus key 4 value 8 entries 1 name x",
    "create P type array key 4 value 8 entries 1 name x flags 0x10000",
    "create P type array key 4 value 8 entries 1 name x bogus 1",
    "create P type array key 4 value 8 entries 1 name x key 4",
    "create P type array key 4x value 8 entries 1 name x",
    "create P type array key 4 value 8", "create P type array key 4 value 8 entries 1 name",
    "create P type array type array key 4 value 8 entries 1 name x",
    "create P key 4 value 8 entries 1 name x",
    "create P type array key 4 value 8 entries 1 name bad-name",
    "create P type array key 8 value 8 entries 1 name x",
    "create P type array key 4 value 0 entries 1 name x",
    "create P type array key 4 value 8 entries 1 name x flags 3",
    "-j create P type array key 4 value 8 entries 0 name x",
]  # fmt: skip


@pytest.mark.parametrize("command", CREATE_ERRORS)
def test_create_errors(tmp_path: Path, command: str) -> None:
    """Refused creates: bpftool's words, on bpffs and for emulated maps alike."""
    require_bpftool()
    kpath, epath = f"{BPFFS}/{unique('c')}", str(tmp_path / "c")
    try:
        theirs = bpftool(*[kpath if w == "P" else w for w in command.split()])
        ours_k = bpfmap(*[kpath if w == "P" else w for w in command.split()])
        ours_e = bpfmap(*[epath if w == "P" else w for w in command.split()])
    finally:
        unlink(kpath)
        unlink(epath)
    assert theirs.rc != 0
    assert ours_k == theirs
    paths = {kpath: "PATH", epath: "PATH"}
    assert ours_e.rc == theirs.rc
    assert normalize(ours_e.err, paths) == normalize(theirs.err, paths)
    assert normalize(ours_e.out, paths) == normalize(theirs.out, paths)
    assert not os.path.lexists(epath)


def test_create_on_bpffs_is_a_kernel_map(tmp_path: Path) -> None:
    """bpfmap map create on bpffs makes what bpftool makes; the name is cut at 15 bytes."""
    require_bpftool()
    mine, theirs = f"{BPFFS}/{unique('mine')}", f"{BPFFS}/{unique('theirs')}"
    create = "type array key 4 value 16 entries 8 name a_very_long_name_indeed flags 0x400"
    try:
        assert bpfmap("-j", "create", mine, *create.split()) == Run(0, b"null\n", b"")
        assert bpftool("create", theirs, *create.split()).rc == 0
        a, b = bpftool("-j", "show", "pinned", mine), bpftool("-j", "show", "pinned", theirs)
        assert normalize(a.out, {}) == normalize(b.out, {})
        assert json.loads(a.out)["name"] == "a_very_long_nam"
        # Creating over an existing pin: the map is made, the pin refused.
        again = bpfmap("create", mine, *create.split())
        assert again == bpftool("create", mine, *create.split())
        assert again.rc == 239
    finally:
        unlink(mine)
        unlink(theirs)


def test_pin_and_freeze(tmp_path: Path) -> None:
    """pin (kernel maps on bpffs, emulated maps elsewhere) and freeze, as bpftool does."""
    require_bpftool()
    k1, k2 = f"{BPFFS}/{unique('p')}", f"{BPFFS}/{unique('p')}"
    e1, e2 = str(tmp_path / "e1"), str(tmp_path / "e2")
    create = ["type", "array", "key", "4", "value", "8", "entries", "2", "name", "p"]
    assert bpftool("create", k1, *create).rc == 0
    try:
        assert bpfmap("create", e1, *create).rc == 0
        assert bpfmap("-j", "pin", "pinned", k1, k2) == Run(0, b"null\n", b"")
        assert bpfmap("pin", "pinned", e1, e2) == Run(0, b"", b"")
        assert bpfmap("show", "pinned", k2).out == bpftool("show", "pinned", k1).out
        assert bpfmap("show", "pinned", e2).out == bpfmap("show", "pinned", e1).out
        # A kernel map pins on bpffs only (bpftool would mount one there); an emulated
        # map anywhere else.
        no = bpfmap("pin", "pinned", k1, str(tmp_path / "k"))
        assert no.rc == 255 and b"Operation not permitted" in no.err
        no = bpfmap("pin", "pinned", e1, f"{BPFFS}/{unique('e')}")
        assert no.rc == 234 and b"Invalid argument" in no.err
        for path in (k1, e1):
            assert bpfmap("freeze", "pinned", path) == Run(0, b"", b"")
            assert bpfmap("-j", "freeze", "pinned", path) == Run(
                255, b'{"error":"failed to freeze map: Operation not permitted"}\n', b""
            )
            assert b"\tfrozen\n" in bpfmap("show", "pinned", path).out
        assert bpftool("freeze", "pinned", k2).rc == 255  # the same map, frozen
    finally:
        for path in (k1, k2, e1, e2):
            unlink(path)


def test_show_all_lists_kernel_maps(maps: tuple[str, str]) -> None:
    """show without MAP: every kernel map by id (BPF_MAP_GET_NEXT_ID), as bpftool lists it."""
    kpath, _ = maps
    map_id = json.loads(bpftool("-j", "show", "pinned", kpath).out)["id"]
    theirs = {m["id"]: m for m in json.loads(bpftool("-j", "show").out)}
    ours_run = bpfmap("-j", "show")
    assert ours_run.rc == 0
    ours = {m["id"]: m for m in json.loads(ours_run.out)}
    # Only this map: others come, go and change between the two listings.
    assert ours[map_id] == theirs[map_id]
    plain = bpfmap("show").out.decode()
    block = re.search(rf"(?m)^{map_id}: .*\n(\t.*\n)*", plain)
    assert block is not None
    assert block.group(0) in bpftool("show").out.decode()
    assert bpfmap("-p", "show").out.startswith(b"[{\n        ")


def test_id_and_name(maps: tuple[str, str]) -> None:
    """MAP as 'id N' and 'name NAME' (kernel maps), as bpftool resolves them."""
    kpath, _ = maps
    map_id = str(json.loads(bpftool("-j", "show", "pinned", kpath).out)["id"])
    name = unique("n")[-15:]
    npath = f"{BPFFS}/{unique('n')}"
    create = ["type", "array", "key", "4", "value", "4", "entries", "2", "name", name]
    assert bpftool("create", npath, *create).rc == 0
    try:
        for args in (["show", "id", map_id], ["-j", "dump", "id", map_id],
                     ["lookup", "id", map_id, "key", "1", "0", "0", "0"],
                     ["show", "id", hex(int(map_id))], ["show", "id", "4000000000"],
                     ["show", "id", "abc"], ["show", "name", name], ["-j", "dump", "name", name],
                     ["lookup", "name", name, "key", "0", "0", "0", "0"],
                     ["show", "name", "no_such_map_x"], ["-j", "show", "name", "no_such_map_x"],
                     ["lookup", "name", "no_such_map_x", "key", "0", "0", "0", "0"],
                     ["show", "name", "0123456789abcdefg"]):  # fmt: skip
            assert bpfmap(*args) == bpftool(*args), args
    finally:
        unlink(npath)


def test_other_map_types_show_only(tmp_path: Path) -> None:
    """Kernel maps of other types: shown as bpftool shows them; element verbs refused."""
    require_bpftool()
    paths = []
    try:
        for kind, value in (("hash", 8), ("prog_array", 4), ("percpu_array", 4)):
            path = f"{BPFFS}/{unique(kind)}"
            assert bpftool("create", path, *f"type {kind} key 4 value {value} entries 4 "
                           f"name {kind[:8]}".split()).rc == 0  # fmt: skip
            paths.append(path)
            for show in (["show"], ["-j", "show"], ["-p", "show"]):
                assert bpfmap(*show, "pinned", path) == bpftool(*show, "pinned", path)
            for verb in (["dump"], ["lookup", "key", "0", "0", "0", "0"], ["freeze"]):
                run = bpfmap(verb[0], "pinned", path, *verb[1:])
                assert run.rc == 255
                assert run.err == f"Error: {kind} map: bpfmap handles array maps only\n".encode()
        create = ["type", "hash", "key", "4", "value", "8", "entries", "4", "name", "h"]
        run = bpfmap("create", str(tmp_path / "h"), *create)
        assert run == Run(255, b"", b"Error: map type hash: bpfmap creates array maps only\n")
    finally:
        for path in paths:
            unlink(path)


def test_open_errors(tmp_path: Path) -> None:
    """What bpftool says when MAP is not a map, for kernel and emulated paths."""
    require_bpftool()
    for args in (["show", "pinned", f"{BPFFS}/no_such_pin"], ["show", "pinned", BPFFS],
                 ["-j", "dump", "pinned", f"{BPFFS}/no/such/pin"]):  # fmt: skip
        assert bpfmap(*args) == bpftool(*args), args
    missing = bpfmap("show", "pinned", str(tmp_path / "missing"))
    assert missing.rc == 255
    expected = f"Error: bpf obj get ({tmp_path}/missing): No such file or directory\n"
    assert missing.err == expected.encode()
    (tmp_path / "file").write_text("")
    run = bpfmap("dump", "pinned", str(tmp_path / "file"))
    assert run.rc == 255 and run.err.startswith(b"Error: bpf obj get (")


def test_help() -> None:
    """help, no verb, -h and --help: bpftool's usage text, for the verbs bpfmap has."""
    for args in (["help"], ["-h"], ["--help"], ["show", "-h"]):
        run = bpfmap(*args)
        assert run == Run(0, b"", map_command.HELP.format(bin="bpfmap", obj="map").encode()), args
    assert bpfmap("-j", "help") == Run(0, b"null\n", b"")
    # No verb: bpftool's first verb, show (tests/test_cli.py compares it with bpftool).
    unknown = bpfmap("bogus")
    assert unknown.rc == 255 and unknown.err.startswith(b"Usage: bpfmap map { show | list }")


def test_help_reads_like_bpftool() -> None:
    """Each usage line of bpfmap's help is bpftool's own (create lists fewer options)."""
    if BPFTOOL is None:
        if IN_CI:
            pytest.fail("CI=true but bpftool is not installed")
        pytest.skip("bpftool is not installed")
    theirs = bpftool("help").err.decode().replace("bpftool map", "bpfmap map").splitlines()
    ours = map_command.HELP.format(bin="bpfmap", obj="map").splitlines()
    kept = [line for line in ours if line.startswith(("Usage:", "       bpfmap map"))]
    assert len(kept) == 15
    for line in kept:
        if " create " in line:
            continue
        assert line in theirs, line
    for spec in ("MAP := ", "DATA := ", "UPDATE_FLAGS := "):
        assert next(x for x in ours if spec in x) in theirs


def test_broken_pipe(tmp_path: Path) -> None:
    """`bpfmap map dump ... | head -1`: no traceback when the reader goes away."""
    path = str(tmp_path / "big")
    create = ["type", "array", "key", "4", "value", "8", "entries", "100000", "name", "big"]
    assert bpfmap("create", path, *create).rc == 0
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bpfmap", "map", "dump", "pinned", path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"key: 00 00 00 00  value: 00 00 00 00 00 00 00 00\n"
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait()
        assert err == b""
    finally:
        unlink(path)


# -- in-process: the C library semantics bpftool's parsing relies on ----------------------

libc = ctypes.CDLL(None)
libc.strtoul.restype = ctypes.c_ulong
libc.strtoul.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
libc.dirname.restype = ctypes.c_char_p


@given(st.text(alphabet="0123456789abcdefxXgz+- \t", max_size=24), st.sampled_from([0, 10, 16]))
@settings(max_examples=400, deadline=None)
def test_strtoul_is_libc(text: str, base: int) -> None:
    raw = text.encode()
    buf = ctypes.create_string_buffer(raw)
    end = ctypes.c_char_p()
    value = libc.strtoul(buf, ctypes.byref(end), base)
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buf)  # type: ignore[operator]
    assert cli_libc.strtoul(text, base) == (value, text[consumed:])


@given(st.text(alphabet="/ab.", max_size=12))
@settings(max_examples=300, deadline=None)
def test_dirname_is_glibc(path: str) -> None:
    buf = ctypes.create_string_buffer(path.encode())
    result = libc.dirname(buf).decode()
    assert cli_libc.c_dirname(path) == (result, buf.value.decode())


def test_json_writer_is_bpftools() -> None:
    """The writer's bytes for the shapes bpftool prints (checked against bpftool above)."""
    for pretty, expected in (
        (False, '[{"key":["0x01"],"value":{"error":"a\\"b\\\\"}},{"key":null}]\n'),
        (True, '[{\n        "key": ["0x01"\n        ],\n        "value": {\n'
               '            "error": "a\\"b\\\\"\n        }\n    },{\n        "key": null\n'
               '    }\n]\n'),
    ):  # fmt: skip
        buf = io.StringIO()
        out = common.Output(buf)
        jw = json_writer.JsonWriter(out, pretty)
        jw.start_array()
        jw.start_object()
        jw.name("key")
        jw.hex_data(b"\x01")
        jw.name("value")
        jw.start_object()
        jw.string_field("error", 'a"b\\')
        jw.end_object()
        jw.end_object()
        jw.start_object()
        jw.null_field("key")
        jw.end_object()
        jw.end_array()
        jw.destroy()
        out.flush()
        assert buf.getvalue() == expected


# No 'id' or 'name': those reach other kernel maps of the machine, and this writes.
WORDS = ["show", "dump", "lookup", "update", "getnext", "delete", "peek", "pop", "freeze",
         "help", "list", "pinned", "P", "key", "value", "hex", "0", "1", "0x1",
         "255", "256", "-1", "zz", "", "any", "exist", "noexist", "-j", "-p", "--", "--json",
         "-x", "1 2"]  # fmt: skip


@given(st.lists(st.sampled_from(WORDS), max_size=14))
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_never_crashes(emulated_pin: str, words: list[str]) -> None:
    """Any arguments: an exit status and bpftool-style messages, never a traceback."""
    argv = [emulated_pin if w == "P" else w for w in words]
    stdout, stderr = io.BytesIO(), io.BytesIO()
    out, err = io.TextIOWrapper(stdout), io.TextIOWrapper(stderr)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        rc = map_command.main(argv)
    finally:
        sys.stdout, sys.stderr = saved
    out.flush()
    err.flush()
    assert 0 <= rc <= 255
    text = stderr.getvalue()
    assert not text or text.startswith((b"Error: ", b"Usage: ")), text


@pytest.fixture(scope="module")
def emulated_pin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = str(tmp_path_factory.mktemp("fuzz") / "m")
    create = ["type", "array", "key", "4", "value", "8", "entries", "4", "name", "f"]
    assert bpfmap("create", path, *create).rc == 0
    yield path
    unlink(path)


def test_kernel_unavailable_is_reported() -> None:
    """Without bpf(), show lists nothing and says why, as bpftool does."""
    if KERNEL_UNAVAILABLE is None and (os.geteuid() != 0 or SETPRIV is None):
        pytest.skip("needs a process without bpf(): root with setpriv, or no bpf() at all")
    cmd = [sys.executable, "-m", "bpfmap", "map", "show"]
    if KERNEL_UNAVAILABLE is None:
        assert SETPRIV is not None
        cmd = [SETPRIV, "--bounding-set", "-bpf,-sys_admin,-perfmon", *cmd]
    r = subprocess.run(cmd, capture_output=True)
    assert r.returncode == 255
    assert r.stderr == b"Error: can't get next map: Operation not permitted\n"
