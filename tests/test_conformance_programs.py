"""``bpfmap conformance --programs`` and ``--random-programs``: programs on the interpreter and
on the kernel, run by the command as a user runs it (a subprocess), in text and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_kernel
from test_object import libbpf  # noqa: F401  (the autouse fixture: libbpf present)

from bpfmap.conformance import command
from bpfmap.conformance.random_programs import replay_command

ROOT = Path(__file__).resolve().parent.parent
TEST_OBJECTS = ROOT / "tests" / "bpf"


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfmap", "conformance", *args],
                          capture_output=True, text=True, timeout=600)


def test_programs_of_the_package_are_the_same_on_both() -> None:
    require_kernel()
    r = conformance("--programs", "--details")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("bpfmap conformance --programs on kernel ")
    for name in ("bench.bpf.o/global_increment", "counter.bpf.o/count_packets",
                 "counter.bpf.o/count_syscalls"):
        assert any(line.startswith(name) and line.endswith("same") for line in lines), name
    assert lines[-1].startswith("6 programs (82 runs), 6 same, 0 skipped, 0 diverge: ")


def test_programs_of_the_test_objects_as_json() -> None:
    require_kernel()
    r = conformance("--programs", str(TEST_OBJECTS), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["mode"] == "live" and "vm.bpf.o" in doc["objects"]
    by = {(p["object"], p["program"]): p for p in doc["programs"]}
    assert doc["summary"]["diverge"] == 0 and doc["summary"]["skipped"] == 2
    # every program of vm.bpf.c (the instruction classes and helpers) ran and agreed
    vm = {k[1]: v for k, v in by.items() if k[0] == "vm.bpf.o"}
    assert set(vm) == {"arith", "calls", "maps", "printk", "parse", "filter", "args"}
    assert all(p["verdict"] == "same" and p["runs"] > 0 for p in vm.values())
    # refused on both with the same errno: what is compared is the refusal
    assert by[("rejected.bpf.o", "writes_rodata")]["reason"] == "load: EACCES (13)"
    # what the emulated backend cannot hold is a skip with its reason
    assert by[("hashmap.bpf.o", "remember")]["verdict"] == "skip"
    assert "array maps only" in by[("hashmap.bpf.o", "remember")]["reason"]
    assert by[("nobtf.bpf.o", "-")]["verdict"] == "skip"
    assert doc["summary"]["runs"] == sum(p["runs"] for p in doc["programs"])


def test_a_folder_without_objects_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no objects here")
    r = conformance("--programs", str(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"bpfmap conformance: --programs {tmp_path}: no BPF object files (*.o) "
                        "in it\n")
    r = conformance("--programs", str(tmp_path / "missing"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such file" in r.stderr


def test_a_file_that_is_no_object_is_a_one_line_error(tmp_path: Path) -> None:
    """A file the user named that libbpf cannot open is an input error, never a skip: before
    it was "1 programs (0 runs), 0 same, 1 skipped" and exit 0."""
    require_kernel()
    notes = tmp_path / "notes.txt"
    notes.write_text("hi\n")
    for args in (["--programs", str(notes)], ["--programs", str(notes), "--json"]):
        r = conformance(*args)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == (f"bpfmap conformance: --programs {notes}: cannot open it as a BPF "
                            "object: not an ELF file (a BPF object is built with clang -O2 -g "
                            "-target bpf)\n")
    (tmp_path / "empty.o").write_bytes(b"")
    r = conformance("--programs", str(tmp_path / "empty.o"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"bpfmap conformance: --programs {tmp_path / 'empty.o'}: cannot "
                               "open it as a BPF object: not an ELF file")
    # one in a folder of good ones is the same error: the folder's report would hide it
    (tmp_path / "vm.bpf.o").write_bytes((TEST_OBJECTS / "vm.bpf.o").read_bytes())
    r = conformance("--programs", str(tmp_path))
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert f"{tmp_path / 'empty.o'}: cannot open it as a BPF object" in r.stderr


def test_random_programs_from_a_seed_give_no_divergence() -> None:
    require_kernel()
    r = conformance("--random-programs", "300", "--seed", "7")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("random programs: 300 of 300 from seed 7: ")
    assert " 0 divergences: " in r.stdout
    r = conformance("--random-programs", "300", "--seed", "7", "--json")
    doc = json.loads(r.stdout)
    assert (doc["seed"], doc["ran"], doc["diverged"], doc["divergence"]) == (7, 300, 0, None)
    assert doc["same"] + doc["rejected"] == 300 and doc["same"] > 0


def test_a_divergence_is_printed_as_a_replayable_program() -> None:
    from bpfmap._vm_random import generate

    require_kernel()
    # the line the command prints for a divergence runs the program again, alone
    insns = generate(11)
    line = replay_command(11, insns)
    assert line == f"python -m bpfmap._vm_random --seed 11 --replay {insns.hex()}"
    r = subprocess.run([sys.executable, *line.split()[1:]], capture_output=True, text=True,
                       timeout=120)
    assert (r.returncode, r.stdout) == (0, "same\n")


@pytest.mark.parametrize("option", [["--programs"], ["--random-programs", "5"]])
def test_without_bpf_one_line_and_a_failing_status(
    option: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(command, "kernel_unavailable_reason", lambda: "bpf() denied (test)")
    assert command.main(option) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"bpfmap conformance {option[0]} compares live and needs the "
                                 "kernel backend: bpf() denied (test)\n")


def test_bad_combinations_are_one_line_errors() -> None:
    for args in (["--programs", "--random-programs", "3"], ["--random-programs", "0"],
                 ["--random-programs", "many"]):
        r = conformance(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, args
        assert r.stderr.startswith("bpfmap conformance: ")


def test_the_first_divergence_is_reported_with_its_replay() -> None:
    from bpfmap._vm_random import Verdict, generate
    from bpfmap.conformance.random_programs import ProgramBatch

    batch = ProgramBatch(5, 10)  # as run() leaves it when seed 6 diverges
    batch.counts.update(same=1, diverged=1)
    batch.divergence = Verdict(6, "diverged", "kernel Outcome(retval=1)\nvm     Outcome(retval=2)")
    lines = batch.lines("6.18")
    assert lines[:3] == ["DIVERGENCE (program seed 6, kernel 6.18):",
                         "  kernel Outcome(retval=1)", "  vm     Outcome(retval=2)"]
    assert lines[4] == f"  python -m bpfmap._vm_random --seed 6 --replay {generate(6).hex()}"
    assert lines[5].startswith("random programs: 2 of 10 from seed 5: 1 same, 0 rejected by the "
                               "verifier, 1 divergences")
    doc = batch.to_json("6.18")
    assert doc["divergence"]["insns"] == generate(6).hex() and doc["diverged"] == 1


def test_what_the_interpreter_cannot_run_is_a_skip_before_the_kernel_runs_it() -> None:
    from bpfmap import BpfObject
    from bpfmap.conformance.programs import compare, state

    require_kernel()
    path = ROOT / "bpfmap" / "bpf" / "counter.bpf.o"
    with BpfObject.open(path, backend="kernel") as k, BpfObject.open(path) as e:
        k.load()
        e.load()
        # 4,000 bytes: the kernel puts what passes a page in fragments, which are not emulated
        runs = [{"data": bytes(64)}, {"data": bytes(4000)}, {"data": bytes(64)}]
        r = compare(path.name, k.programs["count_packets"], e.programs["count_packets"], k, e,
                    runs)
        assert (r.verdict, r.runs) == ("skip", 1)
        assert r.reason.startswith("the emulated backend cannot run it: test_run count_packets: "
                                   "packets over 3520 bytes")
        assert state(k) == state(e) and e.bss.packets == 1  # the kernel did not run it either
