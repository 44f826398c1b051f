"""Checks of Python arguments: misuse is TypeError or ValueError saying what was expected."""

from __future__ import annotations

import operator

U32 = 2**32 - 1
U64 = 2**64 - 1


def check_uint(value: object, bits: int, what: str) -> int:
    """``value`` as an int in 0..2**bits - 1: an int or any exact integer type with
    ``__index__`` (NumPy's, as ``mmap`` and NumPy indexing take them), never a bool."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"{what} must be an int, not {type(value).__name__}")
        value = operator.index(value)  # type: ignore[arg-type]
    assert isinstance(value, int)
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} must be in 0..{(1 << bits) - 1}, got {value}")
    return value


def exact_ints(key: object, flags: object) -> None:
    """cffi takes bools (and anything with __index__) as ints: check them as every call does."""
    if type(key) is not int:
        check_uint(key, 32, "key")
    if type(flags) is not int:
        check_uint(flags, 64, "flags")


def bad_args(**args: tuple[object, int]) -> Exception:
    """The TypeError/ValueError for the first argument cffi refused."""
    for name, (value, bits) in args.items():
        try:
            check_uint(value, bits, name)
        except (TypeError, ValueError) as exc:
            return exc
    return TypeError("invalid argument")


def name_bytes(name: str | bytes) -> bytes:
    if isinstance(name, str):
        return name.encode("utf-8")
    if isinstance(name, bytes):
        return name
    raise TypeError(f"name must be str or bytes, not {type(name).__name__}")


def decode_name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _kernel_isalnum(c: int) -> bool:
    """The kernel's isalnum() (lib/ctype.c counts Latin-1 letters too)."""
    if chr(c).isascii():
        return chr(c).isalnum()
    return c >= 192 and c not in (215, 247)


def _name_refused(raw: bytes) -> bool:
    """bpf_obj_name_cpy() on the 16 bytes of ``attr.map_name``: alnum, '_' or '.' up to a
    NUL, which must come within the 16."""
    field = raw[:16]
    name = field.split(b"\0", 1)[0]
    return len(name) == 16 or any(not _kernel_isalnum(c) and c not in b"_." for c in name)


def create_hint(key_size: int, value_size: int, max_entries: int, flags: int,
                raw_name: bytes) -> str:
    """What an array map's ``BPF_MAP_CREATE`` refused with EINVAL, when the arguments alone
    say it for certain, in the kernel's order (map_create(), array_map_alloc_check(), the
    name last, after the allocation); "" when they do not."""
    from . import _constants as C

    # Plain ints: the arguments passed check_uint, but may be NumPy integers, whose
    # arithmetic with the negative masks below would overflow.
    key_size, value_size, max_entries, flags = (
        operator.index(x) for x in (key_size, value_size, max_entries, flags))
    token = flags & C.BPF_F_TOKEN_FD
    flags &= ~C.BPF_F_TOKEN_FD  # map_create() looks at the token only after the checks below
    if flags & C.BPF_F_RDONLY and flags & C.BPF_F_WRONLY:
        return "flags: BPF_F_RDONLY and BPF_F_WRONLY together"
    known = (C.BPF_F_NUMA_NODE | C.BPF_F_MMAPABLE | C.BPF_F_RDONLY | C.BPF_F_WRONLY
             | C.BPF_F_RDONLY_PROG | C.BPF_F_WRONLY_PROG | C.BPF_F_PRESERVE_ELEMS
             | C.BPF_F_INNER_MAP)
    reasons = []  # one check of array_map_alloc_check(): any of them is the reason
    if max_entries == 0:
        reasons.append("max_entries: 0")
    if key_size != 4:
        reasons.append(f"key_size: an array map's keys are 4 bytes, not {key_size}")
    if value_size == 0:
        reasons.append("value_size: 0")
    if flags & ~known:
        reasons.append(f"flags: {flags & ~known:#x} is not an array map flag")
    if flags & C.BPF_F_RDONLY_PROG and flags & C.BPF_F_WRONLY_PROG:
        reasons.append("flags: BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together")
    if reasons:
        return "; ".join(reasons)
    if flags & C.BPF_F_PRESERVE_ELEMS:
        return "flags: BPF_F_PRESERVE_ELEMS is for perf event arrays"
    if token:  # the token's own EINVAL (or EBADF) comes before the name's
        return ""
    if _name_refused(raw_name):
        return "name: at most 15 characters of [A-Za-z0-9_.]"
    return ""
