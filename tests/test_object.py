"""BPF objects: a clang-built .bpf.o opened on both backends, its globals typed and live.

The objects are built from tests/bpf/*.bpf.c (tools/bpf-objects.sh; CI checks the committed
objects against clang). Differential tests open the same object on both backends and compare
sections, variables, bytes, flags, frozen state and errno; kernel tests run the programs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI, outcome, require_kernel

from bpfmap import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, ArrayMap, BpfObject

BPF = Path(__file__).with_name("bpf")
GLOBALS = BPF / "globals.bpf.o"
XDP_PASS, XDP_DROP = 2, 1
NR_GETPPID = {"x86_64": 110, "aarch64": 173}.get(platform.machine())


def _libbpf_missing() -> str | None:
    try:
        from bpfmap import _libbpf

        _libbpf.lib()
    except ImportError as exc:
        return str(exc)
    return None


LIBBPF_MISSING = _libbpf_missing()


@pytest.fixture(autouse=True)
def libbpf() -> None:
    if LIBBPF_MISSING is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but libbpf is missing: {LIBBPF_MISSING}")
    pytest.skip(LIBBPF_MISSING)


@pytest.fixture(params=["emulated", "kernel"])
def obj(request: pytest.FixtureRequest) -> Iterator[BpfObject]:
    if request.param == "kernel":
        require_kernel()
    with BpfObject.open(GLOBALS, backend=request.param) as o:
        yield o


@pytest.fixture
def kobj() -> Iterator[BpfObject]:
    require_kernel()
    with BpfObject.open(GLOBALS, backend="kernel") as o:
        yield o


def both_objects() -> tuple[BpfObject, BpfObject]:
    require_kernel()
    return BpfObject.open(GLOBALS), BpfObject.open(GLOBALS, backend="kernel")


# -- what an opened object shows ---------------------------------------------------------


def test_sections_variables_and_types(obj: BpfObject) -> None:
    assert list(obj.sections) == [".rodata", ".data", ".data.custom", ".rodata.custom", ".bss"]
    layout = {
        name: [(v.name, v.offset, v.size, v.type.name) for v in sec.variables.values()]
        for name, sec in obj.sections.items()
    }
    assert layout[".rodata"] == [
        ("knob", 0, 8, "const volatile __u64"),
        ("cfg", 8, 12, "const volatile struct config"),
        ("run_mode", 20, 4, "const volatile enum mode"),
        ("target_tgid", 24, 4, "const volatile __u32"),
        ("target_syscall", 32, 8, "const volatile __u64"),
    ]
    assert layout[".bss"] == [
        ("counter", 0, 8, "__u64"),
        ("hist", 8, 32, "__u32[8]"),
        ("stats", 40, 32, "struct stats"),
        ("signed_total", 72, 8, "__s64"),
    ]
    assert layout[".data"] == [
        ("initialized", 0, 4, "int"),
        ("word", 4, 4, "union word"),
        ("small", 8, 6, "__u16[3]"),
    ]
    assert layout[".data.custom"] == [("custom_data", 0, 4, "__u32")]
    assert layout[".rodata.custom"] == [("custom_ro", 0, 4, "const volatile __u32")]
    assert [obj.rodata.flags, obj.bss.flags, obj.data.flags] == [
        BPF_F_MMAPABLE | BPF_F_RDONLY_PROG, BPF_F_MMAPABLE, BPF_F_MMAPABLE,
    ]
    assert {p.name: (p.section, p.type) for p in obj.programs.values()} == {
        "count_packets": ("xdp", "xdp"),
        "on_sys_enter": ("raw_tp/sys_enter", "raw_tracepoint"),
        "set_values": ("syscall", "syscall"),
    }
    assert obj.name == "globals" and not obj.loaded and obj.maps == {}
    assert all(sec.map is None and sec.access == "initial" for sec in obj.sections.values())


def test_initial_values_typed(obj: BpfObject) -> None:
    r, d = obj.rodata, obj.data
    assert (r.knob, r.run_mode, d.initialized, obj.sections[".data.custom"].custom_data) == (
        7, 1, 42, 9,
    )
    assert (r.cfg.scale, r.cfg.offset, bytes(r.cfg.tag)) == (3, -2, b"bpf\0")
    assert d.word.value == 0x01020304 and list(d.word.bytes) == [4, 3, 2, 1]
    assert d.small.tolist() == [1, 2, 3] and d.small.dtype.itemsize == 2
    assert obj.bss.counter == 0 and obj.bss.hist.tolist() == [0] * 8
    assert obj.bss.raw() == bytes(80)
    assert r["knob"] == r.knob and "knob" in r and list(r) == list(r.variables)


def test_wrong_values_are_refused_before_writing(obj: BpfObject) -> None:
    before = {name: sec.raw() for name, sec in obj.sections.items()}
    r, b, d = obj.rodata, obj.bss, obj.data
    cases = [
        (lambda: setattr(r, "knob", -1), ValueError),
        (lambda: setattr(r, "knob", 2**64), ValueError),
        (lambda: setattr(r, "knob", 1.5), TypeError),
        (lambda: setattr(r, "knob", True), TypeError),
        (lambda: setattr(r, "knob", "7"), TypeError),
        (lambda: setattr(r, "run_mode", "MODE_NOPE"), ValueError),
        (lambda: setattr(b, "signed_total", 2**63), ValueError),
        (lambda: setattr(b, "hist", [1, 2, 3]), ValueError),
        (lambda: setattr(b, "hist", [-1] * 8), ValueError),
        (lambda: setattr(b, "hist", [0.5] * 8), TypeError),
        (lambda: setattr(b, "stats", b"\0" * 31), ValueError),
        (lambda: setattr(b, "stats", 5), TypeError),
        (lambda: setattr(d, "word", r.cfg), TypeError),
        (lambda: setattr(b, "nope", 1), AttributeError),
        (lambda: setattr(r, "map", 1), AttributeError),
    ]
    for call, exc in cases:
        with pytest.raises(exc):
            call()
    assert {name: sec.raw() for name, sec in obj.sections.items()} == before
    with pytest.raises(KeyError):
        r["nope"]
    with pytest.raises(AttributeError):
        r.nope  # noqa: B018


@pytest.mark.parametrize(
    ("value", "got"),
    [("x", "str"), (5, "int"), (None, "NoneType"), ({"a": 1}, "dict"), (["a"] * 8, "list of str")],
)
def test_an_array_variable_refuses_a_wrong_type_with_typeerror(obj: BpfObject, value: object,
                                                                got: str) -> None:
    for load in (False, True):  # the initial value, then the live map
        if load:
            obj.load()
        before = obj.bss.raw()
        with pytest.raises(TypeError) as raised:
            obj.bss.hist = value
        assert str(raised.value) == ("hist is __u32[8]: it takes a sequence or array of "
                                     f"integers of shape (8,), or 32 bytes, not {got}")
        assert obj.bss.raw() == before


def test_writes_before_load_become_the_initial_values(obj: BpfObject) -> None:
    r, b, d = obj.rodata, obj.bss, obj.data
    r.knob = 2**64 - 1
    r.run_mode = "MODE_SCALE"
    cfg = type(r.cfg)()
    cfg.scale, cfg.offset = 9, -9
    r.cfg = cfg
    b.hist = range(8)
    b.signed_total = -(2**63)
    d.word = (0xAABBCCDD).to_bytes(4, sys.byteorder)
    d.small[1] = 500  # a view of the initial value: writes through too
    obj.load()
    assert (r.knob, r.run_mode, r.cfg.scale, r.cfg.offset) == (2**64 - 1, 5, 9, -9)
    assert b.hist.tolist() == list(range(8)) and b.signed_total == -(2**63)
    assert d.word.value == 0xAABBCCDD and d.small.tolist() == [1, 500, 3]
    assert all(sec.access == "mmap" for sec in obj.sections.values())


# -- after load: the maps and their rules, compared between the backends -----------------


def _loaded_state(o: BpfObject) -> dict[str, object]:
    state: dict[str, object] = {}
    for name, amap in o.maps.items():
        assert isinstance(amap, ArrayMap)
        info = amap.info()._replace(id=0)
        sec = o.sections.get(name)
        state[name] = (info, amap.frozen, sec.raw() if sec else None,
                       sec.readonly if sec else None)
    return state


def test_differential_load_maps_flags_frozen_bytes() -> None:
    emu, ker = both_objects()
    with emu, ker:
        for o in (emu, ker):
            o.rodata.knob = 99
            o.data.initialized = -5
            o.load()
        assert _loaded_state(emu) == _loaded_state(ker)
        assert _loaded_state(ker)[".rodata"][1] is True  # frozen, as libbpf leaves it
        assert _loaded_state(ker)[".bss"][1] is False


def _write_outcomes(o: BpfObject) -> list[object]:
    out: list[object] = []
    for sec in o.sections.values():
        for name in sec.variables:
            value = sec[name]
            out.append((sec.name, name, outcome(lambda s=sec, n=name, v=value: s.__setitem__(
                n, v.tobytes() if hasattr(v, "tobytes") else v))))
    return out


def _map_outcomes(o: BpfObject) -> list[object]:
    out: list[object] = []
    for name, amap in o.maps.items():
        assert isinstance(amap, ArrayMap)
        value = amap.lookup(0)
        out.append((name, "update", outcome(lambda m=amap, v=value: m.update(0, v))))
        out.append((name, "mmap rw", outcome(lambda m=amap: m.mmap().close())))
        out.append((name, "mmap ro", outcome(lambda m=amap: m.mmap(writable=False).close())))
        # a section's own writable mapping is alive: the kernel counts it (EBUSY)
        out.append((name, "freeze", outcome(amap.freeze)))
        out.append((name, "update after", outcome(lambda m=amap, v=value: m.update(0, v))))
    return out


def test_differential_errno_of_every_write_before_and_after_load() -> None:
    emu, ker = both_objects()
    with emu, ker:
        assert _write_outcomes(emu) == _write_outcomes(ker)
        emu.load()
        ker.load()
        after = _write_outcomes(ker)
        assert _write_outcomes(emu) == after
        eperm = [w for w in after if w[2] == ("errno", errno.EPERM)]
        assert {w[0] for w in eperm} == {".rodata", ".rodata.custom"}
        kernel_maps = _map_outcomes(ker)
        assert _map_outcomes(emu) == kernel_maps
        outcomes = {(n, op): r for n, op, r in kernel_maps}  # type: ignore[misc]
        assert outcomes[(".bss", "freeze")] == ("errno", errno.EBUSY)
        assert outcomes[(".rodata", "mmap rw")] == ("errno", errno.EPERM)
        assert outcomes[(".rodata", "freeze")] == ("errno", errno.EPERM)
        assert outcomes[("counts", "freeze")] == ("ok", None)


def test_rodata_is_frozen_after_load(obj: BpfObject) -> None:
    obj.load()
    assert obj.rodata.readonly and obj.rodata.map is not None and obj.rodata.map.frozen
    with pytest.raises(PermissionError) as info:
        obj.rodata.knob = 8
    assert info.value.errno == errno.EPERM and ".rodata.knob" in str(info.value)
    assert obj.rodata.knob == 7
    cfg = obj.rodata.cfg  # a copy: ctypes has no read-only objects, and the map never changes
    cfg.scale = 100
    assert obj.rodata.cfg.scale == 3
    assert not obj.rodata.variables["knob"].type.name.startswith("struct")


def test_bss_writes_go_through_the_mapping(obj: BpfObject) -> None:
    obj.load()
    b = obj.bss
    b.counter = 12345
    assert b.map is not None and b.map.lookup(0)[:8] == (12345).to_bytes(8, sys.byteorder)
    b.map.update(0, (7).to_bytes(8, sys.byteorder) + bytes(72))
    assert b.counter == 7  # the update reaches the mapping
    hist = b.hist
    hist[3] = 9  # a live view
    stats = b.stats
    stats.packets = 77  # a live struct
    assert b.map.lookup(0)[8 + 12 : 8 + 16] == (9).to_bytes(4, sys.byteorder)
    assert b.map.lookup(0)[56:64] == (77).to_bytes(8, sys.byteorder)  # stats.packets


def test_sharing_with_a_child_process(obj: BpfObject) -> None:
    obj.load()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes through its inherited mapping
        try:
            os.close(r)
            obj.bss.counter = 4242
            obj.data.small = [7, 8, 9]
            os.write(w, b"k")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"k"
    os.close(r)
    os.waitpid(pid, 0)
    assert obj.bss.counter == 4242 and obj.data.small.tolist() == [7, 8, 9]


# -- programs on the kernel --------------------------------------------------------------


def test_xdp_program_and_python_share_globals(kobj: BpfObject) -> None:
    kobj.rodata.knob = 5
    kobj.load()
    prog = kobj.programs["count_packets"]
    run = prog.test_run(b"\xaa" * 64, repeat=10)
    assert run.retval == XDP_PASS and run.data == b"\xaa" * 64
    b = kobj.bss
    assert b.counter == 50 and b.stats.packets == 10 and b.stats.last_len == 64
    assert b.hist.tolist() == [10, 0, 0, 0, 0, 0, 0, 0] and b.signed_total == -640
    counts = kobj.maps["counts"]
    assert isinstance(counts, ArrayMap) and counts.lookup(0) == (10).to_bytes(8, sys.byteorder)
    b.counter = 1000  # Python's write reaches the program
    kobj.data.initialized = 0
    run = prog.test_run(b"\0" * 14)
    assert run.retval == XDP_DROP and b.counter == 1005 and b.hist[6] == 1
    assert run.duration_ns >= 0


def test_program_writes_a_frozen_map(kobj: BpfObject) -> None:
    kobj.load()
    counts = kobj.maps["counts"]
    assert isinstance(counts, ArrayMap)
    counts.freeze()
    run = kobj.programs["set_values"].test_run(ctx=b"\0" * 8)
    assert run.retval == 7 + 11 + 9 and run.ctx == b"\0" * 8
    assert counts.lookup(2) == (27).to_bytes(8, sys.byteorder)  # the program still writes
    with pytest.raises(PermissionError):
        counts.update(2, bytes(8))
    assert kobj.data.word.bytes[0] == 0xFF and kobj.data.small[2] == 77


@pytest.mark.skipif(NR_GETPPID is None, reason="getppid's number is known for x86_64/aarch64")
def test_attach_raw_tracepoint_counts_exactly(kobj: BpfObject) -> None:
    kobj.rodata.target_tgid = os.getpid()
    kobj.rodata.target_syscall = NR_GETPPID
    kobj.load()
    with kobj.programs["on_sys_enter"].attach() as link:
        for _ in range(1000):
            os.getppid()
        assert kobj.bss.counter == 1000
    assert link.closed
    os.getppid()
    assert kobj.bss.counter == 1000


def test_verifier_rejection_carries_the_log() -> None:
    require_kernel()
    with BpfObject.open(BPF / "rejected.bpf.o", backend="kernel") as o, pytest.raises(
        PermissionError
    ) as info:
        o.load()
    assert info.value.errno == errno.EACCES
    assert "writes_rodata" in str(info.value) and "write into map forbidden" in str(info.value)


# -- misuse ------------------------------------------------------------------------------


def test_object_without_btf_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no BTF.*clang -g"):
        BpfObject.open(BPF / "nobtf.bpf.o")


def test_open_errors() -> None:
    with pytest.raises(FileNotFoundError):
        BpfObject.open(BPF / "missing.bpf.o")
    with pytest.raises(OSError):
        BpfObject.open(Path(__file__))  # not an ELF object
    with pytest.raises(ValueError, match="backend"):
        BpfObject.open(GLOBALS, backend="ebpf")
    with pytest.raises(TypeError):
        BpfObject()


def test_emulated_programs_cannot_attach() -> None:
    # test_run on the emulated backend: tests/test_vm_programs.py
    with BpfObject.open(GLOBALS) as o:
        o.load()
        with pytest.raises(NotImplementedError, match="emulated"):
            o.programs["on_sys_enter"].attach()


def test_use_after_close_and_double_load(obj: BpfObject) -> None:
    obj.load()
    with pytest.raises(ValueError, match="loaded already"):
        obj.load()
    view = obj.bss.hist  # an exported view keeps the mapping alive past close
    obj.close()
    obj.close()
    assert obj.closed and view.tolist() == [0] * 8
    with pytest.raises(ValueError, match="closed"):
        obj.load()
    with pytest.raises(ValueError):
        obj.programs["count_packets"].instructions  # noqa: B018


@pytest.mark.parametrize("load", [True, False], ids=["loaded", "opened"])
def test_every_access_after_close_is_refused(obj: BpfObject, load: bool) -> None:
    """Whatever views the caller still holds: the object's own accesses raise ValueError,
    and a held view keeps its memory (never unmapped under it)."""
    if load:
        obj.load()
    sec = obj.bss
    views = [sec.hist]  # exported before close: the mapping cannot be released under it
    obj.close()
    views[0][3] = 5
    assert views[0].tolist() == [0, 0, 0, 5, 0, 0, 0, 0]
    for _ in range(2):  # with the view alive, then after it is gone
        for access in (lambda: sec.counter, lambda: sec.hist, sec.raw,
                       lambda: setattr(sec, "counter", 1), lambda: sec.map,
                       lambda: sec.readonly):
            with pytest.raises(ValueError, match="^section .bss: operation on a closed "
                               "BpfObject$"):
                access()
        for access in (lambda: obj.bss, lambda: obj.data, lambda: obj.rodata,
                       lambda: obj.maps):
            with pytest.raises(ValueError, match="^operation on a closed BpfObject$"):
                access()
        with pytest.raises(ValueError, match="closed BpfObject"), obj:
            pass
        views.clear()
    assert repr(sec) == "<Section .bss 80 bytes, 4 variables, closed>"


def test_instructions_are_listed(obj: BpfObject) -> None:
    insns = obj.programs["count_packets"].instructions
    assert len(insns) % 8 == 0 and len(insns) > 8
    assert insns[-8] == 0x95  # BPF_JMP | BPF_EXIT


def test_struct_views_are_ctypes(obj: BpfObject) -> None:
    cfg = obj.rodata.cfg
    assert isinstance(cfg, ctypes.Structure) and ctypes.sizeof(cfg) == 12
    assert type(obj.data.word).__mro__[1] is ctypes.Union


def test_other_map_types_are_descriptors_on_the_kernel() -> None:
    require_kernel()
    with BpfObject.open(BPF / "hashmap.bpf.o", backend="kernel") as o:
        o.load()
        fd = o.maps["seen"]
        assert isinstance(fd, int) and os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-map"
        with pytest.raises(OSError) as info:
            o.programs["remember"].attach()  # XDP attaches to an interface, not by section
        assert info.value.errno == errno.EOPNOTSUPP


def test_other_map_types_refuse_to_load_emulated() -> None:
    with BpfObject.open(BPF / "hashmap.bpf.o") as o:
        with pytest.raises(OSError, match="map seen: .* array maps only, not hash") as info:
            o.load()
        assert info.value.errno == errno.EOPNOTSUPP
        assert not o.loaded and o.maps == {} and o.bss.map is None
        o.bss.last = 3  # still usable as an opened object
        assert o.bss.last == 3


def test_section_through_syscalls_where_not_mmapable(backend: str) -> None:
    from bpfmap._btf import BtfVar
    from bpfmap._section import Section

    with BpfObject.open(GLOBALS) as o:
        counter = o.bss.variables["counter"]
    sec = Section(".bss", 0, bytes(8), [BtfVar("counter", 0, 8, counter.type)])
    sec.counter = 5
    sec._loaded(ArrayMap(8, 1, backend=backend))  # no BPF_F_MMAPABLE: lookup/update
    assert sec.access == "syscall" and sec.counter == 0 and not sec.readonly
    sec.counter = 9
    assert sec.map is not None and sec.map.lookup(0) == (9).to_bytes(8, sys.byteorder)
    sec.map.freeze()
    assert sec.readonly
    with pytest.raises(PermissionError):
        sec.counter = 1
    sec.close()
