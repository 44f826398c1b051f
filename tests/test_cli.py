"""The ``bpfmap`` command as a whole: bpftool's habits, never a traceback, never silent success.

``bpfmap [OPTIONS] map ...`` is run as a subprocess, with options before the
command, between command and verb, and after the verb's arguments (getopt
permutes them for bpftool), and compared with bpftool on the same words.

Options, unknown words, a bare ``bpfmap``, ``bpfmap map`` without a verb, one-line
errors that say what is at a path, a closed stdout and Ctrl-C. The map verbs one by
one are in tests/test_cli_map.py.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from test_cli_map import BPFFS, BPFTOOL, require_bpftool

from bpfmap import BPF_F_MMAPABLE, ArrayMap
from bpfmap._pin import MAGIC

_names = itertools.count()


class Run(NamedTuple):
    rc: int
    out: bytes
    err: bytes


def bpfmap(*args: str, **kw: object) -> Run:
    r = subprocess.run([sys.executable, "-m", "bpfmap", *args], capture_output=True, **kw)  # type: ignore[call-overload]
    assert b"Traceback" not in r.stderr, r.stderr.decode()
    return Run(r.returncode, r.stdout, r.stderr)


def bpftool(*args: str) -> Run:
    assert BPFTOOL is not None
    r = subprocess.run([BPFTOOL, *args], capture_output=True)
    return Run(r.returncode, r.stdout, r.stderr)


@pytest.fixture
def kernel_pin() -> Iterator[str]:
    """A kernel array map pinned on bpffs, with a few values."""
    require_bpftool()
    m = ArrayMap(8, 4, flags=BPF_F_MMAPABLE, name="h_cli", backend="kernel")
    for k in range(4):
        m[k] = bytes([k]) * 8
    path = f"{BPFFS}/h-cli-issue14-{os.getpid()}-{next(_names)}"
    m.pin(path)
    m.close()
    try:
        yield path
    finally:
        os.unlink(path)


PERMUTED = [
    ["-j", "map", "show", "pinned", "{p}"],
    ["map", "-j", "show", "pinned", "{p}"],
    ["map", "show", "-j", "pinned", "{p}"],
    ["map", "show", "pinned", "{p}", "-j"],
    ["--json", "map", "show", "pinned", "{p}"],
    ["map", "show", "pinned", "{p}", "--json"],
    ["-p", "map", "dump", "pinned", "{p}"],
    ["map", "-p", "dump", "pinned", "{p}"],
    ["map", "dump", "pinned", "{p}", "-p"],
    ["-jp", "map", "lookup", "pinned", "{p}", "key", "1", "0", "0", "0"],
    ["map", "lookup", "pinned", "{p}", "--pretty", "key", "1", "0", "0", "0"],
    ["--json", "--pretty", "map", "getnext", "pinned", "{p}", "key", "1", "0", "0", "0"],
    ["-j", "map", "-p", "update", "pinned", "{p}", "key", "2", "0", "0", "0",
     "value", "9", "9", "9", "9", "9", "9", "9", "9"],  # fmt: skip
    ["map", "dump", "pinned", "{p}"],
    ["map", "--", "dump", "pinned", "{p}"],
]


@pytest.mark.parametrize("words", PERMUTED, ids=" ".join)
def test_options_anywhere_as_bpftool(kernel_pin: str, words: list[str]) -> None:
    """Before: an option before 'map' printed the top-level usage and exited 0."""
    args = [w.format(p=kernel_pin) for w in words]
    ours = bpfmap(*args)
    assert ours.rc == 0, ours.err.decode()
    assert ours == bpftool(*args)


@pytest.mark.parametrize(
    "words",
    [
        ["-x", "map", "show"],
        ["map", "-x", "show"],
        ["map", "show", "-x"],
        ["--bogus", "map", "show"],
        ["map", "show", "--bogus"],
        ["nosuch"],
        ["map", "nosuch"],
        ["-j", "map", "nosuch"],
    ],
    ids=" ".join,
)
def test_unknown_options_and_commands_fail_as_bpftool(words: list[str]) -> None:
    require_bpftool()
    ours, theirs = bpfmap(*words), bpftool(*words)
    assert ours.rc == theirs.rc == 255
    assert ours.out == theirs.out  # nothing, or JSON null after -j
    assert ours.err.startswith((b"Error: ", b"Usage: ")) or ours.out == b"null\n"


def test_bare_bpfmap_fails() -> None:
    """No command is a failure (a script that lost its command must not succeed); the
    usage goes to stderr as bpftool's does (bpftool 7 itself exits 0 there)."""
    for args in ([], ["-j"], ["-p"], ["--json"]):
        run = bpfmap(*args)
        assert run.rc != 0 and run.out == b"", args
        assert run.err.startswith(b"Usage: bpfmap [OPTIONS] COMMAND"), args


