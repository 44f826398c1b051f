"""The verbs that make, pin and freeze maps: ``create``, ``pin``, ``freeze``; and
``event_pipe``, which bpfmap refuses with bpftool's words."""

from __future__ import annotations

import errno
import os

from ... import _constants as C
from ..._bindings import lib
from ..._map import ArrayMap
from ..common import Args, Context, errno_of, is_prefix, strerror
from ..libc import strtoul
from .handles import (
    BPF_OBJ_NAME_LEN,
    MAP_TYPES,
    Map,
    array_of,
    on_bpffs,
    parse_map,
    parse_map_info,
)

BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4


def pin_map(ctx: Context, m: Map, path: str) -> int:
    """do_pin_fd(), without mounting anything: kernel maps pin on bpffs only."""
    try:
        if m.fd is not None:
            rc = lib.bpfmap_obj_pin(m.fd, os.fsencode(path))
            if rc:
                raise OSError(-rc, strerror(-rc))
        else:
            m.array().pin(path)
    except OSError as exc:
        err = errno_of(exc)
        ctx.p_err(f"can't pin the object ({path}): {strerror(err)}")
        return -err
    except ValueError as exc:  # a path the pin cannot take: said in one line, never a traceback
        ctx.p_err(f"can't pin the object ({path}): {exc}")
        return -errno.EINVAL
    return 0


def do_pin(ctx: Context, args: Args) -> int:
    if not ctx.req_args(args, 3):
        return -errno.EINVAL
    m = parse_map(ctx, args)
    if m is None:
        return -1
    try:
        err = pin_map(ctx, m, ctx.next_arg(args))
    finally:
        m.close()
    if not err and ctx.json is not None:
        ctx.json.null()
    return err


def _parse_u32(ctx: Context, args: Args, current: int, what: str) -> int | None:
    ctx.next_arg(args)
    if current:
        ctx.p_err(f"{what} already specified")
        return None
    word = ctx.next_arg(args)
    value, rest = strtoul(word, 0)
    if rest:
        ctx.p_err(f"can't parse {word} as {what}")
        return None
    return value & 0xFFFFFFFF


def _parse_create(ctx: Context, args: Args) -> tuple[int, dict[str, int], str] | None:
    """The words after FILE: (map type, the sizes and flags, the name)."""
    map_type = 0
    sizes = {"key size": 0, "value size": 0, "max entries": 0, "flags": 0}
    name: str | None = None
    while args.argc:
        if not ctx.req_args(args, 2):
            return None
        word = args.peek()
        if is_prefix(word, "type"):
            ctx.next_arg(args)
            if map_type:
                ctx.p_err("map type already specified")
                return None
            type_name = ctx.next_arg(args)
            if type_name not in MAP_TYPES:
                ctx.p_err(f"unrecognized map type: {type_name}")
                return None
            map_type = MAP_TYPES.index(type_name)
            continue
        if is_prefix(word, "name"):
            ctx.next_arg(args)
            name = ctx.next_arg(args)
            continue
        for what, kw in (("key size", "key"), ("value size", "value"),
                         ("max entries", "entries"), ("flags", "flags")):  # fmt: skip
            if is_prefix(word, kw):
                value = _parse_u32(ctx, args, sizes[what], what)
                if value is None:
                    return None
                sizes[what] = value
                break
        else:
            if is_prefix(word, "dev") or is_prefix(word, "inner_map"):
                ctx.p_err(f"{word}: bpfmap creates plain array maps only")
            else:
                ctx.p_err(f"unknown arg {word}")
            return None
    if name is None:
        ctx.p_err("map name not specified")
        return None
    return map_type, sizes, name


def _backend_for(path: str) -> tuple[str, int]:
    """("kernel" on bpffs, else "emulated"; 0, or the errno that hides where ``path`` is)."""
    where = on_bpffs(path)
    if where < 0:
        # A name too long to look at, say: its directory still tells the backend.
        parent = on_bpffs(os.path.dirname(path) or ".")
        return ("kernel" if parent == 1 else "emulated"), (-where if parent < 0 else 0)
    return ("kernel" if where else "emulated"), 0


def do_create(ctx: Context, args: Args) -> int:
    if not ctx.req_args(args, 7):
        return -1
    path = args.next()
    parsed = _parse_create(ctx, args)
    if parsed is None:
        return -1
    map_type, sizes, name = parsed
    if map_type == 0:  # BPF_MAP_TYPE_UNSPEC: the kernel's EINVAL
        ctx.p_err(f"map create failed: {strerror(errno.EINVAL)}")
        return -1
    if map_type != C.BPF_MAP_TYPE_ARRAY:
        ctx.p_err(f"map type {MAP_TYPES[map_type]}: bpfmap creates array maps only")
        return -1
    backend, unseen = _backend_for(path)
    try:
        amap = ArrayMap(
            sizes["value size"], sizes["max entries"], flags=sizes["flags"],
            name=os.fsencode(name)[: BPF_OBJ_NAME_LEN - 1],  # libbpf truncates
            key_size=sizes["key size"], backend=backend,
        )  # fmt: skip
    except OSError as exc:
        ctx.p_err(f"map create failed: {strerror(errno_of(exc))}")
        return -1
    try:
        if unseen:  # no directory to pin in, or a path too long to reach it
            ctx.p_err(f"can't pin the object ({path}): {strerror(unseen)}")
            # No directory: bpftool finds no bpffs to pin in (-1); else the errno.
            return -1 if unseen == errno.ENOENT else -unseen
        err = pin_map(ctx, Map(amap=amap), path)
    finally:
        amap.close()
    if err:
        return err
    if ctx.json is not None:
        ctx.json.null()
    return 0


def do_freeze(ctx: Context, args: Args) -> int:
    if not ctx.req_args(args, 2):
        return -1
    m = parse_map(ctx, args)
    if m is None:
        return -1
    try:
        if args.argc:
            return ctx.bad_arg(args)
        try:
            info = m.info()
        except OSError as exc:
            ctx.p_err(f"failed to freeze map: {strerror(errno_of(exc))}")
            return -1
        amap = array_of(ctx, m, info)
        if amap is None:
            return -1
        try:
            amap.freeze()
        except OSError as exc:
            err = errno_of(exc)
            ctx.p_err(f"failed to freeze map: {strerror(err)}")
            return -err
    finally:
        m.close()
    if ctx.json is not None:
        ctx.json.null()
    return 0


def do_event_pipe(ctx: Context, args: Args) -> int:
    opened = parse_map_info(ctx, args)
    if opened is None:
        return -1
    m, info = opened
    m.close()
    if info.type != BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        ctx.p_err("map is not a perf event array")
    else:
        ctx.p_err("event_pipe is not supported by bpfmap")
    return -1
