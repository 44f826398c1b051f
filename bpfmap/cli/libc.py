"""The C library's behaviour that bpftool's parsing and messages rely on.

bpftool reads numbers with ``strtoul()``, counters from fdinfo with ``atoll()`` and
calls ``dirname()`` on the very buffer it then prints: the CLI repeats each exactly
(tests/test_cli_map.py checks ``strtoul`` and ``dirname`` against glibc itself).
"""

from __future__ import annotations

import re

_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_U64 = 2**64 - 1


def strtoul(text: str, base: int) -> tuple[int, str]:
    """glibc strtoul(): (value, the unparsed rest); the rest is ``text`` if nothing parsed."""
    i, n = 0, len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    neg = i < n and text[i] == "-"
    if i < n and text[i] in "+-":
        i += 1

    def hex_prefix(at: int) -> bool:
        return (
            text[at : at + 2] in ("0x", "0X")
            and at + 2 < n
            and text[at + 2].lower() in _DIGITS[:16]
        )

    if base in (0, 16) and hex_prefix(i):
        base = 16
        i += 2
    elif base == 0:
        base = 8 if text[i : i + 1] == "0" else 10
    digits = _DIGITS[:base]
    start = i
    while i < n and text[i].isascii() and text[i].lower() in digits:
        i += 1
    if i == start:
        return 0, text
    value = int(text[start:i], base)
    if value > _U64:
        value = _U64
    elif neg:
        value = -value & _U64
    return value, text[i:]


def atoll(text: str) -> int:
    """C atoll(): the leading decimal number, 0 if none."""
    match = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)
    return int(match.group(1)) if match else 0


def s32(value: int) -> int:
    """A __u32 printed with %d."""
    return value - (1 << 32) if value & (1 << 31) else value


def c_dirname(path: str) -> tuple[str, str]:
    """glibc dirname(): (the directory, what the caller's buffer holds afterwards)."""
    last = path.rfind("/")
    if last > 0 and last == len(path) - 1:
        run = last
        while run > 0 and path[run - 1] == "/":
            run -= 1
        if run > 0:
            last = path.rfind("/", 0, run)
    if last < 0:
        return ".", path
    run = last
    while run > 0 and path[run - 1] == "/":
        run -= 1
    # Only slashes before the last one: "/" (or "//", which POSIX keeps).
    cut = (2 if last == 1 else 1) if run == 0 else run
    return path[:cut], path[:cut]
