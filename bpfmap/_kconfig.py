"""The ``.kconfig`` section on the emulated backend, filled as libbpf 1.1 fills it at load.

libbpf resolves ``extern ... __kconfig`` variables from the running kernel: ``LINUX_KERNEL_VERSION``
from its release (Ubuntu's ``/proc/version_signature`` first), ``CONFIG_*`` from
``/boot/config-$(uname -r)`` or else ``/proc/config.gz``, each line converted by the extern's
type (bool, ``enum libbpf_tristate``, char, integers of 1..8 bytes, char arrays for strings).
The same rules here give the same bytes as the kernel backend (the tests compare them). One
difference: a strong extern missing from the config loads as zero here (the ELF symbol's
weakness is not in BTF), where libbpf refuses the load with ``ESRCH``.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import sys

from ._btf import BtfType
from ._section import Variable

_TRISTATE = {"n": 0, "y": 1, "m": 2}


def _kernel_version() -> int:
    """KERNEL_VERSION(a, b, c) of the running kernel, as libbpf's get_kernel_version()."""
    try:
        with open("/proc/version_signature") as f:  # Ubuntu: the upstream version is here
            match = re.match(r"\S+ \S+ (\d+)\.(\d+)\.(\d+)", f.read())
    except OSError:
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", os.uname().release)
    if not match:
        return 0
    a, b, c = (int(x) for x in match.groups())
    return (a << 16) + (b << 8) + min(c, 255)


def _config_lines() -> list[str]:
    boot = f"/boot/config-{os.uname().release}"
    try:
        if os.access(boot, os.R_OK):
            with open(boot, "rb") as f:
                raw = f.read()
        else:
            with gzip.open("/proc/config.gz", "rb") as g:
                raw = g.read()
    except OSError as exc:
        raise OSError(errno.ENOENT, f".kconfig: no kernel config ({exc.strerror})") from None
    return raw.decode("utf-8", "replace").splitlines()


def _kind(t: BtfType) -> str:
    """libbpf's find_kcfg_type(): bool, tristate, char, int, char array or unknown."""
    if t.kind == "int":
        if t.name.split()[-1] in ("_Bool", "bool") and t.size == 1:
            return "bool"
        return "char" if t.size == 1 else "int" if t.size in (2, 4, 8) else "unknown"
    if t.kind == "enum":
        return "tristate" if t.name.endswith("libbpf_tristate") and t.size == 4 else "unknown"
    if t.kind == "array" and t.element is not None and t.element.kind == "int" \
            and t.element.size == 1 and len(t.shape) == 1:
        return "chars"
    return "unknown"


def _strtoull(text: str) -> int | None:
    """C's strtoull(text, &end, 0) where libbpf requires ``*end == 0``: None if the whole text
    is not one number or it overflows (ERANGE); a leading minus negates modulo 2**64."""
    s = text.lstrip(" \t\n\v\f\r")
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    if s[:2] in ("0x", "0X") and s[2:3] and s[2] in "0123456789abcdefABCDEF":
        base, digits = 16, s[2:]
    elif s[:1] == "0":
        base, digits = 8, s
    else:
        base, digits = 10, s
    allowed = "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)]
    if not digits or any(c not in allowed for c in digits):
        return None
    value = int(digits, base)
    if value >= 2**64:
        return None
    return (-value) % 2**64 if negative else value


def _value(var: Variable, text: str) -> bytes:
    """The bytes of one ``CONFIG_X=text`` line for ``var``, or OSError(EINVAL) as libbpf."""
    t, kind = var.type, _kind(var.type)
    bad = OSError(errno.EINVAL, f".kconfig: {var.name}={text} does not fit {t.name}")
    if text[0] in "ynm":
        if kind == "bool" and text[0] != "m":
            return bytes([text[0] == "y"])
        if kind == "tristate":
            return _TRISTATE[text[0]].to_bytes(4, sys.byteorder)
        if kind == "char":
            return text[0].encode()
        raise bad
    if text[0] == '"':
        if kind != "chars" or not text.endswith('"'):
            raise bad
        data = text[1:-1].encode()[: var.size - 1]
        return data + bytes(var.size - len(data))
    number = _strtoull(text)
    if number is None or kind not in ("int", "char"):
        raise bad
    if var.size < 8:
        bits = var.size * 8
        # libbpf's is_kcfg_value_in_range(), in u64 arithmetic
        half = 1 << (bits - 1)
        fits = (number + half) % 2**64 < 2 * half if t.signed else number >> bits == 0
        if not fits:
            raise bad
    return (number % (1 << (var.size * 8))).to_bytes(var.size, sys.byteorder)


def _apply(lines: list[str], pending: dict[str, Variable], data: bytearray) -> None:
    """libbpf's bpf_object__process_kconfig_line() for each line: the first value wins."""
    for line in lines:
        if not line.startswith("CONFIG_"):
            continue
        name, sep, text = line.partition("=")
        if not sep or not text:
            raise OSError(errno.EINVAL, f".kconfig: cannot parse {line!r}")
        var = pending.pop(name, None)
        if var is not None:
            data[var.offset : var.offset + var.size] = _value(var, text)


def fill(size: int, variables: dict[str, Variable], extra: str | None = None) -> bytes:
    """The ``.kconfig`` section's value for the running kernel; ``extra`` lines (libbpf's
    ``kconfig`` open option) come before the kernel's own config."""
    data = bytearray(size)
    pending = {n: v for n, v in variables.items() if n.startswith("CONFIG_")}
    for name, var in variables.items():
        if name == "LINUX_KERNEL_VERSION":
            data[var.offset : var.offset + 4] = _kernel_version().to_bytes(4, sys.byteorder)
        elif not name.startswith("CONFIG_"):
            raise OSError(errno.EOPNOTSUPP, f".kconfig: {name} is not emulated")
    if pending and extra is not None:
        _apply(extra.split("\n"), pending, data)
    if pending:
        _apply(_config_lines(), pending, data)
    return bytes(data)
