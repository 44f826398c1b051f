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
