"""``bpfmap conformance``: the emulation against the running kernel, case by case.

The corpus
==========
``bpfmap/scenarios/*.json`` (one file per topic, shipped with the package and
loaded with :mod:`importlib.resources`) holds scenarios: short sequences of
operations, each with the outcome a real kernel gave, recorded with
``bpfmap conformance --record`` on the release the file names
(``"recorded_on"``). A scenario id starts with the case ids of
``kernel-array-semantics.md`` it covers (``C01``, ``U09``, ``M70``, ...);
``ST-`` ids are the kernel selftests' assertions (``prog_tests/mmap.c``,
``test_maps.c``, ``array_map_batch_ops.c``) that need no BPF program.

A topic file::

    {"topic": "freeze", "title": "...", "recorded_on": "6.18.44-...", "page_size": 4096,
     "scenarios": [
       {"id": "F02-freeze-again", "doc": "...", "steps": [
         {"op": "create", "value_size": 12, "max_entries": 4, "expect": {"ok": null}},
         {"op": "freeze", "expect": {"ok": null}},
         {"op": "freeze", "expect": {"errno": 1},
          "history": [{"before": "6.5", "errno": 16}]}]}]}

An outcome is ``{"ok": RESULT}``, ``{"errno": N}`` (``"count"``: the elements
a failed batch wrote), ``{"raise": "TypeError"}`` (Python-level refusal of the
API), ``{"signal": 11}`` (an access that faults, run in a forked child) or
``{"error": "..."}`` (the runner itself failed: always a failure). Bytes are
hex, or ``{"len": N, "runs": [[offset, hex], ...]}`` (the non-zero runs) for
long ones, or ``{"len": N, "sha256": ...}`` for long dense ones.

The operations (``map`` defaults to ``"m"``; keys, flags and sizes are ints,
flags may also be names such as ``["MMAPABLE", "RDONLY"]``):

========================  ==================================================
``create``                ``ArrayMap(value_size, max_entries, flags=, name= | name_hex=,
                          key_size=)``, ``as`` (default ``m``); ``fd0``: ``"open"`` or
                          ``"closed"`` while creating (the token-fd cases)
``lookup``                ``key``, ``flags`` -> value
``lookup_into``           ``key``, ``flags``, a buffer of ``value_size + extra`` bytes of ``fill``
``update``                ``key``, ``value`` (hex) or ``fill`` (a hex pattern), ``flags``
``fill_all``              every key gets ``(7k + i + 1) & 0xff`` for byte ``i`` (a macro)
``delete``                ``key``
``lookup_and_delete``     ``key``, ``flags``
``get_next_key``          ``key`` (``null`` = start)
``lookup_batch``          ``count`` (``null`` = all), ``in_batch``, ``elem_flags``, ``flags``
``update_batch``          ``keys``; ``values`` (hex list), ``fill`` or ``ramp`` (value i is
                          byte ``ramp + i`` repeated); ``elem_flags``, ``flags``
``delete_batch``          ``keys``, ``elem_flags``, ``flags``
``freeze`` ``frozen``     ``BPF_MAP_FREEZE``; fdinfo's ``frozen:``
``info`` ``props``        ``BPF_OBJ_GET_INFO_BY_FD`` (without the id); the handle's attributes
``contents`` ``items``    every value (one lookup per key); ``list(m.items())``
``dup`` ``close``         a second handle (``dup`` + ``from_fd``) ``as``; close a handle
``mmap``                  ``writable``, ``shared``, ``offset``, ``length``; the region ``as``
``read`` ``write``        ``region``, ``offset``, ``length`` / ``data`` (hex)
``close_region``          ``munmap`` through :meth:`MapRegion.close`
``munmap``                part of a region (``offset``, ``length``; the hole stays reserved)
``mprotect``              ``prot``: ``none r w rw x rx rwx`` on (part of) a region
``madvise_dontfork``      ``MADV_DONTFORK`` on (part of) a region
``mremap_grow``           grow a region in place to ``length`` (undone if it works)
``reserve``               an anonymous read-only area of ``length`` bytes, for ``mmap_fixed``
``mmap_fixed``            ``MAP_FIXED`` a map's ``offset``/``length`` at ``at`` in a region
``fork``                  a child that inherits everything, runs ``steps``, then waits
``child``                 more ``steps`` in child ``child``; ``release`` (exit) / ``kill`` (SIGKILL)
``pin`` ``open_pinned``   pin ``map`` at pin name ``pin``; open it ``as`` (``readonly``)
``unpin`` ``pin_mode``    remove the pin; its permission bits
========================  ==================================================

Pin names map to a bpffs directory for the kernel backend and to a temporary
directory for the emulated one (each backend pins where it can). Regions keep
a page table of their protections: a read or write the protections do not
allow runs in a forked child, whose death by signal is the outcome, so a
scenario can never crash the runner.

Verdicts
========
Every step runs on both backends in lockstep; a step is ``same`` when both
give the same outcome and that is the recorded one. ``DIVERGES`` means the
emulation and the kernel differ. ``stale`` means they agree with each other but
not with the recording (re-record the corpus on this kernel). ``known``: a
documented, unavoidable difference (the step names it in
``known_difference``): the kernel must still give the recorded outcome. There
are two, both from the memfd underneath: ``mprotect(PROT_EXEC)`` of a
read-only region succeeds (the kernel clears ``VM_MAYEXEC``: M18 and the
selftest's ``mprotect_ex``), and a region can grow with ``mremap`` (the kernel
sets ``VM_DONTEXPAND``: EFAULT, M33). ``skip``: the scenario needs more RAM
than the machine has to fail (C22-C24), pages of the size it was written for,
or bpffs for its pins.
``older kernel``: see below. The exit status is 1 for any ``DIVERGES``,
``stale`` or ``error``. Where ``bpf()`` is denied
(:func:`bpfmap.kernel_available` gives the reason), the emulation is compared
with the recorded expectations instead, and the report says so.

Kernel versions
===============
The report names the running kernel release and the release each topic was
recorded on. Where the kernel's behaviour changed since the 2019 seed
(fc9702273e2e, v5.5), a step records both::

    "expect": {"errno": 1}, "history": [{"before": "6.5", "errno": 16}]

``history`` entries, oldest boundary first, give the outcome on kernels older
than ``before``: a second freeze gave EBUSY before 6.5 (c4c84f6fb2c4, EPERM
since), as did a freeze through a second handle of a frozen map; a freeze
through a read-only handle succeeded before 6.5; a read-only mapping could be
``mprotect``-ed writable (or executable) before 5.7 (1f6cb19be2e2); the mmap
offset was ignored before 5.7 (333291ce5055); a writable mapping of a
``BPF_F_RDONLY_PROG`` map was allowed before 5.7 (dfeb376dd4cb);
``BPF_F_INNER_MAP`` was refused before 5.10; values above 4 MiB were refused
before 6.0; the batch commands did not exist before 5.6.

The emulation follows the running kernel of today, the one the corpus was
recorded on: it implements the current behaviour and does not imitate older
kernels (several of the old behaviours were bugs fixed for safety: a frozen
map writable through an upgraded mapping). On a kernel older than a recorded
change, a step where the kernel gives its ``history`` outcome and the
emulation the current one is reported as ``older kernel``, not as a
divergence. Without ``bpf()``, the emulation is compared with ``expect``, the
current behaviour, whatever the running release.

Refreshing: ``bpfmap conformance --record DIR`` runs the corpus on the kernel
backend only and writes the topic files with this kernel's outcomes (history,
notes and known differences are kept; changed steps are listed), to be run
with ``--corpus DIR``.

Random sequences
================
``--random N --seed S`` draws random map shapes (sizes, valid and invalid
flags and names) and random operation sequences (keys in and out of range,
flags, batches, freezes, mappings with random offsets and lengths, region
reads and writes, mprotect, partial munmap, forked children that inherit or
make mappings and are released or killed, second handles, pins and read-only
handles) and runs each step on both backends at once, comparing every
outcome. The first divergence is printed as a replayable scenario in the
corpus format (``--corpus FILE`` runs it). The documented differences
(``PROT_EXEC`` and ``mremap``) are never drawn.

Not expressible here, and why
=============================
Raw ``bpf_attr`` bytes, NULL pointers and bad descriptors (C36-C42, L07-L12,
U14-U16, D03, N07, N08, B10, B11, F18, F19, I11-I15): the API never builds
them. Other map types (C33-C35, M53), ``numa_node`` values (C15, C16),
capabilities and unprivileged callers (X01-X13), ``GET_FD_BY_ID`` and map ids
(G01-G03, R12, selftest item 11), pin file flags (P03, P17-P19): not in the
API. Pinning outside bpffs (P04): each backend pins in its own namespace.
A writer in flight during a freeze (K10, K11): needs a syscall stalled by
userfaultfd. ``PROT_EXEC`` mappings (M31): the API never maps executable.
Anything a BPF program does (selftest items 3 and 8 write through a program).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fnmatch
import hashlib
import json
import mmap as _mmap
import os
import platform
import random
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

from . import _constants as C
from ._map import PAGE_SIZE, ArrayMap, MapRegion, kernel_available

JSON = Any
Outcome = dict[str, Any]
P = PAGE_SIZE
U32 = 2**32 - 1

BACKENDS = ("emulated", "kernel")
PIN_ROOT = "/sys/fs/bpf"
CHILD_TIMEOUT = 60.0  # seconds a child may take to answer before it counts as hung

# -------------------------------------------------------------- the op language

_MAP = {"map"}
#: op -> (required arguments, optional arguments)
OPS: dict[str, tuple[set[str], set[str]]] = {
    "create": (
        {"value_size", "max_entries"},
        {"as", "flags", "name", "name_hex", "key_size", "fd0"},
    ),
    "lookup": ({"key"}, _MAP | {"flags"}),
    "lookup_into": ({"key"}, _MAP | {"flags", "extra", "fill"}),
    "update": ({"key"}, _MAP | {"flags", "value", "fill"}),
    "fill_all": (set(), _MAP),
    "delete": ({"key"}, _MAP),
    "lookup_and_delete": ({"key"}, _MAP | {"flags"}),
    "get_next_key": ({"key"}, _MAP),
    "lookup_batch": (set(), _MAP | {"count", "in_batch", "elem_flags", "flags"}),
    "update_batch": ({"keys"}, _MAP | {"values", "fill", "ramp", "elem_flags", "flags"}),
    "delete_batch": ({"keys"}, _MAP | {"elem_flags", "flags"}),
    "freeze": (set(), _MAP),
    "frozen": (set(), _MAP),
    "info": (set(), _MAP),
    "props": (set(), _MAP),
    "contents": (set(), _MAP),
    "items": (set(), _MAP),
    "dup": ({"as"}, _MAP),
    "close": (set(), _MAP),
    "mmap": (set(), _MAP | {"as", "writable", "shared", "offset", "length"}),
    "read": ({"region"}, {"offset", "length"}),
    "write": ({"region", "data"}, {"offset"}),
    "close_region": ({"region"}, set()),
    "munmap": ({"region"}, {"offset", "length"}),
    "mprotect": ({"region", "prot"}, {"offset", "length"}),
    "madvise_dontfork": ({"region"}, {"offset", "length"}),
    "mremap_grow": ({"region", "length"}, set()),
    "reserve": ({"as", "length"}, set()),
    "mmap_fixed": ({"region"}, _MAP | {"at", "writable", "offset", "length"}),
    "fork": ({"as"}, {"steps"}),
    "child": ({"child", "steps"}, set()),
    "release": ({"child"}, set()),
    "kill": ({"child"}, set()),
    "pin": ({"pin"}, _MAP),
    "open_pinned": ({"pin", "as"}, {"readonly"}),
    "unpin": ({"pin"}, set()),
    "pin_mode": ({"pin"}, set()),
}
STEP_KEYS = {"op", "expect", "history", "known_difference", "note"}
PROTS = {
    "none": _mmap.PROT_NONE if hasattr(_mmap, "PROT_NONE") else 0,
    "r": _mmap.PROT_READ,
    "w": _mmap.PROT_WRITE,
    "rw": _mmap.PROT_READ | _mmap.PROT_WRITE,
    "x": _mmap.PROT_EXEC,
    "rx": _mmap.PROT_READ | _mmap.PROT_EXEC,
    "rwx": _mmap.PROT_READ | _mmap.PROT_WRITE | _mmap.PROT_EXEC,
}


class ScenarioError(Exception):
    """A scenario that does not follow the op language."""


def validate_steps(steps: Any, where: str) -> None:
    if not isinstance(steps, list):
        raise ScenarioError(f"{where}: steps must be a list")
    for i, step in enumerate(steps):
        here = f"{where} step {i}"
        if not isinstance(step, dict) or step.get("op") not in OPS:
            raise ScenarioError(f"{here}: unknown op {step!r:.80}")
        required, optional = OPS[step["op"]]
        missing = required - step.keys()
        if missing:
            raise ScenarioError(f"{here} ({step['op']}): missing {sorted(missing)}")
        extra = step.keys() - required - optional - STEP_KEYS
        if extra:
            raise ScenarioError(f"{here} ({step['op']}): unknown {sorted(extra)}")
        if step["op"] in ("fork", "child"):
            validate_steps(step.get("steps", []), here)


def flag_value(x: Any) -> int:
    """An int, a constant's name (``"MMAPABLE"``, ``"BPF_F_RDONLY"``, ``"NOEXIST"``) or a list."""
    if isinstance(x, bool):
        raise ScenarioError(f"flags must be ints or names, not {x!r}")
    if isinstance(x, int):
        return x
    if isinstance(x, str):
        for name in (x, f"BPF_{x}", f"BPF_F_{x}"):
            v = getattr(C, name, None)
            if isinstance(v, int):
                return v
        raise ScenarioError(f"unknown flag {x!r}")
    if isinstance(x, list):
        out = 0
        for item in x:
            out |= flag_value(item)
        return out
    raise ScenarioError(f"bad flags {x!r}")


