"""``--programs``: every program of a folder of BPF objects on both backends, run for run.

Each object is opened and loaded on the emulated and on the kernel backend (the same
``.rodata`` knobs set on both, see :func:`prepare`); each program whose type the emulated
``test_run`` knows (:data:`RUNNABLE`) runs with the same inputs on both (:func:`inputs`:
packets of several sizes, with and without ``repeat``, with contexts the kernel accepts and
ones it refuses), and after each run the outcome (``retval``, ``data``, ``ctx``, or the errno)
and every byte of every map (:func:`state`) must be the same. An object the emulated backend
cannot hold (a hash map, no BTF) or a program type it cannot run is a skip, with the reason;
an object both backends refuse to load with the same errno is a ``same`` (the refusal is
what is compared). A file that libbpf cannot open at all is no object: :class:`UnreadableObject`.

``tests/test_vm_programs.py`` runs the same comparison under pytest.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .verdicts import DIVERGES, SAME, SKIP

#: the program types the emulated backend's test_run runs
RUNNABLE = ("xdp", "socket_filter", "syscall", "raw_tracepoint")
#: the folder of bpfmap's own objects, the default of ``--programs``
PACKAGE_OBJECTS = Path(__file__).resolve().parent.parent / "bpf"
SYSCALL_NR = 0x27  # getpid: what the .rodata knob ``target_syscall`` picks
PACKETS = [bytes(range(64)), b"\xff" * 14, bytes(range(256)) * 6]

Run = dict[str, Any]  # the keyword arguments of one test_run


def prepare(obj: Any) -> None:
    """.rodata knobs that make every branch of the programs run."""
    for section in obj.sections.values():
        if "target_tgid" in section.variables:
            section.target_tgid = os.getpid()
        if "target_syscall" in section.variables:
            section.target_syscall = SYSCALL_NR


def inputs(prog_type: str) -> list[Run]:
    """The test runs of a program of ``prog_type``: accepted ones and refused ones."""
    if prog_type == "xdp":
        # ctx: data (metadata bytes), data_end, data_meta, ingress_ifindex, rx_queue, egress
        ctxs = [(0, 64, 0, 0, 0, 0), (4, 64, 0, 0, 0, 0), (8, 30, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0),
                (0, 64, 0, 1, 0, 0), (12, 8, 0, 0, 0, 0), (3, 64, 0, 0, 0, 0),
                (0, 64, 4, 0, 0, 0), (0, 64, 0, 0, 0, 1), (0, 65, 0, 0, 0, 0)]
        return [{"data": p, "repeat": r} for p in PACKETS for r in (1, 3)] + [
            {"data": bytes(range(64)), "ctx": struct.pack("<6I", *c)} for c in ctxs]
    if prog_type == "socket_filter":
        ip = b"\x45\x00\x00\x54" + bytes(range(8)) + b"\x0a\x00\x00\x01\x0a\x00\x00\x02"
        frames = [bytes(6) + bytes(6) + b"\x08\x00" + ip + bytes(40),
                  b"\x02" + bytes(11) + b"\x08\x00" + ip[:17],
                  b"\x02" + bytes(11) + b"\x86\xdd" + bytes(40), b"\x01" + bytes(20),
                  b"\x02" + bytes(11) + b"\x86\xdd" + bytes(39)]
        return [{"data": f, "repeat": r} for f in frames for r in (1, 2)]
    if prog_type == "raw_tracepoint":
        return [{"ctx": struct.pack("<QQ", 0, SYSCALL_NR)}, {"ctx": struct.pack("<QQ", 0, 3)}]
    if prog_type == "syscall":
        return [{"ctx": bytes(range(32))}, {}]
    raise ValueError(f"no test run inputs for {prog_type} programs (runnable: "
                     f"{', '.join(RUNNABLE)})")


def state(obj: Any) -> dict[str, bytes]:
    """Every byte of every map of a loaded object, by map name."""
    return {name: b"".join(amap.lookup(i) for i in range(amap.max_entries))
            for name, amap in obj.maps.items()}


def outcome(prog: Any, args: Run) -> tuple[Any, ...]:
    """``(retval, data, ctx)`` of one test run, or ``("error", errno)``."""
    try:
        r = prog.test_run(**args)
    except OSError as exc:
        return ("error", exc.errno)
    return (r.retval, r.data, r.ctx)


@dataclass
class ProgramResult:
    """One program of one object: its verdict over every run."""

    object: str
    program: str
    type: str
    verdict: str  # SAME, DIVERGES or SKIP
    runs: int = 0
    reason: str = ""
    divergence: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.object}/{self.program}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"object": self.object, "program": self.program,
                               "type": self.type, "runs": self.runs, "verdict": self.verdict}
        if self.reason:
            out["reason"] = self.reason
        if self.divergence:
            out["divergence"] = self.divergence
        return out


class UnreadableObject(Exception):
    """A file given as a BPF object that neither backend can open: an input error, not a
    skip (skips are for what this environment cannot run)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot open it as a BPF object: {reason}")


