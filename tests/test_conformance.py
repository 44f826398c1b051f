"""``bpfmap conformance``: the shipped corpus, the runner, recording, random sequences, bpftool.

The corpus must pass live (emulation == kernel == recording, step by step)
and against its recording without the kernel; a provoked divergence must be
caught and printed as a scenario that replays it; maps made by bpftool must
open with ``ArrayMap.open_pinned`` and maps pinned by bpfmap must read back
with ``bpftool map dump``.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import IN_CI, KERNEL_UNAVAILABLE, require_kernel

from bpfmap import BPF_F_MMAPABLE, ArrayMap, _pin, conformance
from bpfmap.conformance import (
    DIVERGES,
    KNOWN,
    OLDER,
    SAME,
    STALE,
    Session,
    expected_for,
    load_corpus,
    main,
    parse_release,
    step_verdict,
)

RELEASE = platform.release()


@pytest.fixture(scope="module")
def corpus() -> list[conformance.Topic]:
    return load_corpus()


def all_scenarios(topics: list[conformance.Topic]) -> Iterator[conformance.Scenario]:
    for t in topics:
        yield from t.scenarios


# ------------------------------------------------------------------ the corpus


def test_corpus_is_package_data(corpus: list[conformance.Topic]) -> None:
    """Loaded through importlib.resources: one file per topic, every scenario valid."""
    names = {t.name for t in corpus}
    assert names >= {
        "create",
        "elements",
        "batch",
        "get_next_key",
        "freeze",
        "mmap",
        "mprotect",
        "processes",
        "readonly",
        "pins",
        "selftests",
    }
    scenarios = list(all_scenarios(corpus))
    assert len(scenarios) >= 250
    for sc in scenarios:
        assert sc.recorded_on != "unknown", sc.id
        assert sc.steps[0]["op"] == "create" or sc.steps[0]["op"] == "fork", sc.id
        for step in sc.steps:
            assert set(step["expect"]) & {"ok", "errno", "raise", "signal"}, (sc.id, step)


def test_corpus_names_the_documented_cases(corpus: list[conformance.Topic]) -> None:
    ids = " ".join(sc.id for sc in all_scenarios(corpus))
    for case in (
        "C01",
        "C13",
        "C25",
        "C43",
        "L04",
        "U09",
        "U12",
        "D04",
        "N05",
        "B03",
        "B13",
        "F02",
        "F16",
        "M05",
        "M07",
        "M09",
        "M17",
        "M25",
        "M60",
        "M70",
        "M73",
        "K06",
        "K08",
        "K09",
        "P06",
        "P08",
        "R12",
        "W00",
        "E02",
        "I16",
        "ST-mmap-data_map",
        "ST-mmap-rdonly_map",
        "ST-test_maps-arraymap",
        "ST-array_map_batch_ops",
    ):
        assert case in ids, case


def test_history_is_recorded_where_the_kernel_changed(corpus: list[conformance.Topic]) -> None:
    by_id = {sc.id: sc for sc in all_scenarios(corpus)}
    second = by_id["F02-freeze-again"].steps[2]
    assert second["expect"] == {"errno": 1}
    assert expected_for(second, "5.15.0") == ({"errno": 16}, "6.5")
    assert expected_for(second, RELEASE if parse_release(RELEASE) >= (6, 5) else "6.5.0")[1] is None
    ro_freeze = by_id["F16-R06-P11-read-only-freeze"].steps[1]
    assert expected_for(ro_freeze, "6.4.9")[0] == {"ok": None}
    mprotect = by_id["M17-ro-mprotect-rw"].steps[2]
    assert expected_for(mprotect, "5.6")[0] == {"ok": None}
    assert expected_for(mprotect, "5.7.0")[0] == {"errno": 13}
    offset = by_id["M27-offset-plus-two-pages"].steps[1]
    assert "ok" in expected_for(offset, "5.5.0")[0]
    rdonly_prog = by_id["M60-RDONLY_PROG-rw"].steps[1]
    assert "ok" in expected_for(rdonly_prog, "5.6.19")[0]


def test_step_verdicts() -> None:
    step = {"op": "freeze", "expect": {"errno": 1}, "history": [{"before": "6.5", "errno": 16}]}
    now, old = {"errno": 1}, {"errno": 16}
    assert step_verdict(step, now, now, "6.18.0") == SAME
    assert step_verdict(step, now, old, "6.18.0") == DIVERGES
    # an older kernel gives its recorded old outcome; the emulation keeps today's
    assert step_verdict(step, now, old, "6.1.90") == "older kernel" == OLDER
    assert step_verdict(step, old, old, "6.18.0") == STALE
    assert step_verdict(step, now, None, "5.4.0") == SAME  # recorded mode: today's outcome
    assert step_verdict(step, old, None, "6.18.0") == DIVERGES
    known = {"op": "mprotect", "expect": {"errno": 13}, "known_difference": "memfd"}
    assert step_verdict(known, {"ok": None}, {"errno": 13}, "6.18.0") == KNOWN
    assert step_verdict(known, {"ok": None}, {"ok": None}, "6.18.0") == STALE
    assert step_verdict(step, {"error": "x"}, {"error": "x"}, "6.18.0") == "ERROR"


def test_bad_scenarios_are_refused(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scenarios": [{"id": "x", "steps": [{"op": "explode"}]}]}))
    assert main(["--corpus", str(bad)]) == 2
    assert "unknown op" in capsys.readouterr().err
    bad.write_text(json.dumps({"scenarios": [{"id": "x", "steps": [{"op": "lookup"}]}]}))
    assert main(["--corpus", str(bad)]) == 2
    assert "missing ['key']" in capsys.readouterr().err


# ----------------------------------------------------------------- running it
# Every scenario, live and against its recording: tests/test_differential.py.


def test_cli_table_and_summary(capsys: pytest.CaptureFixture[str]) -> None:
    require_kernel()
    assert main([]) == 0
    out = capsys.readouterr().out
    assert f"kernel {RELEASE}" in out.splitlines()[0]
    assert "scenario" in out and "verdict" in out
    last = out.strip().splitlines()[-1]
    assert " 0 diverge" in last and "3 known differences" in last


def test_json_and_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    require_kernel()
    assert main(["--json", "-k", "F02-freeze"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kernel_release"] == RELEASE and report["mode"] == "live"
    assert [s["id"] for s in report["scenarios"]] == ["F02-freeze-again"]
    steps = report["scenarios"][0]["steps"]
    assert steps[2]["kernel"] == steps[2]["emulated"] == {"errno": 1}


def test_without_bpf_the_recording_is_the_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        conformance.command, "kernel_unavailable_reason", lambda: "bpf() denied (test)"
    )
    assert main(["-k", "freeze/"]) == 0
    out = capsys.readouterr().out
    assert "mode: recorded" in out and "bpf() denied (test)" in out
    assert "the recorded expectations" in out.strip().splitlines()[-1]
    assert main(["--random", "10"]) == 2  # random sequences need the kernel to compare with
    assert main(["--record", "x"]) == 2


def test_record_reproduces_the_corpus(corpus: list[conformance.Topic], tmp_path: Any) -> None:
    """--record on this kernel writes the same expectations, keeping history and notes."""
    require_kernel()
    # The upstream version (6.18.44), not the vendor suffix (-fc-v857): a rebuild of
    # the same kernel behaves the same, a different version may legitimately differ.
    recorded_on = {sc.recorded_on for sc in all_scenarios(corpus)}
    upstream = {conformance.parse_release(r) for r in recorded_on}
    if upstream != {conformance.parse_release(RELEASE)}:
        pytest.skip(f"the corpus was recorded on {recorded_on}, this is {RELEASE}")
    assert main(["--record", str(tmp_path)]) == 0
    fresh = {sc.id: sc for sc in all_scenarios(load_corpus(str(tmp_path)))}
    for sc in all_scenarios(corpus):
        if conformance.skip_reason(sc, True):
            continue
        assert fresh[sc.id].steps == sc.steps, sc.id


def _stop_freeze_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberately broken emulation: freeze always says EBUSY."""
    real = Session.op_freeze

    def op_freeze(self: Session, step: dict[str, Any]) -> conformance.Outcome:
        if self.backend == "emulated":
            return {"errno": 16}
        return real(self, step)

    monkeypatch.setattr(Session, "op_freeze", op_freeze)