def pattern(key: int, size: int) -> bytes:
    """``fill_all``'s value for ``key``: byte i is ``(7 * key + i + 1) & 0xff``."""
    return bytes((key * 7 + i + 1) & 0xFF for i in range(size))


def repeat_hex(hexpat: str, size: int) -> bytes:
    pat = bytes.fromhex(hexpat)
    if not pat:
        raise ScenarioError("empty fill pattern")
    return (pat * (size // len(pat) + 1))[:size]


def encode_bytes(data: bytes) -> JSON:
    """Hex for short data; the non-zero runs, or a digest, for long data."""
    if len(data) <= 64:
        return data.hex()
    runs: list[list[Any]] = []
    total = 0
    stripped = data.rstrip(b"\0")
    i, n = 0, len(stripped)
    while i < n:
        if stripped[i]:
            j = i
            while j < n and stripped[j]:
                j += 1
            runs.append([i, stripped[i:j].hex()])
            total += j - i
            if total > 256 or len(runs) > 32:
                digest = hashlib.sha256(data).hexdigest()
                return {"len": len(data), "sha256": digest}
            i = j
        else:
            i += 1
    return {"len": len(data), "runs": runs}


def canon(x: Any) -> JSON:
    """The JSON form of a result (tuples become lists), for equality and printing."""
    return json.loads(json.dumps(x))


def errno_name(n: int) -> str:
    if n == C.ENOTSUPP:
        return "ENOTSUPP"
    return errno.errorcode.get(n, f"E{n}")


def short(o: Outcome | None) -> str:
    """A few characters for the table."""
    if o is None:
        return "-"
    if "errno" in o:
        s = errno_name(o["errno"])
        return f"{s}/{o['count']}" if "count" in o else s
    if "raise" in o:
        return str(o["raise"])
    if "signal" in o:
        try:
            return signal.Signals(o["signal"]).name
        except ValueError:
            return f"SIG{o['signal']}"
    if "error" in o:
        return "ERROR"
    if "skip" in o:
        return "skip"
    v = o.get("ok")
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    return "ok"


# ------------------------------------------------------------------ libc calls

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
MAP_FAILED = 2**64 - 1 if ctypes.sizeof(ctypes.c_void_p) == 8 else 2**32 - 1
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_PRIVATE = _mmap.MAP_PRIVATE
MAP_SHARED = _mmap.MAP_SHARED


def _address(obj: Any) -> int:
    from ._core import ffi

    buf = ffi.from_buffer(obj)
    try:
        return int(ffi.cast("uintptr_t", buf))
    finally:
        ffi.release(buf)


def _plug(addr: int, length: int) -> None:
    """Keep an unmapped hole reserved (PROT_NONE, anonymous, never a writer of any map),
    so no later mapping lands inside a region that its close() will munmap."""
    _libc.mmap(addr, length, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)


# ----------------------------------------------------------------- a session


@dataclass
class Region:
    """A mapping the scenario holds, with the protection of each page."""

    obj: _mmap.mmap
    addr: int
    pages: list[str | None]  # "r", "rw", "none", ... or None: unmapped (a reserved hole)
    dontfork: list[bool]

    @property
    def span(self) -> int:
        return len(self.pages) * P


@dataclass
class Child:
    pid: int
    to_child: int
    from_child: int


#: The parent's ends of every child's pipes, across sessions: a forked child must close
#: them all, or a sibling would never see the EOF that tells it to exit.
_CHILD_FDS: set[int] = set()


def _send(fd: int, obj: JSON) -> None:
    data = json.dumps(obj).encode()
    msg = struct.pack("<I", len(data)) + data
    while msg:
        msg = msg[os.write(fd, msg) :]


def _read_exact(fd: int, n: int, timeout: float) -> bytes | None:
    buf = b""
    while len(buf) < n:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv(fd: int, timeout: float = CHILD_TIMEOUT) -> JSON | None:
    """One message, or None at EOF (or when nothing comes within ``timeout``)."""
    head = _read_exact(fd, 4, timeout)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<I", head)[0], timeout)
    return None if body is None else json.loads(body.decode())


def _wait(pid: int) -> Outcome:
    """Reap a child; one that does not exit within CHILD_TIMEOUT is killed and reported."""
    hung = False
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    if pidfd >= 0:
        try:
            ready, _, _ = select.select([pidfd], [], [], CHILD_TIMEOUT)
        finally:
            os.close(pidfd)
        if not ready:
            hung = True
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if hung:
        return {"error": f"child {pid} did not exit"}
    if os.WIFSIGNALED(status):
        return {"ok": {"signal": os.WTERMSIG(status)}}
    return {"ok": {"exit": os.WEXITSTATUS(status)}}


def _in_forked_child(fn: Callable[[], JSON]) -> Outcome:
    """Run ``fn`` in a forked child: its outcome, or the signal that killed it.

    For memory accesses the protections do not allow: the fault kills the
    child, never the runner.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            with contextlib.suppress(Exception):
                import faulthandler

                faulthandler.disable()
            _send(w, capture(fn))
        finally:
            os._exit(0)
    os.close(w)
    try:
        msg = _recv(r)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    if not isinstance(msg, dict):
        return {"error": f"child exited with {os.WEXITSTATUS(status)} and no result"}
    return msg


def capture(fn: Callable[[], JSON]) -> Outcome:
    try:
        result = fn()
    except OSError as exc:
        out: Outcome = {"errno": exc.errno}
        count = getattr(exc, "count", None)
        if count is not None:
            out["count"] = count
        return out
    except (TypeError, ValueError, IndexError, BufferError) as exc:
        return {"raise": type(exc).__name__}
    return {"ok": canon(result)}


class Session:
    """One backend's side of a scenario: its handles, regions, children and pins.

    Both sides of a scenario live in one process. A forked child belongs to one
    side: it lets go of everything the other sessions hold (their mappings would
    otherwise keep the other backend's map busy) and of its siblings' pipes.
    """

    _serial = 0

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.maps: dict[str, ArrayMap] = {}
        self.regions: dict[str, Region] = {}
        self.children: dict[str, Child] = {}
        self._pin_dir: str | None = None
        self.is_child = False
        _SESSIONS.add(self)

    # -- pins ----------------------------------------------------------------

    def pin_path(self, name: str) -> str:
        if not name or "/" in name or name in (".", ".."):
            raise ScenarioError(f"bad pin name {name!r}")
        return f"{self._ensure_pin_dir()}/{name}"

    def _ensure_pin_dir(self) -> str:
        """The directory of this scenario's pins (children share their parent's)."""
        if self._pin_dir is None:
            Session._serial += 1
            if self.backend == "kernel":
                d = f"{PIN_ROOT}/bpfmap-conformance-{os.getpid()}-{Session._serial}"
                os.mkdir(d, 0o700)
            else:
                d = tempfile.mkdtemp(prefix="bpfmap-conformance-")
            self._pin_dir = d
        return self._pin_dir

    # -- lifetime --------------------------------------------------------------

    def close(self) -> None:
        if self.is_child:
            return
        for name in list(self.children):
            self._end_child(name, kill=True)
        for reg in self.regions.values():
            with contextlib.suppress(Exception):
                reg.obj.close()
        self.regions.clear()
        for m in self.maps.values():
            m.close()
        self.maps.clear()
        if self._pin_dir is not None:
            d, self._pin_dir = self._pin_dir, None
            for entry in os.listdir(d):
                self._unpin(f"{d}/{entry}")
            if self.backend == "kernel":
                os.rmdir(d)
            else:
                shutil.rmtree(d, ignore_errors=True)

    def _unpin(self, path: str) -> None:
        """Remove a pin: an emulated map's holder sees the path go and exits by itself."""
        os.unlink(path)

    def _end_child(self, name: str, kill: bool) -> Outcome:
        child = self.children.pop(name)
        if kill:
            os.kill(child.pid, signal.SIGKILL)
        for fd in (child.to_child, child.from_child):
            _CHILD_FDS.discard(fd)
            os.close(fd)
        return _wait(child.pid)

    # -- lookups of names --------------------------------------------------------

    def _map(self, step: dict[str, Any]) -> ArrayMap:
        name = step.get("map", "m")
        if name not in self.maps:
            raise LookupError(f"no map {name!r}")
        return self.maps[name]

    def _region(self, step: dict[str, Any]) -> Region:
        name = step["region"]
        if name not in self.regions:
            raise LookupError(f"no region {name!r}")
        return self.regions[name]

    # -- running -------------------------------------------------------------------

    def run(self, step: dict[str, Any]) -> Outcome:
        try:
            return getattr(self, "op_" + step["op"])(step)  # type: ignore[no-any-return]
        except LookupError as exc:
            return {"error": str(exc)}
        except ScenarioError:
            raise
        except Exception as exc:  # a runner bug: report it, never crash
            return {"error": f"{type(exc).__name__}: {exc}"}

    # elements ------------------------------------------------------------------------

    def op_create(self, step: dict[str, Any]) -> Outcome:
        name: str | bytes = step.get("name", "")
        if "name_hex" in step:
            name = bytes.fromhex(step["name_hex"])
        kw = {
            "flags": flag_value(step.get("flags", 0)),
            "name": name,
            "key_size": step.get("key_size", 4),
            "backend": self.backend,
        }
        made: list[ArrayMap] = []

        def create() -> None:
            made.append(ArrayMap(step["value_size"], step["max_entries"], **kw))

        fd0 = step.get("fd0")
        if fd0 is None:
            out = capture(create)
        else:
            out = _with_fd0(fd0, lambda: capture(create))
            if made and made[0].fd == 0:  # would be clobbered when fd 0 is restored
                made.pop().close()
        if made:
            old = self.maps.pop(step.get("as", "m"), None)
            if old is not None:
                old.close()
            self.maps[step.get("as", "m")] = made[0]
        return out

    def op_lookup(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: encode_bytes(m.lookup(step["key"], flag_value(step.get("flags", 0))))
        )

    def op_lookup_into(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def into() -> JSON:
            buf = bytearray(repeat_hex(step.get("fill", "ee"), m.value_size + step.get("extra", 0)))
            m.lookup_into(step["key"], buf, flag_value(step.get("flags", 0)))
            return encode_bytes(bytes(buf))

        return capture(into)

    def _value(self, m: ArrayMap, step: dict[str, Any]) -> bytes:
        if "value" in step:
            return bytes.fromhex(step["value"])
        return repeat_hex(step.get("fill", "ab"), m.value_size)

    def op_update(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: m.update(step["key"], self._value(m, step), flag_value(step.get("flags", 0)))
        )

    def op_fill_all(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def fill() -> None:
            for k in range(m.max_entries):
                m.update(k, pattern(k, m.value_size))

        return capture(fill)

    def op_delete(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: m.delete(step["key"]))

    def op_lookup_and_delete(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: encode_bytes(m.lookup_and_delete(step["key"], flag_value(step.get("flags", 0))))
        )

    def op_get_next_key(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: m.get_next_key(step["key"]))

    def op_lookup_batch(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def batch() -> JSON:
            b = m.lookup_batch(
                step.get("count"),
                in_batch=step.get("in_batch"),
                elem_flags=flag_value(step.get("elem_flags", 0)),
                flags=flag_value(step.get("flags", 0)),
            )
            return {
                "keys": list(b.keys),
                "values": encode_bytes(bytes(b.values)),
                "out_batch": b.out_batch,
                "done": b.done,
            }

        return capture(batch)

    def op_update_batch(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        keys = step["keys"]
        vs = m.value_size
        if "values" in step:
            values = [bytes.fromhex(v) for v in step["values"]]
        elif "ramp" in step:
            values = [bytes([(step["ramp"] + i) & 0xFF]) * vs for i in range(len(keys))]
        else:
            values = [repeat_hex(step.get("fill", "cd"), vs)] * len(keys)
        return capture(
            lambda: m.update_batch(
                keys,
                values,
                elem_flags=flag_value(step.get("elem_flags", 0)),
                flags=flag_value(step.get("flags", 0)),
            )
        )

    def op_delete_batch(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: m.delete_batch(
                step["keys"],
                elem_flags=flag_value(step.get("elem_flags", 0)),
                flags=flag_value(step.get("flags", 0)),
            )
        )

    def op_freeze(self, step: dict[str, Any]) -> Outcome:
        return capture(self._map(step).freeze)

    def op_frozen(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: m.frozen)

    def op_info(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def info() -> JSON:
            i = m.info()
            return {
                "type": i.type,
                "key_size": i.key_size,
                "value_size": i.value_size,
                "max_entries": i.max_entries,
                "map_flags": i.map_flags,
                "name": i.name,
                "id_positive": i.id > 0 and i.id == m.id,
            }

        return capture(info)

    def op_props(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: {
                "key_size": m.key_size,
                "value_size": m.value_size,
                "max_entries": m.max_entries,
                "flags": m.flags,
                "name": m.name,
                "access": m.access,
                "frozen": m.frozen,
                "len": len(m),
            }
        )

    def op_contents(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: encode_bytes(b"".join(m.lookup(k) for k in range(m.max_entries)))
        )

    def op_items(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: [[k, encode_bytes(v)] for k, v in m.items()])

    def op_dup(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def dup() -> None:
            h = ArrayMap.from_fd(os.dup(m.fd))
            old = self.maps.pop(step["as"], None)
            if old is not None:
                old.close()
            self.maps[step["as"]] = h

        return capture(dup)

    def op_close(self, step: dict[str, Any]) -> Outcome:
        return capture(self._map(step).close)

    # mappings ---------------------------------------------------------------------

    def _add_region(self, name: str, obj: _mmap.mmap, prot: str) -> None:
        old = self.regions.pop(name, None)
        if old is not None:
            old.obj.close()
        n = max(1, -(-len(obj) // P))
        self.regions[name] = Region(obj, _address(obj), [prot] * n, [False] * n)

    def op_mmap(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        writable = step.get("writable", True)

        def do() -> JSON:
            r = m.mmap(
                writable=writable,
                shared=step.get("shared", True),
                offset=step.get("offset", 0),
                length=step.get("length"),
            )
            self._add_region(step.get("as", "r"), r, "rw" if writable else "r")
            return {"len": len(r)}

        return capture(do)

    def op_reserve(self, step: dict[str, Any]) -> Outcome:
        def do() -> None:
            obj = _mmap.mmap(-1, step["length"], prot=_mmap.PROT_READ)
            self._add_region(step["as"], obj, "r")

        return capture(do)

    def _range(self, reg: Region, step: dict[str, Any], default_len: int) -> tuple[int, int]:
        off = step.get("offset", 0)
        length = step.get("length", default_len - off)
        if off < 0 or length < 0 or off + length > reg.span:
            raise ValueError("range outside the region")  # never touch memory not ours
        return off, length

    def _allowed(self, reg: Region, off: int, length: int, need: str) -> bool:
        first, last = off // P, (off + max(length, 1) - 1) // P
        return all(
            (p := reg.pages[i]) is not None and need in p for i in range(first, last + 1)
        )

    def op_read(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        try:
            off, length = self._range(reg, step, len(reg.obj))
        except ValueError:
            return {"raise": "ValueError"}
        end = min(off + length, len(reg.obj))

        def get() -> JSON:
            return encode_bytes(reg.obj[off:end])

        if self._allowed(reg, off, end - off, "r"):
            return capture(get)
        return _in_forked_child(get)

    def op_write(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        data = bytes.fromhex(step["data"])
        off = step.get("offset", 0)
        obj = reg.obj

        def put() -> None:
            obj[off : off + len(data)] = data

        if off < 0:
            return {"raise": "ValueError"}
        refused = (
            obj.closed  # ValueError
            or (isinstance(obj, MapRegion) and not obj.writable)  # TypeError: read-only
            or isinstance(obj, _mmap.mmap) and not isinstance(obj, MapRegion)  # reserve: RO
            or off + len(data) > len(obj)  # IndexError
        )
        if refused or self._allowed(reg, off, len(data), "w"):
            return capture(put)  # Python refuses before touching memory, or it may write
        return _in_forked_child(put)

    def op_close_region(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        return capture(reg.obj.close)

    def _libc_errno(self, rc: int) -> Outcome:
        return {"ok": None} if rc == 0 else {"errno": ctypes.get_errno()}

    def op_munmap(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        try:
            off, length = self._range(reg, step, reg.span)
        except ValueError:
            return {"raise": "ValueError"}
        out = self._libc_errno(_libc.munmap(reg.addr + off, length))
        if "ok" in out and length:
            _plug(reg.addr + off, length)
            for i in range(off // P, -(-(off + length) // P)):
                reg.pages[i] = None
        return out

    def op_mprotect(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        prot = step["prot"]
        if prot not in PROTS:
            raise ScenarioError(f"unknown prot {prot!r}")
        try:
            off, length = self._range(reg, step, reg.span)
        except ValueError:
            return {"raise": "ValueError"}
        out = self._libc_errno(_libc.mprotect(reg.addr + off, length, PROTS[prot]))
        if "ok" in out:
            for i in range(off // P, -(-(off + length) // P)):
                if reg.pages[i] is not None:
                    reg.pages[i] = prot
        return out

    def op_madvise_dontfork(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        try:
            off, length = self._range(reg, step, reg.span)
        except ValueError:
            return {"raise": "ValueError"}

        def do() -> None:
            reg.obj.madvise(_mmap.MADV_DONTFORK, off, length)
            for i in range(off // P, -(-(off + length) // P)):
                reg.dontfork[i] = True

        return capture(do)

    def op_mremap_grow(self, step: dict[str, Any]) -> Outcome:
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        new = step["length"]
        if new <= reg.span:
            return {"raise": "ValueError"}  # grow only
        p = _libc.mremap(reg.addr, reg.span, new, 0)  # in place only: never moves
        if p is None or p == MAP_FAILED:
            return {"errno": ctypes.get_errno()}
        _libc.mremap(reg.addr, new, reg.span, 0)  # shrinking in place always works
        return {"ok": None}

    def op_mmap_fixed(self, step: dict[str, Any]) -> Outcome:
        """``mmap(MAP_FIXED)`` of a map inside a region, after the API's own checks."""
        from ._core import ffi, lib

        m = self._map(step)
        reg = self._region(step)
        if reg.obj.closed:
            return {"raise": "ValueError"}
        writable = step.get("writable", False)
        offset = step.get("offset", 0)
        at = step.get("at", 0)
        length = step.get("length", P)
        if at % P or at < 0 or at + length > reg.span or length <= 0:
            return {"raise": "ValueError"}
        h = m._handle()
        fd = ffi.new("int *")
        file_offset = ffi.new("uint64_t *")
        rc = lib.bpfmap_mmap_check(h, bool(writable), True, offset, length, fd, file_offset)
        first, last = at // P, -(-(at + length) // P)
        if rc:
            out: Outcome = {"errno": -rc}
        else:
            prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
            addr = _libc.mmap(
                reg.addr + at, length, prot, MAP_SHARED | MAP_FIXED, fd[0], file_offset[0]
            )
            if addr is None or addr == MAP_FAILED:
                out = {"errno": ctypes.get_errno()}
            else:
                for i in range(first, last):
                    reg.pages[i] = "rw" if writable else "r"
                    reg.dontfork[i] = False
                return {"ok": None}
        # A failed MAP_FIXED may or may not have unmapped the range: make it a hole on both.
        _plug(reg.addr + at, length)
        for i in range(first, last):
            reg.pages[i] = None
        return out

    # processes ------------------------------------------------------------------

    def op_fork(self, step: dict[str, Any]) -> Outcome:
        name = step["as"]
        if name in self.children:
            raise ScenarioError(f"child {name!r} exists")
        self._ensure_pin_dir()  # a child's pins must land where its parent looks
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                os.close(to_w)
                os.close(from_r)
                self._become_child()
                _send(from_w, [self.run(s) for s in step.get("steps", [])])
                while True:
                    steps = _recv(to_r, timeout=3600)
                    if steps is None:
                        break
                    _send(from_w, [self.run(s) for s in steps])
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(to_r)
        os.close(from_w)
        _CHILD_FDS.update((to_w, from_r))
        self.children[name] = Child(pid, to_w, from_r)
        results = _recv(from_r)
        if results is None:
            return {"error": f"child {name!r} gave no answer"}
        return {"ok": results}

    def _abandon(self) -> None:
        """In a forked child: drop what this (other) session holds, touching nothing shared."""
        self.is_child = True
        for reg in self.regions.values():
            with contextlib.suppress(Exception):
                reg.obj.close()
        self.regions.clear()
        for m in self.maps.values():
            m.close()
        self.maps.clear()
        self.children.clear()

    def _become_child(self) -> None:
        for other in list(_SESSIONS):
            if other is not self:
                other._abandon()
        self.is_child = True
        with contextlib.suppress(Exception):
            import faulthandler

            faulthandler.disable()
        for fd in _CHILD_FDS:  # siblings (of any session) are the parent's business
            os.close(fd)
        _CHILD_FDS.clear()
        self.children.clear()
        for reg in self.regions.values():  # MADV_DONTFORK pages were not inherited
            for i, gone in enumerate(reg.dontfork):
                if gone and not reg.obj.closed:
                    _plug(reg.addr + i * P, P)
                    reg.pages[i] = None

    def op_child(self, step: dict[str, Any]) -> Outcome:
        name = step["child"]
        if name not in self.children:
            return {"error": f"no child {name!r}"}
        child = self.children[name]
        _send(child.to_child, step["steps"])
        results = _recv(child.from_child)
        if results is None:
            return {"error": f"child {name!r} gave no answer"}
        return {"ok": results}

    def op_release(self, step: dict[str, Any]) -> Outcome:
        if step["child"] not in self.children:
            return {"error": f"no child {step['child']!r}"}
        return self._end_child(step["child"], kill=False)

    def op_kill(self, step: dict[str, Any]) -> Outcome:
        if step["child"] not in self.children:
            return {"error": f"no child {step['child']!r}"}
        return self._end_child(step["child"], kill=True)

    # pins ----------------------------------------------------------------------------

    def op_pin(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        path = self.pin_path(step["pin"])
        return capture(lambda: m.pin(path))

    def op_open_pinned(self, step: dict[str, Any]) -> Outcome:
        path = self.pin_path(step["pin"])

        def do() -> JSON:
            h = ArrayMap.open_pinned(path, readonly=step.get("readonly", False))
            old = self.maps.pop(step["as"], None)
            if old is not None:
                old.close()
            self.maps[step["as"]] = h
            return h.access

        return capture(do)

    def op_unpin(self, step: dict[str, Any]) -> Outcome:
        path = self.pin_path(step["pin"])
        return capture(lambda: self._unpin(path))

    def op_pin_mode(self, step: dict[str, Any]) -> Outcome:
        path = self.pin_path(step["pin"])
        return capture(lambda: f"{os.stat(path).st_mode & 0o777:04o}")


_SESSIONS: weakref.WeakSet[Session] = weakref.WeakSet()


def _with_fd0(state: str, fn: Callable[[], Outcome]) -> Outcome:
    """Run ``fn`` with fd 0 open (on /dev/null if need be) or closed, then restore it."""
    try:
        saved: int | None = os.dup(0)
    except OSError:
        saved = None
    try:
        if state == "closed":
            if saved is not None:
                os.close(0)
        elif state == "open":
            if saved is None:
                fd = os.open(os.devnull, os.O_RDONLY)
                if fd != 0:
                    os.dup2(fd, 0)
                    os.close(fd)
        else:
            raise ScenarioError(f"fd0 must be 'open' or 'closed', not {state!r}")
        return fn()
    finally:
        if saved is not None:
            os.dup2(saved, 0)
            os.close(saved)
        else:
            with contextlib.suppress(OSError):
                os.close(0)


# ------------------------------------------------------------------ the corpus


@dataclass
class Scenario:
    id: str
    topic: str
    steps: list[dict[str, Any]]
    recorded_on: str
    raw: dict[str, Any]
    page_size: int | None = None  # the page size offsets and lengths were written for

    @property
    def doc(self) -> str:
        return str(self.raw.get("doc", ""))


@dataclass
class Topic:
    name: str
    source: str
    raw: dict[str, Any]
    scenarios: list[Scenario] = field(default_factory=list)


def _load_topic(text: str, source: str) -> Topic:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("scenarios"), list):
        raise ScenarioError(f"{source}: a topic file is an object with a 'scenarios' list")
    name = str(raw.get("topic") or os.path.splitext(os.path.basename(source))[0])
    topic = Topic(name, source, raw)
    for sc in raw["scenarios"]:
        sid = sc.get("id") if isinstance(sc, dict) else None
        if not isinstance(sid, str):
            raise ScenarioError(f"{source}: a scenario without an id")
        validate_steps(sc.get("steps"), f"{source}: {sid}")
        for i, step in enumerate(sc["steps"]):
            if "expect" not in step:
                raise ScenarioError(f"{source}: {sid} step {i}: no expect")
        recorded = str(sc.get("recorded_on") or raw.get("recorded_on") or "unknown")
        page = raw.get("page_size")
        topic.scenarios.append(Scenario(sid, name, sc["steps"], recorded, sc, page))
    return topic


def load_corpus(path: str | None = None) -> list[Topic]:
    """The shipped corpus, or the topic files of a directory, or one file."""
    topics: list[Topic] = []
    if path is None:
        base = resources.files("bpfmap") / "scenarios"
        for entry in sorted(base.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                topics.append(
                    _load_topic(entry.read_text(encoding="utf-8"), f"scenarios/{entry.name}")
                )
    elif os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith(".json"):
                with open(os.path.join(path, name), encoding="utf-8") as f:
                    topics.append(_load_topic(f.read(), os.path.join(path, name)))
    else:
        with open(path, encoding="utf-8") as f:
            topics.append(_load_topic(f.read(), path))
    ids: set[str] = set()
    for t in topics:
        for sc in t.scenarios:
            if sc.id in ids:
                raise ScenarioError(f"{t.source}: duplicate scenario id {sc.id}")
            ids.add(sc.id)
    return topics


# -------------------------------------------------------------------- versions


def parse_release(release: str) -> tuple[int, ...]:
    nums: list[int] = []
    for part in release.split("-", 1)[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        nums.append(int(digits))
    return tuple(nums)


def _outcome_of(entry: dict[str, Any]) -> Outcome:
    return {k: v for k, v in entry.items() if k not in ("before", "commit", "note")}


def expected_for(step: dict[str, Any], release: str) -> tuple[Outcome, str | None]:
    """The outcome recorded for ``release``: ``expect``, or the history entry of an older kernel.

    Returns (outcome, the 'before' boundary it came from, or None for ``expect``).
    """
    running = parse_release(release)
    for entry in sorted(step.get("history", []), key=lambda e: parse_release(e["before"])):
        if running < parse_release(entry["before"]):
            return _outcome_of(entry), entry["before"]
    return step["expect"], None


# -------------------------------------------------------------------- running

SAME, KNOWN, OLDER, STALE, DIVERGES, ERROR, SKIP = (
    "same",
    "known",
    "older kernel",
    "stale",
    "DIVERGES",
    "ERROR",
    "skip",
)
_RANK = {SAME: 0, SKIP: 0, KNOWN: 1, OLDER: 2, STALE: 3, DIVERGES: 4, ERROR: 5}
FAILING = {STALE, DIVERGES, ERROR}


@dataclass
class StepResult:
    index: int
    step: dict[str, Any]
    kernel: Outcome | None
    emulated: Outcome
    expected: Outcome
    verdict: str


@dataclass
class ScenarioResult:
    scenario: Scenario
    verdict: str
    steps: list[StepResult]
    reason: str = ""


def _has_error(o: Any) -> bool:
    if isinstance(o, dict):
        if "error" in o:
            return True
        return any(_has_error(v) for v in o.values())
    if isinstance(o, list):
        return any(_has_error(v) for v in o)
    return False


def step_verdict(step: dict[str, Any], emu: Outcome, ker: Outcome | None, release: str) -> str:
    current = canon(step["expect"])
    expected, before = expected_for(step, release)
    expected = canon(expected)
    if _has_error(emu) or (ker is not None and _has_error(ker)):
        return ERROR
    if ker is None:  # against the recording: the emulation follows the current kernel
        if emu == current:
            return SAME
        return KNOWN if step.get("known_difference") else DIVERGES
    if emu == ker:
        return SAME if ker in (current, expected) else STALE
    if step.get("known_difference") and ker == expected:
        return KNOWN
    if before is not None and ker == expected and emu == current:
        return OLDER
    return DIVERGES


def _uses(steps: list[dict[str, Any]], op: str) -> bool:
    return any(s["op"] == op or _uses(s.get("steps", []), op) for s in steps)


def _ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def skip_reason(sc: Scenario, live: bool) -> str | None:
    if sc.page_size is not None and sc.page_size != P:
        return f"written for {sc.page_size}-byte pages, this machine has {P}"
    below = sc.raw.get("requires_ram_below")
    if below is not None and _ram() >= below:
        return f"this machine has {_ram()} bytes of RAM, the case needs less than {below}"
    if live and _uses(sc.steps, "pin") and not _bpffs_mounted():
        return f"bpffs is not mounted at {PIN_ROOT}"
    return None


def _bpffs_mounted() -> bool:
    from ._pin import on_bpffs

    try:
        return on_bpffs(PIN_ROOT)
    except OSError:
        return False


def run_scenario(sc: Scenario, live: bool, release: str) -> ScenarioResult:
    reason = skip_reason(sc, live)
    if reason:
        return ScenarioResult(sc, SKIP, [], reason)
    emu = Session("emulated")
    ker = Session("kernel") if live else None
    results: list[StepResult] = []
    try:
        for i, step in enumerate(sc.steps):
            e = canon(emu.run(step))
            k = canon(ker.run(step)) if ker is not None else None
            expected, _ = expected_for(step, release)
            results.append(
                StepResult(i, step, k, e, canon(expected), step_verdict(step, e, k, release))
            )
    except ScenarioError as exc:
        return ScenarioResult(sc, ERROR, results, str(exc))
    finally:
        emu.close()
        if ker is not None:
            ker.close()
    verdict = max((r.verdict for r in results), key=_RANK.__getitem__, default=SAME)
    return ScenarioResult(sc, verdict, results)


def select_scenarios(topics: list[Topic], pattern: str | None) -> Iterator[Scenario]:
    for t in topics:
        for sc in t.scenarios:
            if pattern is None:
                yield sc
                continue
            pat = pattern.lower()
            hay = f"{sc.topic}/{sc.id}".lower()
            if pat in hay or fnmatch.fnmatch(sc.id.lower(), pat) or fnmatch.fnmatch(hay, pat):
                yield sc


# --------------------------------------------------------------------- reports


def _cell(outcomes: Sequence[Outcome | None], width: int) -> str:
    text = " ".join(short(o) for o in outcomes)
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def table(results: list[ScenarioResult], live: bool) -> str:
    rows = [("scenario", "kernel" if live else "recorded (kernel)", "emulated", "verdict")]
    for r in results:
        if r.verdict == SKIP:
            rows.append((r.scenario.id, "-", "-", f"skip: {r.reason}"))
            continue
        ker = [s.kernel if live else s.expected for s in r.steps]
        emu: list[Outcome | None] = [s.emulated for s in r.steps]
        rows.append((r.scenario.id, _cell(ker, 38), _cell(emu, 38), r.verdict))
    w0 = min(46, max(len(row[0]) for row in rows))
    w1 = max(len(row[1]) for row in rows)
    w2 = max(len(row[2]) for row in rows)
    lines = [f"{a[:w0]:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "-" * (w0 + w1 + w2 + 16))
    return "\n".join(lines)


def details(results: list[ScenarioResult], live: bool, everything: bool = False) -> list[str]:
    """The steps behind each failing verdict (``everything``: known differences too)."""
    out: list[str] = []
    for r in results:
        if r.verdict not in FAILING and not (everything and r.verdict in (KNOWN, OLDER)):
            continue
        if r.reason:
            out.append(f"{r.scenario.id}: {r.verdict}: {r.reason}")
        for s in r.steps:
            if s.verdict == SAME:
                continue
            op = json.dumps({k: v for k, v in s.step.items() if k not in ("expect", "history")})
            out.append(f"{r.scenario.id} step {s.index} {s.verdict}: {op}")
            if live:
                out.append(f"    kernel:   {json.dumps(s.kernel)}")
            out.append(f"    emulated: {json.dumps(s.emulated)}")
            out.append(f"    recorded: {json.dumps(s.expected)}")
            if s.step.get("known_difference"):
                out.append(f"    known difference: {s.step['known_difference']}")
    return out


def summarize(results: list[ScenarioResult]) -> dict[str, int]:
    counts = {"scenarios": len(results), "steps": sum(len(r.steps) for r in results)}
    for v in (SAME, KNOWN, OLDER, STALE, DIVERGES, ERROR, SKIP):
        counts[v] = sum(1 for r in results if r.verdict == v)
    return counts


def summary_line(counts: dict[str, int], release: str, live: bool) -> str:
    parts = [
        f"{counts['scenarios']} scenarios ({counts['steps']} steps)",
        f"{counts[SAME]} same",
        f"{counts[KNOWN]} known differences",
    ]
    for v in (OLDER, STALE, ERROR, SKIP):
        if counts[v]:
            parts.append(f"{counts[v]} {'skipped' if v == SKIP else v}")
    parts.append(f"{counts[DIVERGES]} diverge")
    against = "the running kernel" if live else "the recorded expectations"
    return f"{', '.join(parts)}: emulation vs {against}, kernel {release}"


def to_json(results: list[ScenarioResult], release: str, live: bool, reason: str | None) -> JSON:
    return {
        "kernel_release": release,
        "mode": "live" if live else "recorded",
        "kernel_backend": reason or "available",
        "summary": summarize(results),
        "scenarios": [
            {
                "id": r.scenario.id,
                "topic": r.scenario.topic,
                "recorded_on": r.scenario.recorded_on,
                "verdict": r.verdict,
                **({"reason": r.reason} if r.reason else {}),
                "steps": [
                    {
                        "op": s.step["op"],
                        "kernel": s.kernel,
                        "emulated": s.emulated,
                        "expected": s.expected,
                        "verdict": s.verdict,
                    }
                    for s in r.steps
                ],
            }
            for r in results
        ],
    }


# ------------------------------------------------------------------- recording


def record(topics: list[Topic], pattern: str | None, out_dir: str, release: str) -> int:
    """Run the corpus on the kernel backend; write the topic files with its outcomes."""
    os.makedirs(out_dir, exist_ok=True)
    wanted = {sc.id for sc in select_scenarios(topics, pattern)}
    changed: list[str] = []
    n = steps = 0
    for t in topics:
        raw = json.loads(json.dumps(t.raw))
        raw["recorded_on"] = release
        raw["page_size"] = t.raw.get("page_size", P)
        kept = []
        for sc_raw, sc in zip(raw["scenarios"], t.scenarios):
            if sc.id not in wanted:
                continue
            sc_raw.pop("recorded_on", None)
            reason = skip_reason(sc, live=True)
            if reason:
                sc_raw["recorded_on"] = sc.recorded_on  # kept as it was
                kept.append(sc_raw)
                print(f"kept {sc.id} as recorded on {sc.recorded_on}: {reason}", file=sys.stderr)
                continue
            ker = Session("kernel")
            try:
                for i, step in enumerate(sc_raw["steps"]):
                    got = canon(ker.run(step))
                    if _has_error(got):
                        raise ScenarioError(f"{sc.id} step {i}: {got}")
                    if got != canon(step.get("expect")):
                        changed.append(f"{sc.id} step {i}: {step.get('expect')} -> {got}")
                    step["expect"] = got
                    steps += 1
            finally:
                ker.close()
            kept.append(sc_raw)
            n += 1
        if not kept:
            continue
        raw["scenarios"] = kept
        path = os.path.join(out_dir, os.path.basename(t.source))
        with open(path, "w", encoding="utf-8") as f:
            f.write(dump_topic(raw))
    for line in changed:
        print(f"changed: {line}")
    print(f"recorded {n} scenarios ({steps} steps) on kernel {release} into {out_dir}")
    return 0


def dump_topic(raw: dict[str, Any]) -> str:
    """A topic file: one line per step, so that diffs stay readable."""
    head = {k: v for k, v in raw.items() if k != "scenarios"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "scenarios": [')
    for si, sc in enumerate(raw["scenarios"]):
        lines.append("    {")
        meta = [(k, v) for k, v in sc.items() if k != "steps"]
        for k, v in meta:
            lines.append(f"      {json.dumps(k)}: {json.dumps(v)},")
        lines.append('      "steps": [')
        for i, step in enumerate(sc["steps"]):
            comma = "," if i < len(sc["steps"]) - 1 else ""
            lines.append(f"        {json.dumps(step)}{comma}")
        lines.append("      ]")
        lines.append("    }" + ("," if si < len(raw["scenarios"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ random sequences

MM = C.BPF_F_MMAPABLE
VALID_FLAGS = [
    0, MM, MM, MM, MM, MM | C.BPF_F_RDONLY, MM | C.BPF_F_WRONLY, C.BPF_F_RDONLY, C.BPF_F_WRONLY,
    MM | C.BPF_F_RDONLY_PROG, MM | C.BPF_F_WRONLY_PROG, C.BPF_F_RDONLY_PROG,
    MM | C.BPF_F_INNER_MAP, MM | C.BPF_F_NUMA_NODE,
]
INVALID_FLAGS = [
    C.BPF_F_NO_PREALLOC, C.BPF_F_ZERO_SEED, C.BPF_F_PRESERVE_ELEMS,
    C.BPF_F_RDONLY | C.BPF_F_WRONLY, C.BPF_F_RDONLY_PROG | C.BPF_F_WRONLY_PROG,
    MM | (1 << 31), MM | (1 << 13),
]


class Divergence(Exception):
    def __init__(self, scenario: dict[str, Any], step: int, emulated: Outcome) -> None:
        super().__init__(f"divergence at step {step}")
        self.scenario = scenario
        self.step = step
        self.emulated = emulated


class RandomRun:
    """Random operation sequences, run on both backends in lockstep."""

    def __init__(self, seed: int, total: int, release: str) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.total = total
        self.release = release
        self.stats = {"ops": 0, "sequences": 0, "maps": 0, "errors": 0, "forks": 0, "pins": 0}
        self.counts: dict[str, int] = {}

    # state of the current sequence (what the generator may refer to)
    def _reset(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.handles: dict[str, str] = {}  # name -> access
        self.regions: dict[str, int] = {}  # live regions: name -> length
        self.all_regions: set[str] = set()  # every region ever made (a child knows them)
        self.children: dict[str, tuple[set[str], set[str]]] = {}  # name -> (handles, regions)
        self.pins: list[str] = []
        self.shape: dict[str, Any] = {}
        self.serial = 0

    def _name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def run(self) -> dict[str, int]:
        while self.stats["ops"] < self.total:
            self._sequence()
        return self.stats

    def _do(self, step: dict[str, Any]) -> Outcome:
        e: Outcome = canon(self.emu.run(step))
        k: Outcome = canon(self.ker.run(step))
        step["expect"] = k
        self.steps.append(step)
        n = 1 + len(step.get("steps", []))
        self.stats["ops"] += n
        self.counts[step["op"]] = self.counts.get(step["op"], 0) + 1
        if "errno" in k:
            self.stats["errors"] += 1
        if e != k or _has_error(k) or _has_error(e):
            sid = f"random-{self.seed}-{self.stats['sequences']}"
            scenario = {
                "topic": "random",
                "recorded_on": self.release,
                "scenarios": [
                    {
                        "id": sid,
                        "doc": f"bpfmap conformance --random (seed {self.seed}): "
                        f"the emulation gave {json.dumps(e)} at the last step",
                        "steps": self.steps,
                    }
                ],
            }
            raise Divergence(scenario, len(self.steps) - 1, e)
        return k

    def _sequence(self) -> None:
        self._reset()
        self.stats["sequences"] += 1
        self.emu = Session("emulated")
        self.ker = Session("kernel")
        try:
            self._body()
        finally:
            self.emu.close()
            self.ker.close()

    def _shape(self) -> dict[str, Any]:
        r = self.rng
        vs = r.choice([1, 4, 8, 8, 12, 16, 24, r.randrange(1, 81), r.randrange(1, 600)])
        n = r.choice([1, 2, 4, 7, r.randrange(1, 41), r.randrange(1, 1200)])
        if r.random() < 0.04:
            vs = r.choice([0, 0x80000000, U32])
        if r.random() < 0.04:
            n = 0
        flags = r.choice(VALID_FLAGS) if r.random() < 0.9 else r.choice(INVALID_FLAGS)
        shape: dict[str, Any] = {"op": "create", "value_size": vs, "max_entries": n}
        if flags:
            shape["flags"] = flags
        if r.random() < 0.1:
            shape["name"] = r.choice(["rnd", "rnd_map.1", "y" * 15, "bad-name", "x" * 16])
        if r.random() < 0.02:
            shape["key_size"] = r.choice([0, 2, 8])
        return shape

    def _body(self) -> None:
        r = self.rng
        shape = self._shape()
        out = self._do(shape)
        if "ok" not in out:
            return
        self.stats["maps"] += 1
        self.shape = shape
        flags = shape.get("flags", 0)
        self.handles["m"] = (
            "r" if flags & C.BPF_F_RDONLY else "w" if flags & C.BPF_F_WRONLY else "rw"
        )
        vs, n = shape["value_size"], shape["max_entries"]
        self.window = -(-(n * ((vs + 7) & ~7)) // P) * P
        left = r.randrange(5, 80)
        while left > 0 and self.stats["ops"] < self.total:
            left -= 1
            self._random_step()
        # the end: every value through each handle, every byte of every region
        for h in list(self.handles):
            self._do({"op": "contents", "map": h})
        for name in list(self.regions):
            self._do({"op": "read", "region": name})
        for c in list(self.children):
            self._do({"op": self.rng.choice(["release", "kill"]), "child": c})

    # one random step --------------------------------------------------------------

    def _key(self) -> int:
        r, n = self.rng, int(self.shape["max_entries"])
        x = r.random()
        if x < 0.75:
            return r.randrange(n)
        if x < 0.87:
            return n
        return U32 if x < 0.94 else r.randrange(2**32)

    def _value_fill(self) -> str:
        return self.rng.randbytes(self.rng.choice([1, 2, 3, 8])).hex()

    def _mmap_args(self) -> dict[str, Any]:
        r, window = self.rng, self.window
        kw: dict[str, Any] = {"writable": r.random() < 0.55}
        if r.random() < 0.06:
            kw["shared"] = False
        x = r.random()
        if x < 0.7:
            off = 0
        elif x < 0.88:
            off = P * r.randrange(max(1, window // P + 1))
        else:
            off = r.choice([window, r.randrange(1, 2 * P), 100])
        if off:
            kw["offset"] = off
        y = r.random()
        if y < 0.45:
            pass
        elif y < 0.9:
            kw["length"] = r.randrange(1, window + 2 * P)
        else:
            kw["length"] = r.choice([2 * window, 2**62, window - off + 1, P, 0])
        return kw

    def _region_range(self, length: int) -> dict[str, int]:
        pages = max(1, -(-length // P))
        first = self.rng.randrange(pages)
        count = self.rng.randrange(1, pages - first + 1)
        out = {}
        if first:
            out["offset"] = first * P
        if count != pages - first or self.rng.random() < 0.5:
            out["length"] = count * P
        return out

    def _map_step(self, h: str) -> dict[str, Any]:
        r = self.rng
        kinds = [
            "lookup", "update", "update", "lookup_into", "delete", "lookup_and_delete",
            "get_next_key", "lookup_batch", "update_batch", "delete_batch", "freeze", "frozen",
            "info", "props", "items",
        ]
        weights = [14, 12, 4, 2, 1, 1, 5, 6, 6, 1, 1.5, 1, 1, 1, 0.5]
        kind = r.choices(kinds, weights)[0]
        step: dict[str, Any] = {"op": kind, "map": h}
        if kind in ("lookup", "lookup_into", "delete", "lookup_and_delete"):
            step["key"] = self._key()
        if kind == "get_next_key":
            step["key"] = None if r.random() < 0.3 else self._key()
        if kind in ("lookup", "lookup_into", "lookup_and_delete") and r.random() < 0.15:
            step["flags"] = r.choice([C.BPF_F_LOCK, 1, 8, r.randrange(2**64)])
        if kind == "lookup_into":
            step["extra"] = r.randrange(4)
        if kind == "update":
            step["key"] = self._key()
            step["fill"] = self._value_fill()
            if r.random() < 0.3:
                step["flags"] = r.choice(
                    [C.BPF_EXIST, C.BPF_NOEXIST, C.BPF_F_LOCK, 3, r.randrange(2**64)]
                )
        if kind == "lookup_batch":
            n = self.shape["max_entries"]
            step["count"] = None if r.random() < 0.2 else r.randrange(n + 3)
            if r.random() < 0.6:
                step["in_batch"] = self._key()
            if r.random() < 0.1:
                step["elem_flags"] = r.choice([C.BPF_F_LOCK, 1])
            if r.random() < 0.1:
                step["flags"] = r.randrange(2**64)
        if kind in ("update_batch", "delete_batch"):
            n = self.shape["max_entries"]
            count = r.randrange(min(n, 40) + 3)
            if r.random() < 0.5:
                start = r.randrange(n)
                keys = [start + i for i in range(count)]
            else:
                keys = [self._key() if r.random() < 0.2 else r.randrange(n) for _ in range(count)]
            step["keys"] = keys
            if kind == "update_batch":
                step["ramp"] = r.randrange(256)
            if r.random() < 0.1:
                step["elem_flags"] = r.choice([C.BPF_F_LOCK, C.BPF_NOEXIST, C.BPF_EXIST])
        return step

    def _random_step(self) -> None:
        r = self.rng
        handles = list(self.handles)
        if not handles:
            self._do({"op": "props"})  # every handle closed: ValueError on both
            return
        kinds = {"map": 60.0, "mmap": 12.0, "process": 4.0, "dup": 2.5, "pin": 3.0}
        if self.regions:
            kinds["region"] = 24.0
        if len(handles) > 1:
            kinds["close"] = 1.0
        kind = r.choices(list(kinds), list(kinds.values()))[0]
        if kind == "map":
            self._do(self._map_step(r.choice(handles)))
        elif kind == "mmap":
            name = self._name("r")
            step = {"op": "mmap", "map": r.choice(handles), "as": name, **self._mmap_args()}
            out = self._do(step)
            if "ok" in out:
                self.regions[name] = out["ok"]["len"]
                self.all_regions.add(name)
        elif kind == "region":
            self._region_step(r.choice(list(self.regions)))
        elif kind == "process":
            self._process_step()
        elif kind == "dup":
            name, src = self._name("h"), r.choice(handles)
            out = self._do({"op": "dup", "map": src, "as": name})
            if "ok" in out:
                self.handles[name] = self.handles[src]
        elif kind == "close":
            h = r.choice(handles)
            self._do({"op": "close", "map": h})
            del self.handles[h]
        else:
            self._pin_step()

    def _region_step(self, name: str) -> None:
        r = self.rng
        length = self.regions[name]
        x = r.random()
        if x < 0.4:
            off = r.randrange(length)
            data = r.randbytes(r.randrange(1, min(64, length - off) + 1)).hex()
            self._do({"op": "write", "region": name, "offset": off, "data": data})
        elif x < 0.6:
            step: dict[str, Any] = {"op": "read", "region": name}
            if r.random() < 0.5:
                off = r.randrange(length)
                step.update(offset=off, length=r.randrange(1, length - off + 1))
            self._do(step)
        elif x < 0.75:
            self._do({"op": "close_region", "region": name})
            del self.regions[name]
        elif x < 0.9:
            prot = r.choice(["r", "rw", "rw", "none", "w"])
            self._do({"op": "mprotect", "region": name, "prot": prot, **self._region_range(length)})
        elif x < 0.97:
            self._do({"op": "munmap", "region": name, **self._region_range(length)})
        else:
            self._do({"op": "madvise_dontfork", "region": name, **self._region_range(length)})

    def _child_steps(self, handles: set[str], regions: set[str]) -> list[dict[str, Any]]:
        """Steps for a child that knows ``handles`` and ``regions`` (its own included)."""
        r = self.rng
        steps: list[dict[str, Any]] = []
        for _ in range(r.randrange(1, 4)):
            x = r.random()
            if x < 0.45 and handles:
                steps.append(
                    {"op": "mmap", "map": r.choice(sorted(handles)), "as": self._name("c"),
                     "writable": r.random() < 0.7}
                )
            elif x < 0.6 and regions:
                steps.append({"op": "close_region", "region": r.choice(sorted(regions))})
            elif x < 0.75 and regions:
                steps.append(
                    {"op": "write", "region": r.choice(sorted(regions)), "offset": 0,
                     "data": "c0ffee"}
                )
            elif handles:
                steps.append(self._map_step(r.choice(sorted(handles))))
        return steps

    @staticmethod
    def _child_made(steps: list[dict[str, Any]], out: Outcome, regions: set[str]) -> None:
        """The regions a child's mmap steps made."""
        results = out.get("ok") or []
        for st, res in zip(steps, results):
            if st["op"] == "mmap" and isinstance(res, dict) and "ok" in res:
                regions.add(st["as"])

    def _process_step(self) -> None:
        r = self.rng
        live = list(self.children)
        x = r.random()
        if not live or (x < 0.4 and len(live) < 3):
            name = self._name("k")
            handles, regions = set(self.handles), set(self.all_regions)
            steps = self._child_steps(handles, regions) if r.random() < 0.7 else []
            self.stats["forks"] += 1
            out = self._do({"op": "fork", "as": name, "steps": steps})
            if "ok" in out:
                self._child_made(steps, out, regions)
                self.children[name] = (handles, regions)
        elif x < 0.7:
            c = r.choice(live)
            handles, regions = self.children[c]
            steps = self._child_steps(handles, regions)
            out = self._do({"op": "child", "child": c, "steps": steps})
            self._child_made(steps, out, regions)
        else:
            c = r.choice(live)
            self._do({"op": r.choice(["release", "kill"]), "child": c})
            del self.children[c]

    def _pin_step(self) -> None:
        r = self.rng
        handles = list(self.handles)
        if not self.pins or r.random() < 0.25:
            pin = f"p{len(self.pins)}"
            self.stats["pins"] += 1
            out = self._do({"op": "pin", "map": r.choice(handles), "pin": pin})
            if "ok" in out:
                self.pins.append(pin)
            return
        pin = r.choice(self.pins)
        x = r.random()
        if x < 0.7:
            ro = r.random() < 0.6
            name = self._name("h")
            out = self._do({"op": "open_pinned", "pin": pin, "as": name, "readonly": ro})
            if "ok" in out:
                self.handles[name] = out["ok"]
        elif x < 0.85:
            self._do({"op": "pin_mode", "pin": pin})
        else:
            self._do({"op": "unpin", "pin": pin})
            self.pins.remove(pin)


# ------------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bpfmap conformance",
        description="Run the scenario corpus on the emulated and the kernel backend and compare "
        "every step (or, without bpf(), compare the emulation with the recorded outcomes).",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-k", metavar="PATTERN", help="only scenarios whose topic/id contains PATTERN")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--corpus", metavar="PATH", help="a directory of topic files, or one file")
    p.add_argument(
        "--record",
        nargs="?",
        const="",
        metavar="DIR",
        help="record this kernel's outcomes into DIR (default ./scenarios-RELEASE)",
    )
    p.add_argument("--random", type=int, metavar="N", help="N random operations, compared live")
    p.add_argument("--seed", type=int, help="seed for --random (default: a random one)")
    p.add_argument("--details", action="store_true", help="every differing step, also when known")
    return p


def main(argv: list[str]) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `bpfmap conformance | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    release = platform.release()
    reason = kernel_available()
    try:
        if args.random is not None:
            return _main_random(args, release, reason)
        topics = load_corpus(args.corpus)
    except ScenarioError as exc:
        print(f"bpfmap conformance: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for sc in select_scenarios(topics, args.k):
            print(f"{sc.topic}/{sc.id}  ({len(sc.steps)} steps, recorded on {sc.recorded_on})")
        return 0
    if args.record is not None:
        if reason:
            print(f"bpfmap conformance --record needs the kernel backend: {reason}",
                  file=sys.stderr)
            return 2
        return record(topics, args.k, args.record or f"scenarios-{release}", release)
    live = reason is None
    started = time.monotonic()
    results = [run_scenario(sc, live, release) for sc in select_scenarios(topics, args.k)]
    counts = summarize(results)
    failed = any(r.verdict in FAILING for r in results)
    if args.json:
        json.dump(to_json(results, release, live, reason), sys.stdout, indent=1)
        print()
        return 1 if failed else 0
    recorded = sorted({sc.recorded_on for sc in select_scenarios(topics, args.k)})
    print(f"bpfmap conformance on kernel {release} ({platform.machine()}, page size {P})")
    if live:
        print("mode: live, every step on the emulated and on the kernel backend")
    else:
        print(f"mode: recorded: the kernel backend is unavailable ({reason});")
        print("      the emulation is compared with the outcomes recorded on the kernel")
    print(f"corpus recorded on: {', '.join(recorded) or '-'}")
    print()
    print(table(results, live))
    lines = details(results, live, everything=args.details)
    if lines:
        print()
        print("\n".join(lines))
    print()
    print(f"{summary_line(counts, release, live)} ({time.monotonic() - started:.1f}s)")
    return 1 if failed else 0


def _main_random(args: argparse.Namespace, release: str, reason: str | None) -> int:
    if reason:
        print(
            f"bpfmap conformance --random compares live and needs the kernel backend: {reason}",
            file=sys.stderr,
        )
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    run = RandomRun(seed, args.random, release)
    started = time.monotonic()
    try:
        stats = run.run()
    except Divergence as d:
        if args.json:
            json.dump({"seed": seed, "divergence": d.scenario, "stats": run.stats}, sys.stdout)
            print()
        else:
            print(f"DIVERGENCE (seed {seed}, kernel {release}) at step {d.step}:")
            print(f"  emulated: {json.dumps(d.emulated)}")
            print(f"  kernel:   {json.dumps(d.scenario['scenarios'][0]['steps'][-1]['expect'])}")
            print("Replayable scenario (save it and run: bpfmap conformance --corpus FILE):")
            print(dump_topic(d.scenario), end="")
        return 1
    secs = time.monotonic() - started
    if args.json:
        json.dump({"seed": seed, "kernel_release": release, "stats": stats,
                   "ops_by_kind": run.counts, "divergences": 0}, sys.stdout)
        print()
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items(), key=lambda kv: -kv[1]))
        print(f"steps by op: {kinds}")
        print(
            f"random: {stats['ops']} operations in {stats['sequences']} sequences "
            f"({stats['maps']} maps, {stats['errors']} errno outcomes, {stats['forks']} forks, "
            f"{stats['pins']} pins), seed {seed}: 0 divergences, kernel {release} "
            f"({secs:.1f}s)"
        )
    return 0
