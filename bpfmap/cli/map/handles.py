"""``MAP := { id MAP_ID | pinned FILE | name MAP_NAME }``: finding and opening maps.

A FILE on bpffs is a kernel map (``BPF_OBJ_GET``); any other path an emulated
map pinned by bpfmap. ``id`` and ``name`` find kernel maps only.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from ... import _bindings, _pin
from ... import _constants as C
from ..._bindings import ffi, lib
from ..._map import PAGE_SIZE, ArrayMap
from ..common import Args, Context, errno_of, get_fdinfo, is_prefix, strerror
from ..libc import c_dirname, strtoul

#: libbpf_bpf_map_type_str(): index = enum bpf_map_type.
MAP_TYPES = (
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash",
    "percpu_array", "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash",
    "lpm_trie", "array_of_maps", "hash_of_maps", "devmap", "sockmap", "cpumap",
    "xskmap", "sockhash", "cgroup_storage", "reuseport_sockarray",
    "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
    "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter",
    "user_ringbuf", "cgrp_storage", "arena",
)  # fmt: skip

BPF_OBJ_NAME_LEN = 16
#: sizeof(struct bpf_array) on 64-bit kernels: what an emulated map's memlock counts
#: for the map's own header (checked against fdinfo by tests/test_cli_map.py).
SIZEOF_BPF_ARRAY = int(lib.BPFMAP_SIZEOF_BPF_ARRAY)


def _page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def emulated_memlock(value_size: int, max_entries: int, map_flags: int) -> int:
    """The kernel's array_map_mem_usage() for the same map (fdinfo's memlock)."""
    elem_size = _bindings.elem_size(value_size)
    if map_flags & C.BPF_F_MMAPABLE:
        return _page_align(SIZEOF_BPF_ARRAY) + _page_align(max_entries * elem_size)
    return SIZEOF_BPF_ARRAY + max_entries * elem_size


def on_bpffs(path: str) -> int:
    """1 on bpffs, 0 elsewhere, or -errno if neither ``path`` nor its directory can be seen."""
    return _pin.bpffs_rc(path)


def _is_bpffs(path: str) -> bool | None:
    """True/False, or None if neither ``path`` nor its directory can be looked at."""
    rc = on_bpffs(path)
    return None if rc < 0 else bool(rc)


class Info(NamedTuple):
    """The fields of struct bpf_map_info that bpftool prints."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int

    @property
    def type_str(self) -> str | None:
        return MAP_TYPES[self.type] if self.type < len(MAP_TYPES) else None


class Map:
    """A map opened from MAP: a kernel map descriptor (any type) or an emulated ArrayMap."""

    def __init__(self, *, fd: int | None = None, amap: ArrayMap | None = None) -> None:
        self.fd = fd
        self._amap = amap
        self._array: ArrayMap | None = amap

    def info(self) -> Info:
        """BPF_OBJ_GET_INFO_BY_FD; raises OSError."""
        if self.fd is None:
            assert self._amap is not None
            i = self._amap.info()
            return Info(i.type, i.id, i.key_size, i.value_size, i.max_entries, i.map_flags,
                        i.name, 0)  # fmt: skip
        raw = ffi.new("struct bpfmap_info *")
        btf_id = ffi.new("uint32_t *")
        rc = lib.bpfmap_map_fd_info(self.fd, raw, btf_id)
        if rc:
            raise OSError(-rc, strerror(-rc))
        name = os.fsdecode(ffi.string(raw.name, 16).split(b"\0", 1)[0])
        return Info(raw.type, raw.id, raw.key_size, raw.value_size, raw.max_entries,
                    raw.map_flags, name, btf_id[0])  # fmt: skip

    def fdinfo(self, key: str, info: Info) -> str | None:
        """What bpftool reads from /proc/self/fdinfo; computed as the kernel would for emulated."""
        if self.fd is not None:
            return get_fdinfo(self.fd, key)
        assert self._amap is not None
        if key == "memlock":
            return str(emulated_memlock(info.value_size, info.max_entries, info.map_flags))
        if key == "frozen":
            return "1" if self._amap.frozen else "0"
        return None

    def array(self) -> ArrayMap:
        """The ArrayMap for element commands (kernel maps: a second descriptor)."""
        if self._array is None:
            assert self.fd is not None
            dup = os.dup(self.fd)
            try:
                self._array = ArrayMap.from_fd(dup)
            except BaseException:
                os.close(dup)
                raise
        return self._array

    def close(self) -> None:
        if self._array is not None:
            self._array.close()
        if self._amap is not None:
            self._amap.close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _fd_type(fd: int) -> str:
    """bpftool's get_fd_type(): map, prog, link or unknown, from the anon inode's name."""
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "unknown"
    for kind in ("map", "prog", "link"):
        if f"bpf-{kind}" in link:
            return kind
    return "unknown"


def map_by_id(map_id: int) -> int:
    """BPF_MAP_GET_FD_BY_ID: a descriptor, or -errno."""
    return int(lib.bpfmap_map_get_fd_by_id(map_id, 0))


def next_map_id(cur: int) -> int:
    """BPF_MAP_GET_NEXT_ID: the next id above ``cur``, or -errno (-ENOENT past the last)."""
    next_id = ffi.new("uint32_t *")
    rc = lib.bpfmap_map_get_next_id(cur, next_id)
    return int(rc) if rc else int(next_id[0])


