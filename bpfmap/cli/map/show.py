"""``map show`` / ``map list``: one map, the maps MAP names, or every kernel map."""

from __future__ import annotations

import errno

from ..common import Args, Context, errno_of, strerror
from ..json_writer import JsonWriter
from ..libc import atoll, s32
from .handles import Info, Map, each_of, map_by_id, next_map_id, parse_maps

#: libbpf_bpf_prog_type_str(): index = enum bpf_prog_type (for prog_array owners).
PROG_TYPES = (
    "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint",
    "xdp", "perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out",
    "lwt_xmit", "sock_ops", "sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint",
    "cgroup_sock_addr", "lwt_seg6local", "lirc_mode2", "sk_reuseport",
    "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable", "cgroup_sockopt",
    "tracing", "struct_ops", "ext", "lsm", "sk_lookup", "syscall", "netfilter",
)  # fmt: skip

BPF_MAP_TYPE_PROG_ARRAY = 3


def show_header_json(info: Info, jw: JsonWriter) -> None:
    jw.int_field("id", info.id)
    if info.type_str is not None:
        jw.string_field("type", info.type_str)
    else:
        jw.int_field("type", info.type)
    if info.name:
        jw.string_field("name", info.name)
    jw.name("flags")
    jw.printf(str(s32(info.map_flags)))


def show_header_plain(ctx: Context, info: Info) -> None:
    text = f"{info.id}: "
    text += f"{info.type_str}  " if info.type_str is not None else f"type {info.type}  "
    if info.name:
        text += f"name {info.name}  "
    text += f"flags 0x{info.map_flags:x}\n"
    ctx.print(text)


def _show_map_json(jw: JsonWriter, info: Info, fields: dict[str, str | None]) -> None:
    memlock, owner_type, owner_jited = fields["memlock"], fields["type"], fields["jited"]
    jw.start_object()
    show_header_json(info, jw)
    jw.int_field("bytes_key", info.key_size)
    jw.int_field("bytes_value", info.value_size)
    jw.int_field("max_entries", info.max_entries)
    if memlock is not None:
        jw.int_field("bytes_memlock", atoll(memlock))
    if owner_type is not None:
        prog_type = atoll(owner_type) & 0xFFFFFFFF
        if prog_type < len(PROG_TYPES):
            jw.string_field("owner_prog_type", PROG_TYPES[prog_type])
        else:
            jw.int_field("owner_prog_type", prog_type)
    if owner_jited is not None:
        jw.bool_field("owner_jited", bool(atoll(owner_jited)))
    frozen = fields["frozen"]
    jw.int_field("frozen", atoll(frozen) if frozen is not None else 0)
    if info.btf_id:
        jw.int_field("btf_id", info.btf_id)
    jw.end_object()


def _show_map_plain(ctx: Context, info: Info, fields: dict[str, str | None]) -> None:
    memlock, owner_type, owner_jited = fields["memlock"], fields["type"], fields["jited"]
    frozen = atoll(fields["frozen"] or "0")
    show_header_plain(ctx, info)
    text = f"\tkey {info.key_size}B  value {info.value_size}B  max_entries {info.max_entries}"
    if memlock is not None:
        text += f"  memlock {memlock}B"
    if owner_type is not None or owner_jited is not None:
        text += "\n\t"
    if owner_type is not None:
        prog_type = atoll(owner_type) & 0xFFFFFFFF
        if prog_type < len(PROG_TYPES):
            text += f"owner_prog_type {PROG_TYPES[prog_type]}  "
        else:
            text += f"owner_prog_type {s32(prog_type)}  "
    if owner_jited is not None:
        text += f"owner{'' if atoll(owner_jited) else ' not'} jited"
    if info.btf_id or frozen:
        text += "\n\t"
    if info.btf_id:
        text += f"btf_id {info.btf_id}"
    if frozen:
        text += f"{'  ' if info.btf_id else ''}frozen"
    ctx.print(text + "\n")


def show_map(ctx: Context, m: Map, info: Info) -> None:
    """show_map_close_json() / show_map_close_plain()."""
    fields = {"memlock": m.fdinfo("memlock", info), "frozen": m.fdinfo("frozen", info),
              "type": None, "jited": None}  # fmt: skip
    if info.type == BPF_MAP_TYPE_PROG_ARRAY:
        fields["type"] = m.fdinfo("owner_prog_type", info)
        fields["jited"] = m.fdinfo("owner_jited", info)
    if ctx.json is not None:
        _show_map_json(ctx.json, info, fields)
    else:
        _show_map_plain(ctx, info, fields)


def _show_all(ctx: Context) -> int:
    """Every kernel map, by id."""
    jw = ctx.json
    if jw is not None:
        jw.start_array()
    last_errno = errno.ENOENT
    cur = 0
    while True:
        rc = next_map_id(cur)
        if rc < 0:
            last_errno = -rc
            if last_errno != errno.ENOENT:
                hint = " -- kernel too old?" if last_errno == errno.EINVAL else ""
                ctx.p_err(f"can't get next map: {strerror(last_errno)}{hint}")
            break
        cur = rc
        fd = map_by_id(cur)
        if fd < 0:
            last_errno = -fd
            if last_errno == errno.ENOENT:
                continue
            ctx.p_err(f"can't get map by id ({cur}): {strerror(last_errno)}")
            break
        m = Map(fd=fd)
        try:
            try:
                info = m.info()
            except OSError as exc:
                last_errno = errno_of(exc)
                ctx.p_err(f"can't get map info: {strerror(last_errno)}")
                break
            show_map(ctx, m, info)
        finally:
            m.close()
    if jw is not None:
        jw.end_array()
    return 0 if last_errno == errno.ENOENT else -1


def _show_subset(ctx: Context, args: Args) -> int:
    maps = parse_maps(ctx, args)
    if not maps:
        return -1
    err = -1
    with each_of(ctx, maps):
        for m in maps:
            try:
                info = m.info()
            except OSError as exc:
                err = -errno_of(exc)
                ctx.p_err(f"can't get map info: {strerror(-err)}")
                break
            err = 0
            show_map(ctx, m, info)
    return err


def do_show(ctx: Context, args: Args) -> int:
    if args.argc == 2:
        return _show_subset(ctx, args)
    if args.argc:
        return ctx.bad_arg(args)
    return _show_all(ctx)