def test_map_without_verb_lists_maps_as_bpftool(kernel_pin: str) -> None:
    """bpftool's cmd_select() runs the first verb, show: so does 'bpfmap map'."""
    m = ArrayMap.open_pinned(kernel_pin)
    try:
        for args in (["map"], ["-j", "map"], ["map", "-j"]):
            ours, theirs = bpfmap(*args), bpftool(*args)
            assert ours.rc == theirs.rc == 0, args
            line = (f'"id":{m.id},' if "-j" in args else f"{m.id}: array  name h_cli").encode()
            assert line in ours.out and line in theirs.out, args
    finally:
        m.close()


def test_create_with_a_long_path_is_one_line(tmp_path: Path) -> None:
    """Before: a ValueError traceback for a path over 107 bytes."""
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    create = ["type", "array", "key", "4", "value", "8", "entries", "4", "name", "x"]
    for path in (str(deep / "pin"), str(tmp_path / ("y" * 300))):
        run = bpfmap("map", "create", path, *create)
        if run.rc == 0:  # pins of any length are another part of issue 14
            os.unlink(path)
            continue
        assert run.rc != 0 and run.out == b""  # bpftool's -errno & 0xff, or 255
        assert run.err.startswith(f"Error: can't pin the object ({path}): ".encode())
        assert run.err.count(b"\n") == 1


def test_demo_into_a_closed_pipe_is_quiet() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m bpfmap demo | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", capture_output=True,
    )  # fmt: skip
    assert proc.stderr == b""
    assert proc.returncode in (0, 141)  # 141: the pipe closed before the demo ended
    assert proc.stdout.count(b"\n") == 1


def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path) -> None:
    path = str(tmp_path / "big")
    create = ["type", "array", "key", "4", "value", "8", "entries", "200000", "name", "big"]
    assert bpfmap("map", "create", path, *create).rc == 0
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bpfmap", "map", "dump", "pinned", path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()  # it is dumping, and blocked on the full pipe soon
        proc.send_signal(signal.SIGINT)
        proc.stdout.read()
        err = proc.stderr.read()
        assert proc.wait() == 130
        assert b"Traceback" not in err and err.count(b"\n") <= 1, err
    finally:
        os.unlink(path)


def test_errors_say_what_is_at_the_path(tmp_path: Path) -> None:
    """Before: 'Permission denied' for /etc/passwd, which is not a pin at all."""
    expected = b"Error: bpf obj get (/etc/passwd): not a pinned map (a file)\n"
    for verb in (["show"], ["dump"], ["lookup"], ["freeze"]):
        key = ["key", "0", "0", "0", "0"] if verb == ["lookup"] else []
        assert bpfmap("map", *verb, "pinned", "/etc/passwd", *key) == Run(255, b"", expected)
    run = bpfmap("-j", "map", "show", "pinned", str(tmp_path))
    assert run.rc == 255 and b"not a pinned map (a directory)" in run.out
    # A stale pin: a pin file whose holder is gone (it named a socket no one serves).
    stale = str(tmp_path / "stale")
    with open(stale, "wb") as f:
        f.write(MAGIC + f"holder bpfmap-pins/{os.getuid()}/gone/0/0\npid 0\n".encode())
    os.chmod(stale, 0o600)
    run = bpfmap("map", "show", "pinned", stale)
    assert run == Run(
        255, b"", f"Error: bpf obj get ({stale}): stale pin: the map it held is gone\n".encode()
    )


def test_a_pinned_program_is_not_a_map_as_bpftool_says(tmp_path: Path) -> None:
    require_bpftool()
    from test_handles import _bpf, load_kprobe_prog

    fd = load_kprobe_prog()
    path = f"{BPFFS}/h-cli-prog-{os.getpid()}"
    raw = ctypes.create_string_buffer(path.encode())
    try:
        _bpf(6, struct.pack("<QI", ctypes.addressof(raw), fd))  # BPF_OBJ_PIN
        for args in (["map", "show", "pinned", path], ["-j", "map", "dump", "pinned", path]):
            ours = bpfmap(*args)
            assert ours.rc == 255 and b"incorrect object type: prog" in ours.err + ours.out
            assert ours == bpftool(*args)
    finally:
        os.close(fd)
        if os.path.exists(path):
            os.unlink(path)


@pytest.mark.parametrize("words", [["demo", "extra"], ["bench", "--bogus"],
                                   ["bench", "--repeats", "zero"], ["conformance", "--bogus"]])
def test_argument_errors_of_the_commands_are_one_line(words: list[str]) -> None:
    """argparse prints its usage block before the error; bpfmap's commands say it in one line."""
    run = bpfmap(*words)
    assert run.rc == 2 and run.out == b""
    assert run.err.count(b"\n") == 1 and run.err.startswith(b"bpfmap " + words[0].encode()), run.err
