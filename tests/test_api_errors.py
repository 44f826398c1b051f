"""Python-level misuse: TypeError/ValueError with a message, never a crash or a silent call.

Also: closed handles, ``with``, the container protocol, and the constants
against the kernel's own header.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import bpfmap
from bpfmap import _constants as C

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