def test_random_sequences_pass(capsys: pytest.CaptureFixture[str]) -> None:
    require_kernel()
    seed = int(os.environ.get("BPFMAP_SEED", random.SystemRandom().randrange(2**32)))
    print(f"BPFMAP_SEED={seed}")
    assert main(["--random", "300", "--seed", str(seed)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "0 divergences" in out and f"seed {seed}" in out


def test_random_divergence_is_printed_as_a_replayable_scenario(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    require_kernel()
    _stop_freeze_emulated(monkeypatch)
    assert main(["--random", "5000", "--seed", "7"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("DIVERGENCE (seed 7")
    text = out[out.index("\n{\n") + 1 :]
    scenario = json.loads(text)
    steps = scenario["scenarios"][0]["steps"]
    assert steps[0]["op"] == "create" and steps[-1]["op"] == "freeze"
    path = tmp_path / "divergence.json"
    path.write_text(text)
    assert main(["--corpus", str(path)]) == 1  # still broken: it replays
    assert "DIVERGES" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(["--corpus", str(path)]) == 0  # fixed: the same steps agree


def test_children_and_faults_never_crash_the_runner() -> None:
    """A store into a read-only page and a read of PROT_NONE die in a forked child."""
    s = Session("emulated")
    try:
        assert s.run({"op": "create", "value_size": 8, "max_entries": 512, "flags": 1024}) == {
            "ok": None
        }
        assert s.run({"op": "mmap", "as": "r"})["ok"] == {"len": 4096}
        assert s.run({"op": "mprotect", "region": "r", "prot": "none"}) == {"ok": None}
        assert s.run({"op": "read", "region": "r", "length": 8}) == {"signal": 11}
        assert s.run({"op": "write", "region": "r", "data": "01"}) == {"signal": 11}
        assert s.run({"op": "mprotect", "region": "r", "prot": "rw", "length": 8192}) == {
            "raise": "ValueError"  # beyond the region: never touches memory not ours
        }
        assert s.run({"op": "fork", "as": "c", "steps": [{"op": "lookup", "key": 0}]}) == {
            "ok": [{"ok": "00" * 8}]
        }
        assert s.run({"op": "lookup", "map": "nope", "key": 0})["error"]
    finally:
        s.close()


# --------------------------------------------------------------------- bpftool


def require_bpftool() -> str:
    require_kernel()
    tool = shutil.which("bpftool")
    if tool is None:
        if IN_CI:
            pytest.fail("CI=true but bpftool is not installed")
        pytest.skip("bpftool is not installed")
    if not os.path.ismount("/sys/fs/bpf"):
        if IN_CI:
            pytest.fail("CI=true but bpffs is not mounted at /sys/fs/bpf")
        pytest.skip("bpffs is not mounted at /sys/fs/bpf")
    return tool


@pytest.fixture
def bpffs_path() -> Iterator[str]:
    path = f"/sys/fs/bpf/bpfmap_conformance_test_{os.getpid()}"
    yield path
    if os.path.lexists(path):
        os.unlink(path)


def bpftool(tool: str, *args: str) -> Any:
    out = subprocess.run(
        [tool, "-j", "-n", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out) if out.strip() else None


def test_open_pinned_reads_and_maps_a_bpftool_map(bpffs_path: str) -> None:
    tool = require_bpftool()
    subprocess.run(
        [
            tool,
            "-n",
            "map",
            "create",
            bpffs_path,
            "type",
            "array",
            "key",
            "4",
            "value",
            "8",
            "entries",
            "4",
            "name",
            "bpfmap_bt",
            "flags",
            "1024",
        ],
        check=True,
    )
    bpftool(
        tool,
        "map",
        "update",
        "pinned",
        bpffs_path,
        "key",
        "2",
        "0",
        "0",
        "0",
        "value",
        "0x2a",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
    )
    m = ArrayMap.open_pinned(bpffs_path)
    assert m.backend == "kernel" and m.access == "rw"
    info = m.info()
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (2, 4, 8, 4)
    assert (info.map_flags, info.name) == (BPF_F_MMAPABLE, "bpfmap_bt")
    assert m.lookup(2) == struct.pack("<Q", 42)
    with m.mmap() as region:
        assert struct.unpack_from("<Q", region, 16)[0] == 42
        struct.pack_into("<Q", region, 24, 4242)  # a store bpftool must see
    dumped = bpftool(tool, "map", "lookup", "pinned", bpffs_path, "key", "3", "0", "0", "0")
    assert bytes(int(b, 16) for b in dumped["value"]) == struct.pack("<Q", 4242)
    ro = ArrayMap.open_pinned(bpffs_path, readonly=True)
    assert ro.lookup(3) == struct.pack("<Q", 4242)
    m.freeze()
    assert bpftool(tool, "map", "show", "pinned", bpffs_path)["frozen"] == 1


def test_bpftool_dumps_a_map_bpfmap_pinned(bpffs_path: str) -> None:
    tool = require_bpftool()
    m = ArrayMap(12, 3, flags=BPF_F_MMAPABLE, name="bpfmap_pinned", backend="kernel")
    m.update(0, b"first value!")
    with m.mmap() as region:
        region[16 * 2 : 16 * 2 + 12] = b"via mmap....".ljust(12, b".")
    m.pin(bpffs_path)
    m.freeze()
    dump = bpftool(tool, "map", "dump", "pinned", bpffs_path)
    got = {
        struct.unpack("<I", bytes(int(b, 16) for b in e["key"]))[0]: bytes(
            int(b, 16) for b in e["value"]
        )
        for e in dump
    }
    assert got == {0: b"first value!", 1: bytes(12), 2: b"via mmap...."}
    show = bpftool(tool, "map", "show", "pinned", bpffs_path)
    assert (show["type"], show["name"], show["flags"]) == ("array", "bpfmap_pinned", 1024)
    assert (show["bytes_key"], show["bytes_value"], show["max_entries"]) == (4, 12, 3)
    assert show["frozen"] == 1 and show["id"] == m.id


# ------------------------------------------------------------ the command line


def conformance_cli(*args: str, cwd: Any = None) -> subprocess.CompletedProcess[str]:
    """``python -m bpfmap conformance ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bpfmap", "conformance", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_error(run: subprocess.CompletedProcess[str], *words: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpfmap conformance: "), run.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_missing_corpus_is_one_line(tmp_path: Any) -> None:
    missing = tmp_path / "MISSING"
    assert_one_line_error(conformance_cli("--corpus", str(missing)), str(missing), "No such file")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    assert_one_line_error(conformance_cli("--corpus", str(binary)), "UTF-8")


def test_record_into_a_file_or_an_impossible_folder(tmp_path: Any) -> None:
    require_kernel()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    assert_one_line_error(conformance_cli("--record", str(a_file)), "not a directory")
    below = a_file / "corpus"
    assert_one_line_error(conformance_cli("--record", str(below)), "cannot make", "Not a directory")
    assert a_file.read_text() == "not a folder\n"  # nothing ran, nothing was written


@pytest.mark.parametrize("count", ["-5", "0", "many"])
def test_random_needs_a_positive_count(count: str) -> None:
    assert_one_line_error(conformance_cli("--random", count), "--random")


@pytest.mark.parametrize("extra", [[], ["--list"], ["--json"], ["--record", "unused"]])
def test_a_pattern_that_matches_nothing_says_so(extra: list[str], tmp_path: Any) -> None:
    run = conformance_cli("-k", "no-such-scenario", *extra, cwd=tmp_path)
    if extra == ["--record", "unused"] and KERNEL_UNAVAILABLE:
        assert run.returncode == 2  # refused earlier: recording needs the kernel
        return
    assert_one_line_error(run, "no scenario matches", "no-such-scenario")
    assert os.listdir(tmp_path) == []


def test_unknown_option_is_one_line() -> None:
    assert_one_line_error(conformance_cli("--bogus"), "--bogus")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def _slow_corpus(path: Any) -> None:
    """One scenario that pins, maps and forks on both backends, then fills the map for minutes."""
    steps: list[dict[str, Any]] = [
        {"op": "create", "value_size": 8, "max_entries": 4096, "flags": ["MMAPABLE"],
         "expect": {"ok": None}},
        {"op": "pin", "pin": "p", "expect": {"ok": None}},
        {"op": "mmap", "as": "r", "expect": {"ok": {"len": 32768}}},
        {"op": "fork", "as": "c", "expect": {"ok": []}},
    ]
    steps += [{"op": "fill_all", "expect": {"ok": None}}] * 10000
    topic = {"topic": "slow", "recorded_on": RELEASE, "scenarios": [{"id": "slow", "steps": steps}]}
    path.write_text(json.dumps(topic))


@pytest.mark.parametrize("to", ["process", "group"])
@pytest.mark.parametrize("mode", ["corpus", "random"])
def test_ctrl_c_exits_130_and_leaves_nothing(
    tmp_path: Any, mode: str, to: str
) -> None:
    """SIGINT to the command (or to its whole process group, as a terminal's Ctrl-C sends it)
    once it holds pins, mappings and forked children: exit 130, one line, nothing left over."""
    require_bpftool()  # the kernel backend and bpffs
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    holder_tag = f"conformance-int-{os.getpid()}-{mode}-{to}"  # a pin holder of its own
    if mode == "corpus":
        corpus = tmp_path / "slow.json"
        _slow_corpus(corpus)
        args = ["--corpus", str(corpus)]
    else:
        args = ["--random", "100000000", "--seed", "7"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bpfmap", "conformance", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmpdir), "BPFMAP_PIN_HOLDER": holder_tag},
        start_new_session=True,
    )
    bpffs_prefix = f"bpfmap-conformance-{proc.pid}-"
    try:
        # Started work: forked children (the corpus: one per backend) and pin folders exist.
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kids = _children(proc.pid)
            seen.update(kids)
            pinned = any(e.startswith(bpffs_prefix) for e in os.listdir("/sys/fs/bpf"))
            if len(kids) >= (2 if mode == "corpus" else 1) and pinned:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.005)  # polling for the state above, not a synchronisation
        else:
            pytest.fail("the command never held children and pins")
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert err == "bpfmap conformance: interrupted\n"
    assert [c for c in seen if os.path.exists(f"/proc/{c}")] == []  # no orphaned child
    assert [e for e in os.listdir("/sys/fs/bpf") if e.startswith(bpffs_prefix)] == []
    # The emulated pins' folders are gone, and their holder has let go of every map.
    assert os.listdir(tmpdir) == []
    try:
        held = _pin.sweep(f"bpfmap-pins/{os.getuid()}/{holder_tag}/0")
    except ConnectionRefusedError:
        held = 0  # it had exited already: it holds nothing
    assert held == 0
