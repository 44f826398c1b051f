"""``map dump``: every element of the maps MAP names, key by key (BPF_MAP_GET_NEXT_KEY)."""

from __future__ import annotations

import errno
import sys

from ..common import Args, Context, errno_of, strerror
from .elements import print_entry, print_entry_error
from .handles import Info, Map, array_of, each_of, parse_maps
from .show import show_header_json, show_header_plain


def _dump_map(ctx: Context, m: Map, info: Info, show_header: bool) -> int:
    amap = array_of(ctx, m, info)
    if amap is None:
        return -1
    jw = ctx.json
    if jw is not None:
        if show_header:
            jw.start_object()
            show_header_json(info, jw)
            jw.name("elements")
        jw.start_array()
    elif show_header:
        show_header_plain(ctx, info)
    key_bytes = info.key_size
    count = 0
    err = 0
    prev: int | None = None
    while True:
        try:
            key = amap.get_next_key(prev)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                err = -errno_of(exc)
            break
        raw_key = key.to_bytes(key_bytes, sys.byteorder)
        try:
            value = amap.lookup(key)
        except OSError as exc:
            print_entry_error(ctx, info, raw_key, errno_of(exc))
        else:
            print_entry(ctx, info, raw_key, value)
            count += 1
        prev = key
    if jw is not None:
        jw.end_array()
        if show_header:
            jw.end_object()
    else:
        ctx.print(f"Found {count} element{'s' if count != 1 else ''}\n")
    return err


def do_dump(ctx: Context, args: Args) -> int:
    if args.argc != 2:
        ctx.usage()
    maps = parse_maps(ctx, args)
    if not maps:
        return -1
    err = -1
    with each_of(ctx, maps) as many:
        for i, m in enumerate(maps):
            try:
                info = m.info()
            except OSError as exc:
                ctx.p_err(f"can't get map info: {strerror(errno_of(exc))}")
                break
            err = _dump_map(ctx, m, info, many)
            if ctx.json is None and i != len(maps) - 1:
                ctx.print("\n")
            if err:
                break
    return err
