"""Python-level misuse: TypeError/ValueError with a message, never a crash or a silent call.

Also: closed handles, ``with``, the container protocol, and the constants
against the kernel's own header.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bpfmap
from bpfmap import BPF_F_MMAPABLE, ArrayMap
from bpfmap import _constants as C

MM = BPF_F_MMAPABLE


@pytest.fixture
def m(backend: str) -> Iterator[ArrayMap]:
    mp = ArrayMap(4, 4, flags=MM, backend=backend)
    try:
        yield mp
    finally:
        mp.close()


# -------------------------------------------------------------- creation


def test_from_fd_misuse(backend: str) -> None:
    with pytest.raises(TypeError, match=r"fd must be an int"):
        ArrayMap.from_fd("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fd must be in"):
        ArrayMap.from_fd(-1)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            ArrayMap.from_fd(r)
        assert info.value.errno == errno.EINVAL
        os.fstat(r)  # on failure the caller still owns the fd
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(OSError) as info:
        ArrayMap.from_fd(r)  # closed now
    assert info.value.errno == errno.EBADF


def test_from_fd_takes_ownership(backend: str) -> None:
    m = ArrayMap(4, 2, backend=backend)
    try:
        fd = os.dup(m.fd)
        m2 = ArrayMap.from_fd(fd)
        m2.update(1, b"abcd")
        assert m.lookup(1) == b"abcd"
        assert (m2.backend, m2.value_size, m2.max_entries, m2.id) == (backend, 4, 2, m.id)
        m2.close()
        with pytest.raises(OSError):
            os.fstat(fd)  # closed by the map
    finally:
        m.close()


# --------------------------------------------------------- closed handles

CLOSED_CALLS: dict[str, Callable[[ArrayMap], Any]] = {
    "fd": lambda m: m.fd,
    "backend": lambda m: m.backend,
    "key_size": lambda m: m.key_size,
    "value_size": lambda m: m.value_size,
    "max_entries": lambda m: m.max_entries,
    "flags": lambda m: m.flags,
    "name": lambda m: m.name,
    "id": lambda m: m.id,
    "access": lambda m: m.access,
    "frozen": lambda m: m.frozen,
    "info": lambda m: m.info(),
    "lookup": lambda m: m.lookup(0),
    "lookup-bad-key": lambda m: m.lookup("x"),
    "lookup_into": lambda m: m.lookup_into(0, bytearray(4)),
    "update": lambda m: m.update(0, b"abcd"),
    "update-bytearray": lambda m: m.update(0, bytearray(4)),
    "delete": lambda m: m.delete(0),
    "lookup_and_delete": lambda m: m.lookup_and_delete(0),
    "get_next_key": lambda m: m.get_next_key(),
    "lookup_batch": lambda m: m.lookup_batch(),
    "batches": lambda m: next(m.batches()),
    "update_batch": lambda m: m.update_batch([0], [b"abcd"]),
    "delete_batch": lambda m: m.delete_batch([0]),
    "freeze": lambda m: m.freeze(),
    "mmap": lambda m: m.mmap(),
    "len": lambda m: len(m),
    "getitem": lambda m: m[0],
    "setitem": lambda m: m.__setitem__(0, b"abcd"),
    "delitem": lambda m: m.__delitem__(0),
    "iter": lambda m: next(iter(m)),
    "items": lambda m: next(m.items()),
    "with": lambda m: m.__enter__(),
}


@pytest.mark.parametrize("call", CLOSED_CALLS)
def test_closed_map(backend: str, call: str) -> None:
    m = ArrayMap(4, 4, flags=MM, backend=backend)
    m.close()
    assert m.closed
    with pytest.raises(ValueError, match=r"closed map"):
        CLOSED_CALLS[call](m)


def test_close_is_idempotent_and_repr(backend: str) -> None:
    m = ArrayMap(4, 4, name="r", backend=backend)
    assert repr(m).startswith(f"<ArrayMap {backend} id=")
    assert "name='r' value_size=4 max_entries=4 flags=0x0" in repr(m)
    m.close()
    m.close()
    assert repr(m) == "<ArrayMap closed>"


# ------------------------------------------------------------------- with


def test_with(backend: str) -> None:
    with ArrayMap(4, 4, backend=backend) as m:
        assert not m.closed
        m[0] = b"abcd"
    assert m.closed
    with pytest.raises(RuntimeError), ArrayMap(4, 4, backend=backend) as m2:
        raise RuntimeError("boom")
    assert m2.closed


# -------------------------------------------------------------- constants

HEADER = Path("/usr/include/linux/bpf.h")


def _header_values() -> dict[str, int]:
    """NAME = value members of the uapi header's enums, plus enum bpf_map_type's implicit ones."""
    text = HEADER.read_text()
    values: dict[str, int] = {}
    for name, expr in re.findall(r"^\s*(BPF_\w+)\s*=\s*([^,/\n]+?)\s*,", text, re.M):
        expr = expr.replace("U", "")
        if re.fullmatch(r"[\d\s()<x]+", expr):
            values[name] = int(eval(expr))  # only digits, '<<', parentheses
    body = re.search(r"enum bpf_map_type \{(.*?)\};", text, re.S)
    assert body is not None
    n = 0
    for line in body.group(1).splitlines():
        mt = re.match(r"\s*(BPF_MAP_TYPE_\w+)\s*(?:=\s*(\d+))?\s*,", line)
        if mt:
            n = int(mt.group(2)) if mt.group(2) else n
            values.setdefault(mt.group(1), n)
            n += 1
    return values


@pytest.mark.skipif(not HEADER.exists(), reason="no /usr/include/linux/bpf.h")
def test_constants_match_the_kernel_header() -> None:
    header = _header_values()
    ours = {k: v for k, v in vars(C).items() if k.startswith("BPF_")}
    compared = [k for k in ours if k in header]
    assert {
        "BPF_ANY",
        "BPF_NOEXIST",
        "BPF_EXIST",
        "BPF_F_LOCK",
        "BPF_F_MMAPABLE",
        "BPF_F_RDONLY",
        "BPF_F_WRONLY",
        "BPF_MAP_TYPE_ARRAY",
    } <= set(compared)
    assert {k: ours[k] for k in compared} == {k: header[k] for k in compared}


def test_constants_exported_and_known_values() -> None:
    for k, v in vars(C).items():
        if k.startswith("BPF_") or k == "ENOTSUPP":
            assert getattr(bpfmap, k) == v, k
    # Flags added after older installed headers: the kernel's values (include/uapi/linux/bpf.h).
    assert tuple(1 << b for b in range(13, 19)) == (
        C.BPF_F_LINK,
        C.BPF_F_PATH_FD,
        C.BPF_F_VTYPE_BTF_OBJ_FD,
        C.BPF_F_TOKEN_FD,
        C.BPF_F_SEGV_ON_FAULT,
        C.BPF_F_NO_USER_CONV,
    )
    assert C.BPF_MAP_TYPE_ARRAY == 2
    assert C.ENOTSUPP == 524
    assert os.strerror(524) == "Unknown error 524"  # libc has no name for it