def objects_in(folder: str | Path) -> list[Path]:
    """The object files (``*.o``) of ``folder`` (or ``folder`` itself, a file), sorted."""
    path = Path(folder)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such file or directory")
    return sorted(p for p in path.glob("*.o") if p.is_file())


def _describe(value: Any) -> Any:
    """An outcome or a map state in JSON: bytes as hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (tuple, list)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    return value


def _load(obj: Any) -> OSError | None:
    try:
        obj.load()
    except OSError as exc:
        return exc
    return None


def run_object(path: Path) -> list[ProgramResult]:
    """Every program of the object at ``path``, compared on both backends."""
    from .._object import BpfObject

    name = path.name
    try:
        emulated = BpfObject.open(path)
    except (OSError, ValueError) as exc:
        try:  # libbpf alone (no bpf() yet): what it cannot open is no object at all
            BpfObject.open(path, backend="kernel").close()
        except OSError as kexc:
            # BpfObject.open's own words for it (bpfmap._libbpf.open_error), without the
            # "open PATH: " that UnreadableObject says its own way
            reason = _one_line(kexc)
            reason = reason.split(": ", 1)[1] if reason.startswith("open ") else reason
            raise UnreadableObject(path, reason) from None
        except ValueError:  # an object bpfmap cannot hold (no BTF): a skip, below
            pass
        return [ProgramResult(name, "-", "-", SKIP, reason=_one_line(exc))]
    try:
        kernel = BpfObject.open(path, backend="kernel")
    except (OSError, ValueError) as exc:  # opened on one backend and not the other
        with emulated:
            return [ProgramResult(name, n, p.type, DIVERGES, reason="open: the kernel backend "
                                  f"refused it: {_one_line(exc)}")
                    for n, p in emulated.programs.items()]
    except BaseException:
        emulated.close()
        raise
    with emulated, kernel:
        kinds = {n: p.type for n, p in emulated.programs.items()}
        for o in (emulated, kernel):
            prepare(o)
        e_exc, k_exc = _load(emulated), _load(kernel)
        e_err = None if e_exc is None else e_exc.errno or -1
        k_err = None if k_exc is None else k_exc.errno or -1
        if e_exc is not None and e_err == errno.EOPNOTSUPP and k_exc is None:
            reason = _one_line(e_exc)  # what the emulation does not hold (a hash map)
            return [ProgramResult(name, n, t, SKIP, reason=reason) for n, t in kinds.items()]
        if e_err is not None or k_err is not None:
            verdict = SAME if e_err == k_err else DIVERGES
            how = _errno_text(k_err) if e_err == k_err else (
                f"kernel {_errno_text(k_err)}, emulated {_errno_text(e_err)}")
            return [ProgramResult(name, n, t, verdict, reason=f"load: {how}",
                                  divergence={} if verdict == SAME else {"load": how})
                    for n, t in kinds.items()]
        results = []
        before = (state(kernel), state(emulated))
        if before[0] != before[1]:
            return [ProgramResult(name, n, t, DIVERGES, reason="the maps differ after load",
                                  divergence={"kernel": _describe(before[0]),
                                              "emulated": _describe(before[1])})
                    for n, t in kinds.items()]
        for prog_name, kind in kinds.items():
            if kind not in RUNNABLE:
                results.append(ProgramResult(name, prog_name, kind, SKIP, reason=(
                    f"{kind} programs have no test run on the emulated backend")))
                continue
            results.append(compare(name, kernel.programs[prog_name],
                                    emulated.programs[prog_name], kernel, emulated))
        return results


def compare(name: str, kprog: Any, eprog: Any, kernel: Any, emulated: Any,
            runs: list[Run] | None = None) -> ProgramResult:
    """One program, loaded on both (of the objects ``kernel`` and ``emulated``), over ``runs``
    (default: :func:`inputs` of its type); the first run that differs ends it."""
    runs = inputs(kprog.type) if runs is None else runs
    for i, args in enumerate(runs):
        try:  # first: what the interpreter cannot run (a __ksym, a packet in fragments) is
            # a skip, before the kernel's run changes its maps
            e = outcome(eprog, args)
        except ValueError as exc:
            return ProgramResult(name, kprog.name, kprog.type, SKIP, i, "the emulated backend "
                                 f"cannot run it: {_one_line(exc)}")
        k = outcome(kprog, args)
        ks, es = state(kernel), state(emulated)
        if k != e or ks != es:
            maps = {m: {"kernel": ks[m].hex(), "emulated": es[m].hex()}
                    for m in ks if ks[m] != es.get(m)}
            return ProgramResult(name, kprog.name, kprog.type, DIVERGES, i + 1,
                                 f"run {i + 1} of {len(runs)} differs", {
                                     "run": _describe(args), "kernel": _describe(k),
                                     "emulated": _describe(e), "maps": maps})
    return ProgramResult(name, kprog.name, kprog.type, SAME, len(runs))


def _errno_text(n: int | None) -> str:
    from .report import errno_name

    return "loaded" if n is None else f"{errno_name(n)} ({n})"


def _one_line(exc: BaseException) -> str:
    text = str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def run_folder(paths: list[Path]) -> Iterator[ProgramResult]:
    for path in paths:
        yield from run_object(path)


def summarize(results: list[ProgramResult]) -> dict[str, int]:
    return {"programs": len(results), "runs": sum(r.runs for r in results),
            "same": sum(r.verdict == SAME for r in results),
            "skipped": sum(r.verdict == SKIP for r in results),
            "diverge": sum(r.verdict == DIVERGES for r in results)}


def summary_line(counts: dict[str, int], release: str) -> str:
    return (f"{counts['programs']} programs ({counts['runs']} runs), {counts['same']} same, "
            f"{counts['skipped']} skipped, {counts['diverge']} diverge: the interpreter vs the "
            f"running kernel, kernel {release}")


def table(results: list[ProgramResult]) -> str:
    rows = [("program", "type", "runs", "verdict")]
    for r in results:
        rows.append((r.id, r.type, str(r.runs),
                     r.verdict + (f": {r.reason}" if r.reason else "")))
    w = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "-" * (sum(w) + 6 + len("verdict")))
    return "\n".join(lines)


def details(results: list[ProgramResult]) -> list[str]:
    """What each diverging program did on each backend."""
    import json

    out = []
    for r in results:
        if r.verdict != DIVERGES:
            continue
        out.append(f"{r.id} DIVERGES: {r.reason}")
        for key, value in r.divergence.items():
            out.append(f"    {key}: {json.dumps(value)}")
    return out