def _by_name(ctx: Context, name: str) -> list[Map] | None:
    maps: list[Map] = []
    want = os.fsencode(name)[:BPF_OBJ_NAME_LEN]
    cur = 0
    while True:
        rc = next_map_id(cur)
        if rc < 0:
            if rc != -errno.ENOENT:
                ctx.p_err(strerror(-rc))
                break
            return maps
        cur = rc
        fd = map_by_id(cur)
        if fd == -errno.ENOENT:
            continue  # gone since BPF_MAP_GET_NEXT_ID (bpftool would stop here)
        if fd < 0:
            ctx.p_err(f"can't get map by id ({cur}): {strerror(-fd)}")
            break
        m = Map(fd=fd)
        try:
            info = m.info()
        except OSError as exc:
            ctx.p_err(f"can't get map info ({cur}): {strerror(errno_of(exc))}")
            m.close()
            break
        if os.fsencode(info.name) != want:
            m.close()
            continue
        maps.append(m)
    for m in maps:
        m.close()
    return None


def why_not_emulated(path: str, err: int) -> str:
    """What is at ``path`` when it does not open as an emulated pin, in words.

    The errno alone misleads here: the API answers EACCES for any file that is not
    a pin (as BPF_OBJ_GET does on bpffs), and ENOENT for a pin whose map is gone.
    """
    try:
        st = os.stat(path)  # the kernel follows a symlink to a pin
    except OSError:
        return strerror(err)
    if stat.S_ISDIR(st.st_mode):
        return "not a pinned map (a directory)"
    if stat.S_ISSOCK(st.st_mode):
        return "not a pinned map (a socket)"
    if not stat.S_ISREG(st.st_mode) or err == errno.EACCES and not _pin_file(path):
        return "not a pinned map (a file)"
    if err == errno.ENOENT:
        return "stale pin: the map it held is gone"
    return strerror(err)


def _pin_file(path: str) -> bool:
    """Whether ``path`` reads as an emulated pin file (when we may read it)."""
    from ..._pin import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _pinned(ctx: Context, path: str) -> Map | None:
    where = _is_bpffs(path)
    if where is None or not where:
        try:
            return Map(amap=ArrayMap.open_pinned(path))
        except OSError as exc:
            ctx.p_err(f"bpf obj get ({path}): {why_not_emulated(path, errno_of(exc))}")
            return None
    fd = int(lib.bpfmap_obj_get(os.fsencode(path), 0))
    if fd < 0:
        err = -fd
        text = strerror(err)
        if err == errno.EACCES:
            # bpftool calls dirname() on the very buffer it then prints.
            directory, path = c_dirname(path)
            if not _is_bpffs(directory):
                text = "directory not in bpf file system (bpffs)"
        ctx.p_err(f"bpf obj get ({path}): {text}")
        return None
    kind = _fd_type(fd)
    if kind != "map":
        ctx.p_err(f"incorrect object type: {kind}")
        os.close(fd)
        return None
    return Map(fd=fd)


def parse_maps(ctx: Context, args: Args) -> list[Map] | None:
    """map_parse_fds(): the maps MAP names (None after an error, reported)."""
    word = args.peek()
    if is_prefix(word, "id"):
        ctx.next_arg(args)
        text = ctx.next_arg(args)
        value, rest = strtoul(text, 0)
        if rest:
            ctx.p_err(f"can't parse {text} as ID")
            return None
        map_id = value & 0xFFFFFFFF
        fd = map_by_id(map_id)
        if fd < 0:
            ctx.p_err(f"get map by id ({map_id}): {strerror(-fd)}")
            return None
        return [Map(fd=fd)]
    if is_prefix(word, "name"):
        ctx.next_arg(args)
        name = ctx.next_arg(args)
        if len(os.fsencode(name)) > BPF_OBJ_NAME_LEN - 1:
            ctx.p_err("can't parse name")
            return None
        return _by_name(ctx, name)
    if is_prefix(word, "pinned"):
        ctx.next_arg(args)
        path = ctx.next_arg(args)
        m = _pinned(ctx, path)
        return None if m is None else [m]
    shown = "(null)" if word is None else word
    ctx.p_err(f"expected 'id', 'name' or 'pinned', got: '{shown}'?")
    return None


@contextmanager
def each_of(ctx: Context, maps: list[Map]) -> Iterator[bool]:
    """The frame bpftool's show and dump put around several maps: one JSON array
    (when there are several), and every descriptor closed after, whatever happens.
    Yields whether there are several."""
    jw = ctx.json
    many = len(maps) > 1
    if jw is not None and many:
        jw.start_array()
    try:
        yield many
    finally:
        for m in maps:
            m.close()
    if jw is not None and many:
        jw.end_array()


def parse_map(ctx: Context, args: Args) -> Map | None:
    """map_parse_fd(): exactly one map."""
    maps = parse_maps(ctx, args)
    if maps is None or len(maps) != 1:
        if maps:
            ctx.p_err("several maps match this handle")
            for m in maps:
                m.close()
        return None
    return maps[0]


def parse_map_info(ctx: Context, args: Args) -> tuple[Map, Info] | None:
    """map_parse_fd_and_info()."""
    m = parse_map(ctx, args)
    if m is None:
        return None
    try:
        return m, m.info()
    except OSError as exc:
        ctx.p_err(f"can't get map info: {strerror(errno_of(exc))}")
        m.close()
        return None


def array_of(ctx: Context, m: Map, info: Info) -> ArrayMap | None:
    """The map's ArrayMap, or an error: bpfmap's element commands handle arrays only."""
    if info.type != C.BPF_MAP_TYPE_ARRAY:
        kind = info.type_str or f"type {info.type}"
        ctx.p_err(f"{kind} map: bpfmap handles array maps only")
        return None
    try:
        return m.array()
    except OSError as exc:
        ctx.p_err(f"can't open map: {strerror(errno_of(exc))}")
        return None
