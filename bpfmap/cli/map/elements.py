"""The element verbs: ``update``, ``lookup``, ``getnext``, ``delete``, ``pop`` (and their
queue/stack aliases), one command driven by a table of what each verb parses, does and
prints; with DATA parsing (``[hex] BYTES``) and the printing of one entry."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple, Optional

from ... import _constants as C
from ..._map import ArrayMap
from ..common import Args, Context, errno_of, fprint_hex, is_prefix, strerror
from ..libc import strtoul
from .handles import Info, array_of, parse_map_info

# -- DATA and the element arguments ------------------------------------------------------


def parse_bytes(ctx: Context, args: Args, what: str, n: int) -> bytes | None:
    base = 0
    if is_prefix(args.peek(), "hex"):
        base = 16
        args.next()
    out = bytearray()
    while len(out) < n and args.argc:
        word = args.next()
        value, rest = strtoul(word, base)
        if rest:
            ctx.p_err(f"error parsing byte: {word}")
            return None
        out.append(value & 0xFF)
    if len(out) != n:
        ctx.p_err(f"{what} expected {n} bytes got {len(out)}")
        return None
    return bytes(out)


def parse_elem(
    ctx: Context, args: Args, info: Info, *, want_key: bool, want_value: bool,
    want_flags: bool,
) -> tuple[bytes | None, bytes | None, int] | None:  # fmt: skip
    """parse_elem(): key, value and update flags in any order, each at most once."""
    key: bytes | None = None
    value: bytes | None = None
    flags = C.BPF_ANY
    value_size = info.value_size if want_value else 0
    while True:
        word = args.peek()
        if word is None:
            if not want_key and not want_value:
                return key, value, flags
            ctx.p_err(f"did not find {'key' if want_key else 'value'}")
            return None
        if is_prefix(word, "key"):
            if not want_key:
                ctx.p_err("duplicate key" if info.key_size else "unnecessary key")
                return None
            args.next()
            key = parse_bytes(ctx, args, "key", info.key_size)
            if key is None:
                return None
            want_key = False
        elif is_prefix(word, "value"):
            if not want_value:
                ctx.p_err("duplicate value" if value_size else "unnecessary value")
                return None
            args.next()
            value = parse_bytes(ctx, args, "value", value_size)
            if value is None:
                return None
            want_value = False
        elif is_prefix(word, "any") or is_prefix(word, "noexist") or is_prefix(word, "exist"):
            if not want_flags:
                ctx.p_err(f"flags specified multiple times: {word}")
                return None
            if is_prefix(word, "any"):
                flags = C.BPF_ANY
            elif is_prefix(word, "noexist"):
                flags = C.BPF_NOEXIST
            else:
                flags = C.BPF_EXIST
            args.next()
            want_flags = False
        else:
            ctx.p_err(f"expected key or value, got: {word}")
            return None


# -- one entry on the output ----------------------------------------------------------------


def print_entry(ctx: Context, info: Info, key: bytes, value: bytes) -> None:
    """print_entry_json() / print_entry_plain() for a map without per-CPU values."""
    jw = ctx.json
    if jw is not None:
        jw.start_object()
        jw.name("key")
        jw.hex_data(key)
        jw.name("value")
        jw.hex_data(value)
        jw.end_object()
        return
    break_names = info.key_size > 16 or info.value_size > 16
    single_line = info.key_size + info.value_size <= 24 and not break_names
    nl = "\n" if break_names else " "
    text = ""
    if info.key_size:
        text += f"key:{nl}{fprint_hex(key)}"
        text += "  " if single_line else "\n"
    if info.value_size:
        text += f"value:{nl}{fprint_hex(value)}"
    ctx.print(text + "\n")


def print_entry_error(ctx: Context, info: Info, key: bytes, err: int) -> None:
    jw = ctx.json
    if jw is not None:
        jw.start_object()
        jw.name("key")
        jw.hex_data(key)
        jw.name("value")
        jw.start_object()
        jw.string_field("error", strerror(err))
        jw.end_object()
        jw.end_object()
        return
    msg = "<no entry>" if err == errno.ENOENT else strerror(err)
    break_names = info.key_size > 16 or len(msg) > 16
    single_line = info.key_size + len(msg) <= 24 and not break_names
    nl = "\n" if break_names else " "
    text = f"key:{nl}{fprint_hex(key)}"
    text += "  " if single_line else "\n"
    text += f"value:{nl}{msg}\n"
    ctx.print(text)


def _print_next_key(ctx: Context, key: bytes | None, next_key: bytes) -> None:
    jw = ctx.json
    if jw is not None:
        jw.start_object()
        if key is not None:
            jw.name("key")
            jw.hex_data(key)
        else:
            jw.null_field("key")
        jw.name("next_key")
        jw.hex_data(next_key)
        jw.end_object()
    else:
        text = f"key:\n{fprint_hex(key)}\n" if key is not None else "key: None\n"
        ctx.print(f"{text}next key:\n{fprint_hex(next_key)}\n")


# -- the element verbs, as one -------------------------------------------------------------


class KeyArg(Enum):
    REQUIRED = "key DATA"
    OPTIONAL = "[key DATA]"
    ZERO = "no key: the zero key"  # pop and dequeue


#: An operation: (map, info, key or None, value or None, flags) -> a value, a key or None.
Operation = Callable[[ArrayMap, Info, Optional[int], Optional[bytes], int], Optional[bytes]]


def _update(amap: ArrayMap, info: Info, key: int | None, value: bytes | None, flags: int) -> None:
    assert key is not None and value is not None
    amap.update(key, value, flags)


def _lookup(amap: ArrayMap, info: Info, key: int | None, value: bytes | None, flags: int) -> bytes:
    assert key is not None
    return amap.lookup(key)


def _getnext(amap: ArrayMap, info: Info, key: int | None, value: bytes | None, flags: int) -> bytes:
    return int(amap.get_next_key(key)).to_bytes(info.key_size, sys.byteorder)


def _delete(amap: ArrayMap, info: Info, key: int | None, value: bytes | None, flags: int) -> None:
    assert key is not None
    amap.delete(key)


def _pop(amap: ArrayMap, info: Info, key: int | None, value: bytes | None, flags: int) -> bytes:
    assert key is not None
    return amap.lookup_and_delete(key)


class ElementVerb(NamedTuple):
    """One element verb: its arguments, its operation and how its outcome is printed."""

    key: KeyArg
    value: bool  # value DATA and UPDATE_FLAGS (update, push, enqueue)
    operation: Operation
    failure: str  # "update failed": the error message's prefix
    #: ENOENT is an answer, not a failure: its plain text (from the key), JSON null.
    not_found: Callable[[bytes], str] | None
    #: The result as an entry (key, value); else the next key; else JSON null only.
    prints: str  # "entry", "next_key" or "null"


UPDATE = ElementVerb(KeyArg.REQUIRED, True, _update, "update failed", None, "null")
LOOKUP = ElementVerb(
    KeyArg.REQUIRED, False, _lookup, "lookup failed",
    lambda key: f"key:\n{fprint_hex(key)}\n\nNot found\n", "entry",
)  # fmt: skip
GETNEXT = ElementVerb(KeyArg.OPTIONAL, False, _getnext, "can't get next key", None, "next_key")
DELETE = ElementVerb(KeyArg.REQUIRED, False, _delete, "delete failed", None, "null")
POP = ElementVerb(
    KeyArg.ZERO, False, _pop, "pop failed", lambda key: "Error: empty map\n", "entry"
)


def _parse(
    ctx: Context, args: Args, info: Info, verb: ElementVerb
) -> tuple[bytes | None, bytes | None, int] | None:
    if verb.key is KeyArg.ZERO:
        return bytes(info.key_size), None, C.BPF_ANY
    if verb.key is KeyArg.OPTIONAL and not args.argc:
        return None, None, C.BPF_ANY
    return parse_elem(ctx, args, info, want_key=True, want_value=verb.value,
                      want_flags=verb.value)  # fmt: skip


def _run(ctx: Context, args: Args, verb: ElementVerb) -> int:
    opened = parse_map_info(ctx, args)
    if opened is None:
        return -1
    m, info = opened
    try:
        parsed = _parse(ctx, args, info, verb)
        if parsed is None:
            return -1
        key, value, flags = parsed
        amap = array_of(ctx, m, info)
        if amap is None:
            return -1
        key_int = None if key is None else int.from_bytes(key, sys.byteorder)
        try:
            result = verb.operation(amap, info, key_int, value, flags)
        except OSError as exc:
            err = errno_of(exc)
            if err == errno.ENOENT and verb.not_found is not None:
                if ctx.json is not None:
                    ctx.json.null()
                else:
                    ctx.print(verb.not_found(key or b""))
            else:
                ctx.p_err(f"{verb.failure}: {strerror(err)}")
            return -err
        if verb.prints == "entry":
            assert key is not None and result is not None
            print_entry(ctx, info, key, result)
        elif verb.prints == "next_key":
            assert result is not None
            _print_next_key(ctx, key, result)
        elif ctx.json is not None:
            ctx.json.null()
        return 0
    finally:
        m.close()


def element_verb(verb: ElementVerb) -> Callable[[Context, Args], int]:
    """The command for ``verb``: MAP, its arguments, the operation, its outcome."""

    def run(ctx: Context, args: Args) -> int:
        if args.argc < 2:
            ctx.usage()
        return _run(ctx, args, verb)

    return run
