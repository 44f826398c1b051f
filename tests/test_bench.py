"""``bpfmap bench``: its command line (errors on one line, no traceback, nothing run for
nothing), the peers' skip reasons, the ctypes peer's bytes and errno, the program side's
hook for an interpreter. Speed itself is shown by the bench and ``benchmarks/``, never
asserted here."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import IN_CI, require_kernel

from bpfmap import BPF_F_MMAPABLE, ArrayMap, bench
from bpfmap.bench import peers, programs
from bpfmap.bench.core import Case, Skip
from bpfmap.bench.runner import run_cases


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bpfmap", "bench", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "args, says",
    [
        (["--repeats", "-1"], "--repeats: must be at least 1, got -1"),
        (["--repeats", "0"], "--repeats: must be at least 1, got 0"),
        (["--repeats", "many"], "--repeats: expected a whole number, got 'many'"),
        (["--min-time", "-1"], "--min-time: must be more than 0"),
        (["--min-time", "0"], "--min-time: must be more than 0"),
        (["--min-time", "nan"], "--min-time: must be more than 0"),
        (["--min-time", "soon"], "--min-time: expected a number of seconds"),
        (["-k", "no such case anywhere"], "no case matches -k 'no such case anywhere'"),
        (["-k", "zzz", "-k", "yyy", "--list"], "no case matches -k 'zzz' or 'yyy'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["-k", "noop", "--json", "/nonexistent-dir/x.json"], "--json /nonexistent-dir/x.json"),
    ],
)
def test_bad_values_are_one_line_errors(args: list[str], says: str) -> None:
    r = run_bench(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("bpfmap bench: error: ")
    assert says in r.stderr


def test_list_into_a_closed_pipe_is_quiet() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: the first write gets EPIPE, whatever the timing
    try:
        r = subprocess.run(
            [sys.executable, "-m", "bpfmap", "bench", "--list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert r.stderr == ""
    assert r.returncode == 141  # 128 + SIGPIPE, as a shell reports bpftool's


def test_list_names_the_new_rows_and_every_skip_has_its_reason() -> None:
    r = run_bench("--list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for peer in peers.PEERS:
        assert any(line.startswith(f"lookup value_size=8 [{peer}]") for line in lines)
    for name in programs.PROGRAMS:
        assert any(line.startswith(f"{name} [kernel-prog]") for line in lines)
    assert any(line.startswith("map dump -j entries=10000 [bpftool]") for line in lines)
    assert all(line.endswith(")") for line in lines if "(skip:" in line)


def test_a_quick_run_reports_peers_and_targets_as_json() -> None:
    require_kernel()
    require_libbpf()
    r = run_bench(
        "-k", "lookup value_size=8 [", "--repeats", "1", "--min-time", "0.001", "--json"
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    got = {row["backend"]: row for row in doc["results"]}
    for be in ("emulated", "kernel", "core-cffi", "libbpf-cffi", "ctypes"):
        assert got[be]["ns_per_op"] is not None and got[be]["skipped"] is None, got[be]
    names = [t["name"] for t in doc["targets"]]
    assert "lookup: kernel backend / fastest bare cffi route" in names


# -- the peers -----------------------------------------------------------------------------


@pytest.mark.parametrize("package", ["pylibbpf", "bpfmaps", "bcc"])
def test_a_missing_peer_is_skipped_with_how_to_get_it(
    package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # import fails as for a package not there
    reason = peers.missing(package)
    assert reason is not None and reason.startswith(f"{package} is not installed (")
    assert ("pip install " + package in reason) == (package != "bcc")
    mine = [c for c in peers.peer_cases(None) if c.backend == package]
    assert len(mine) == len(peers.OPS) and all(c.setup is None and c.skip for c in mine)
    assert {c.skip for c in mine if c.op != "lookup_into"} == {reason}
    results = run_cases(mine, 1, 1000)
    assert [r.skipped for r in results] == [c.skip for c in mine]


def test_without_bpf_every_peer_says_so() -> None:
    for c in peers.peer_cases("bpf() denied here"):
        assert c.setup is None
        assert c.skip == "kernel backend unavailable: bpf() denied here"


def test_the_ctypes_peer_reads_and_writes_the_same_bytes_with_the_kernels_errno() -> None:
    require_kernel()
    import ctypes

    m = ArrayMap(8, 16, flags=BPF_F_MMAPABLE, backend="kernel")
    try:
        w = peers.CtypesMap(m.fd, 8)
        m.update(3, b"abcdefgh")
        assert w.lookup(3) == b"abcdefgh"
        w.update(4, ctypes.create_string_buffer(b"ABCDEFGH", 8))
        assert m.lookup(4) == b"ABCDEFGH"
        with pytest.raises(OSError) as info:
            w.lookup(16)
        assert info.value.errno == errno.ENOENT
        with pytest.raises(OSError) as info:
            w.update(16, ctypes.create_string_buffer(8))
        assert info.value.errno == errno.E2BIG
    finally:
        m.close()


def test_the_verdict_names_who_is_beaten_and_by_how_much() -> None:
    line = peers.verdict(100.0, {"a": 150.0, "b": 80.0, "c": 300.0})
    assert line == "beats a 1.50x, c 3.00x; behind b 0.80x"
    assert peers.verdict(None, {"a": 1.0}) == "n/a"
    assert peers.verdict(5.0, {}) == "no peer ran"


# -- the program side ----------------------------------------------------------------------


def require_libbpf() -> None:
    from bpfmap import _libbpf

    try:
        _libbpf.lib()
    except _libbpf.LibbpfMissing as exc:
        if IN_CI:
            pytest.fail(f"CI=true but libbpf is missing: {exc}")
        pytest.skip(str(exc))


def test_program_rows_on_the_emulated_backend_measure_the_interpreter() -> None:
    """The emulated test_run runs the bench programs: their rows measure, each access made."""
    require_libbpf()
    prepared = programs.program_case("vm-prog", "global_increment")
    try:
        assert prepared.ops == programs.ACCESSES and prepared.run(10) > 0
    finally:
        prepared.cleanup()
    vm = [c for c in programs.program_cases(None) if c.backend == "vm-prog"]
    assert [c.op for c in vm] == [programs.INSN_LOOP, *programs.PROGRAMS]
    for r in run_cases(vm, 1, 1000):
        assert r.skipped is None and r.ns_per_op is not None and r.ns_per_op > 0


def test_interpreter_rows_beside_the_jit_with_their_ratio() -> None:
    """The alu_loop row (ns per instruction) and the program rows, on both backends in one
    run, as the text table and as JSON."""
    require_kernel()
    require_libbpf()
    r = run_bench("-k", "prog]", "--repeats", "1", "--min-time", "0.001")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("program (ns per access"))
    assert "kernel program (JIT)" in lines[at] and "interpreter/JIT" in lines[at]
    rows = lines[at + 2 : at + 6]
    assert [row.split(":")[0] for row in rows] == [programs.INSN_LOOP, *programs.PROGRAMS]
    for row in rows:  # the JIT's ns, the interpreter's ns, then the ratio of the two
        cells = row.split(":", 1)[1].split()
        assert cells.count("ns") == 2 and cells[cells.index("ns") + 3].startswith("x"), row
    r = run_bench("-k", "prog]", "--repeats", "1", "--min-time", "0.001", "--json")
    doc = json.loads(r.stdout)
    assert list(doc["interpreter"]) == [programs.INSN_LOOP, *programs.PROGRAMS]
    for name, row in doc["interpreter"].items():
        ns = {c["backend"]: c["ns_per_op"] for c in doc["results"] if c["op"] == name}
        assert (row["interpreter_ns"], row["jit_ns"]) == (ns["vm-prog"], ns["kernel-prog"])
        assert row["ratio"] == row["interpreter_ns"] / row["jit_ns"] and row["ratio"] > 0


def test_program_rows_on_the_kernel_count_every_access() -> None:
    require_kernel()
    require_libbpf()
    prepared = programs.program_case("kernel-prog", "global_increment")
    try:
        assert prepared.ops == programs.ACCESSES
        assert prepared.run(10) > 0
    finally:
        prepared.cleanup()


def test_a_setup_that_raises_skip_is_reported_with_its_message() -> None:
    def setup() -> Any:
        raise Skip("not on this machine")

    (result,) = run_cases([Case("g", "op", "emulated", {}, setup)], 1, 1000)
    assert result.skipped == "not on this machine" and result.ns_per_op is None


def test_the_package_keeps_its_public_names() -> None:
    assert callable(bench.main) and callable(bench.cases) and callable(bench.run_cases)
    assert all(isinstance(c, bench.Case) for c in bench.cases())


# -- scale ------------------------------------------------------------------------------------


def test_scale_memory_is_what_the_map_holds(backend: str) -> None:
    from bpfmap.bench import scale

    cell = scale.size_cell(backend, 64, 1000)
    assert cell["max_entries"] == 1000 and cell["fill_ns"] > 0
    assert cell["memory_after_fill"] >= 64 * 1000  # every value written is held
    if backend == "kernel":  # the kernel charges the whole array at create
        assert cell["memory_after_create"] == cell["memory_after_fill"]


def test_scale_processes_report_both_sharings_and_their_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bpfmap.bench import scale

    monkeypatch.setattr(scale, "SLICE_S", 0.005)
    cells = scale.process_cells("emulated", "update", 2)
    assert [c["maps"] for c in cells] == ["one shared", "one each"]
    assert all(c["processes"] == 2 and c["ops_per_s"] > 0 for c in cells)
    report = {"sizes": [], "processes": cells, "left_out": [], "cap_bytes": scale.CAP,
              "cpus": os.cpu_count(), "skipped": []}  # fmt: skip
    rows = scale.text(report).splitlines()
    assert any(r.split()[:4] == ["emulated", "update", "shared", "/"] for r in rows)
