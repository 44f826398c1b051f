"""``bpfmap map``: bpftool's map verbs, on kernel maps and on emulated maps.

The syntax, the output (plain, ``-j`` and ``-p``, byte for byte), the error
messages and the exit statuses are bpftool's (v7.1, ``tools/bpf/bpftool/map.c``,
``common.c``, ``json_writer.c``): a script of ``bpftool map ...`` commands runs
unchanged with ``bpfmap map ...``. What differs is where maps live: a ``FILE``
on bpffs is a kernel map (``bpf()``), any other path an emulated map pinned by
bpfmap, which needs no privileges. ``id`` and ``name`` find kernel maps only
(emulated maps have no global registry).
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from . import _constants as C
from ._core import ffi, lib
from ._map import PAGE_SIZE, ArrayMap

BIN = "bpfmap"

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
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_OBJ_NAME_LEN = 16
#: sizeof(struct bpf_array) on 64-bit kernels: what an emulated map's memlock counts
#: for the map's own header (checked against fdinfo by tests/test_cli_map.py).
SIZEOF_BPF_ARRAY = 312

HELP = """\
Usage: {bin} {obj} {{ show | list }}   [MAP]
       {bin} {obj} create     FILE type TYPE key KEY_SIZE value VALUE_SIZE \\
                                  entries MAX_ENTRIES name NAME [flags FLAGS]
       {bin} {obj} dump       MAP
       {bin} {obj} update     MAP [key DATA] [value VALUE] [UPDATE_FLAGS]
       {bin} {obj} lookup     MAP [key DATA]
       {bin} {obj} getnext    MAP [key DATA]
       {bin} {obj} delete     MAP  key DATA
       {bin} {obj} pin        MAP  FILE
       {bin} {obj} peek       MAP
       {bin} {obj} push       MAP value VALUE
       {bin} {obj} pop        MAP
       {bin} {obj} enqueue    MAP value VALUE
       {bin} {obj} dequeue    MAP
       {bin} {obj} freeze     MAP
       {bin} {obj} help

       MAP := {{ id MAP_ID | pinned FILE | name MAP_NAME }}
       DATA := {{ [hex] BYTES }}
       VALUE := DATA
       UPDATE_FLAGS := {{ any | exist | noexist }}
       TYPE := array
       OPTIONS := {{ {{-j|--json}} [{{-p|--pretty}}] | {{-d|--debug}} | {{-n|--nomount}} }}

       A FILE on bpffs (/sys/fs/bpf) is a kernel map (bpf(), CAP_BPF); any other
       FILE is an emulated map, which needs no privileges. 'id' and 'name' find
       kernel maps only.
"""


class _Exit(Exception):
    """Leave the command with bpftool's return value (exit status: value & 0xff)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# -- output ------------------------------------------------------------------


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class _Out:
    """stdout, line-buffered as bpftool's (setlinebuf): stderr never overtakes a full line."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._buf: list[str] = []
        self._size = 0

    def write(self, text: str) -> None:
        self._buf.append(text)
        self._size += len(text)
        if self._size >= 65536:
            self.flush_lines()

    def _emit(self, text: str) -> None:
        if not text:
            return
        raw = getattr(self._stream, "buffer", None)
        if raw is not None:
            raw.write(_encode(text))
        else:
            self._stream.write(text)

    def flush_lines(self) -> None:
        text = "".join(self._buf)
        cut = text.rfind("\n") + 1
        self._emit(text[:cut])
        self._buf = [text[cut:]]
        self._size = len(text) - cut
        self._stream.flush()

    def flush(self) -> None:
        text = "".join(self._buf)
        self._buf = []
        self._size = 0
        self._emit(text)
        self._stream.flush()


def _json_string(text: str) -> str:
    """jsonw_puts(): C escapes only, as bpftool writes them."""
    out = ['"']
    for ch in text:
        if ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class JsonWriter:
    """bpftool's json_writer.c: the same bytes, separators and indentation included."""

    def __init__(self, out: _Out, pretty: bool) -> None:
        self.out = out
        self.pretty = pretty
        self.depth = 0
        self.sep = ""

    def _eol(self) -> None:
        if self.pretty:
            self.out.write("\n" + "    " * self.depth)

    def _eor(self) -> None:
        if self.sep:
            self.out.write(self.sep)
        self.sep = ","

    def _begin(self, c: str) -> None:
        self._eor()
        self.out.write(c)
        self.depth += 1
        self.sep = ""

    def _end(self, c: str) -> None:
        self.depth -= 1
        if self.sep:
            self._eol()
        self.out.write(c)
        self.sep = ","

    def start_object(self) -> None:
        self._begin("{")

    def end_object(self) -> None:
        self._end("}")

    def start_array(self) -> None:
        self._begin("[")

    def end_array(self) -> None:
        self._end("]")

    def name(self, name: str) -> None:
        self._eor()
        self._eol()
        self.sep = ""
        self.out.write(_json_string(name) + (": " if self.pretty else ":"))

    def printf(self, text: str) -> None:
        self._eor()
        self.out.write(text)

    def string(self, value: str) -> None:
        self._eor()
        self.out.write(_json_string(value))

    def null(self) -> None:
        self.printf("null")

    def string_field(self, name: str, value: str) -> None:
        self.name(name)
        self.string(value)

    def int_field(self, name: str, value: int) -> None:
        self.name(name)
        self.printf(str(value))

    def bool_field(self, name: str, value: bool) -> None:
        self.name(name)
        self.printf("true" if value else "false")

    def null_field(self, name: str) -> None:
        self.name(name)
        self.null()

    def hex_data(self, data: bytes) -> None:
        """print_hex_data_json(): an array of "0x.." strings."""
        self.start_array()
        for b in data:
            self.printf(f'"0x{b:02x}"')
        self.end_array()

    def destroy(self) -> None:
        self.out.write("\n")


def fprint_hex(data: bytes, sep: str = " ") -> str:
    """bpftool's fprint_hex(): a newline every 16 bytes, two spaces every 8."""
    parts = []
    for i, b in enumerate(data):
        if not i:
            pfx = ""
        elif not i % 16:
            pfx = "\n"
        elif not i % 8:
            pfx = "  "
        else:
            pfx = sep
        parts.append(f"{pfx}{b:02x}")
    return "".join(parts)


# -- C library behaviour -------------------------------------------------------

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


def is_prefix(pfx: str | None, word: str) -> bool:
    """bpftool's is_prefix(): ``pfx`` abbreviates ``word`` (the empty string abbreviates all)."""
    return pfx is not None and word.startswith(pfx)


def strerror(err: int) -> str:
    return os.strerror(err)


def _errno_of(exc: OSError) -> int:
    return exc.errno if exc.errno is not None else errno.EIO


def get_fdinfo(fd: int, key: str) -> str | None:
    """bpftool's get_fdinfo(): the value of the first fdinfo line containing ``key``."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if key not in line:
                    continue
                tab = line.find("\t")
                if tab < 0 or tab + 1 >= len(line):
                    return None
                value = line[tab + 1 :]
                return value[:-1] if value.endswith("\n") else value
    except OSError:
        return None
    return None


def _atoll(text: str) -> int:
    """C atoll(): the leading decimal number, 0 if none."""
    match = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)
    return int(match.group(1)) if match else 0


def _s32(value: int) -> int:
    return value - (1 << 32) if value & (1 << 31) else value


def _page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def emulated_memlock(value_size: int, max_entries: int, map_flags: int) -> int:
    """The kernel's array_map_mem_usage() for the same map (fdinfo's memlock)."""
    elem_size = (value_size + 7) & ~7
    if map_flags & C.BPF_F_MMAPABLE:
        return _page_align(SIZEOF_BPF_ARRAY) + _page_align(max_entries * elem_size)
    return SIZEOF_BPF_ARRAY + max_entries * elem_size


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


def _is_bpffs(path: str) -> bool | None:
    """True/False, or None if neither ``path`` nor its directory can be looked at."""
    rc = lib.bpfmap_on_bpffs(os.fsencode(path))
    return None if rc < 0 else bool(rc)


# -- maps ----------------------------------------------------------------------


class _Info(NamedTuple):
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


class _Map:
    """A map opened from MAP: a kernel map descriptor (any type) or an emulated ArrayMap."""

    def __init__(self, *, fd: int | None = None, amap: ArrayMap | None = None) -> None:
        self.fd = fd
        self._amap = amap
        self._array: ArrayMap | None = amap

    def info(self) -> _Info:
        """BPF_OBJ_GET_INFO_BY_FD; raises OSError."""
        if self.fd is None:
            assert self._amap is not None
            i = self._amap.info()
            return _Info(i.type, i.id, i.key_size, i.value_size, i.max_entries, i.map_flags,
                         i.name, 0)  # fmt: skip
        raw = ffi.new("struct bpfmap_info *")
        btf_id = ffi.new("uint32_t *")
        rc = lib.bpfmap_map_fd_info(self.fd, raw, btf_id)
        if rc:
            raise OSError(-rc, strerror(-rc))
        name = os.fsdecode(ffi.string(raw.name, 16).split(b"\0", 1)[0])
        return _Info(raw.type, raw.id, raw.key_size, raw.value_size, raw.max_entries,
                     raw.map_flags, name, btf_id[0])  # fmt: skip

    def fdinfo(self, key: str, info: _Info) -> str | None:
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


class _Args:
    """argv after the verb; ``prev`` is the word before the next one (argv[-1])."""

    def __init__(self, words: list[str], pos: int) -> None:
        self.words = words
        self.pos = pos

    @property
    def argc(self) -> int:
        return len(self.words) - self.pos

    def peek(self, k: int = 0) -> str | None:
        i = self.pos + k
        return self.words[i] if i < len(self.words) else None

    @property
    def prev(self) -> str:
        return self.words[self.pos - 1] if self.pos else ""

    def next(self) -> str:
        word = self.words[self.pos]
        self.pos += 1
        return word


# -- the command -------------------------------------------------------------------


class Tool:
    """One ``bpfmap map ...`` run: bpftool's global state (JSON writer, help, errors)."""

    def __init__(self, stdout: Any, stderr: Any) -> None:
        self.out = _Out(stdout)
        self.err = stderr
        self.json: JsonWriter | None = None

    # bpftool's p_err(), p_info(), usage(), BAD_ARG(), REQ_ARGS()

    def _stderr(self, text: str) -> None:
        self.out.flush_lines()
        raw = getattr(self.err, "buffer", None)
        if raw is not None:
            raw.write(_encode(text))
        else:
            self.err.write(text)
        self.err.flush()

    def p_err(self, msg: str) -> None:
        if self.json is not None:
            self.json.start_object()
            self.json.name("error")
            self.json.string(msg)
            self.json.end_object()
        else:
            self._stderr(f"Error: {msg}\n")

    def print(self, text: str) -> None:
        self.out.write(text)

    def do_help(self, args: _Args | None = None) -> int:
        if self.json is not None:
            self.json.null()
            return 0
        self._stderr(HELP.format(bin=BIN, obj="map"))
        return 0

    def usage(self) -> NoReturn:
        self.do_help()
        raise _Exit(-1)

    def bad_arg(self, args: _Args) -> int:
        self.p_err(f"what is '{args.peek()}'?")
        return -1

    def req_args(self, args: _Args, cnt: int) -> bool:
        if args.argc < cnt:
            self.p_err(f"'{args.prev}' needs at least {cnt} arguments, {args.argc} found")
            return False
        return True

    def next_arg(self, args: _Args) -> str:
        """NEXT_ARG(): usage() when the words run out."""
        if args.argc < 1:
            self.usage()
        return args.next()

    # MAP := { id MAP_ID | pinned FILE | name MAP_NAME }

    @staticmethod
    def _by_id(map_id: int) -> int:
        """BPF_MAP_GET_FD_BY_ID: a descriptor, or -errno."""
        return int(lib.bpfmap_map_get_fd_by_id(map_id, 0))

    def _by_name(self, name: str) -> list[_Map] | None:
        maps: list[_Map] = []
        want = os.fsencode(name)[: BPF_OBJ_NAME_LEN]
        next_id = ffi.new("uint32_t *")
        cur = 0
        while True:
            rc = lib.bpfmap_map_get_next_id(cur, next_id)
            if rc:
                if rc != -errno.ENOENT:
                    self.p_err(strerror(-rc))
                    break
                return maps
            cur = int(next_id[0])
            fd = self._by_id(cur)
            if fd == -errno.ENOENT:
                continue  # gone since BPF_MAP_GET_NEXT_ID (bpftool would stop here)
            if fd < 0:
                self.p_err(f"can't get map by id ({cur}): {strerror(-fd)}")
                break
            m = _Map(fd=fd)
            try:
                info = m.info()
            except OSError as exc:
                self.p_err(f"can't get map info ({cur}): {strerror(_errno_of(exc))}")
                m.close()
                break
            if os.fsencode(info.name) != want:
                m.close()
                continue
            maps.append(m)
        for m in maps:
            m.close()
        return None

    def _pinned(self, path: str) -> _Map | None:
        on_bpffs = _is_bpffs(path)
        if on_bpffs is None or not on_bpffs:
            try:
                return _Map(amap=ArrayMap.open_pinned(path))
            except OSError as exc:
                self.p_err(f"bpf obj get ({path}): {strerror(_errno_of(exc))}")
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
            self.p_err(f"bpf obj get ({path}): {text}")
            return None
        kind = _fd_type(fd)
        if kind != "map":
            self.p_err(f"incorrect object type: {kind}")
            os.close(fd)
            return None
        return _Map(fd=fd)

    def map_parse_maps(self, args: _Args) -> list[_Map] | None:
        """map_parse_fds(): the maps MAP names (None after an error, reported)."""
        word = args.peek()
        if is_prefix(word, "id"):
            self.next_arg(args)
            text = self.next_arg(args)
            value, rest = strtoul(text, 0)
            if rest:
                self.p_err(f"can't parse {text} as ID")
                return None
            map_id = value & 0xFFFFFFFF
            fd = self._by_id(map_id)
            if fd < 0:
                self.p_err(f"get map by id ({map_id}): {strerror(-fd)}")
                return None
            return [_Map(fd=fd)]
        if is_prefix(word, "name"):
            self.next_arg(args)
            name = self.next_arg(args)
            if len(os.fsencode(name)) > BPF_OBJ_NAME_LEN - 1:
                self.p_err("can't parse name")
                return None
            return self._by_name(name)
        if is_prefix(word, "pinned"):
            self.next_arg(args)
            path = self.next_arg(args)
            m = self._pinned(path)
            return None if m is None else [m]
        shown = "(null)" if word is None else word
        self.p_err(f"expected 'id', 'name' or 'pinned', got: '{shown}'?")
        return None

    def map_parse_map(self, args: _Args) -> _Map | None:
        """map_parse_fd(): exactly one map."""
        maps = self.map_parse_maps(args)
        if maps is None or len(maps) != 1:
            if maps:
                self.p_err("several maps match this handle")
                for m in maps:
                    m.close()
            return None
        return maps[0]

    def map_parse_map_info(self, args: _Args) -> tuple[_Map, _Info] | None:
        """map_parse_fd_and_info()."""
        m = self.map_parse_map(args)
        if m is None:
            return None
        try:
            return m, m.info()
        except OSError as exc:
            self.p_err(f"can't get map info: {strerror(_errno_of(exc))}")
            m.close()
            return None

    def array_of(self, m: _Map, info: _Info) -> ArrayMap | None:
        """The map's ArrayMap, or an error: bpfmap's element commands handle arrays only."""
        if info.type != C.BPF_MAP_TYPE_ARRAY:
            kind = info.type_str or f"type {info.type}"
            self.p_err(f"{kind} map: bpfmap handles array maps only")
            return None
        try:
            return m.array()
        except OSError as exc:
            self.p_err(f"can't open map: {strerror(_errno_of(exc))}")
            return None

    # DATA and the element arguments

    def parse_bytes(self, args: _Args, what: str, n: int) -> bytes | None:
        base = 0
        if is_prefix(args.peek(), "hex"):
            base = 16
            args.next()
        out = bytearray()
        while len(out) < n and args.argc:
            word = args.next()
            value, rest = strtoul(word, base)
            if rest:
                self.p_err(f"error parsing byte: {word}")
                return None
            out.append(value & 0xFF)
        if len(out) != n:
            self.p_err(f"{what} expected {n} bytes got {len(out)}")
            return None
        return bytes(out)

    def parse_elem(
        self, args: _Args, info: _Info, *, want_key: bool, want_value: bool,
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
                self.p_err(f"did not find {'key' if want_key else 'value'}")
                return None
            if is_prefix(word, "key"):
                if not want_key:
                    self.p_err("duplicate key" if info.key_size else "unnecessary key")
                    return None
                args.next()
                key = self.parse_bytes(args, "key", info.key_size)
                if key is None:
                    return None
                want_key = False
            elif is_prefix(word, "value"):
                if not want_value:
                    self.p_err("duplicate value" if value_size else "unnecessary value")
                    return None
                args.next()
                value = self.parse_bytes(args, "value", value_size)
                if value is None:
                    return None
                want_value = False
            elif is_prefix(word, "any") or is_prefix(word, "noexist") or is_prefix(word, "exist"):
                if not want_flags:
                    self.p_err(f"flags specified multiple times: {word}")
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
                self.p_err(f"expected key or value, got: {word}")
                return None

    # output of maps and elements

    def show_header_json(self, info: _Info, jw: JsonWriter) -> None:
        jw.int_field("id", info.id)
        if info.type_str is not None:
            jw.string_field("type", info.type_str)
        else:
            jw.int_field("type", info.type)
        if info.name:
            jw.string_field("name", info.name)
        jw.name("flags")
        jw.printf(str(_s32(info.map_flags)))

    def show_header_plain(self, info: _Info) -> None:
        text = f"{info.id}: "
        text += f"{info.type_str}  " if info.type_str is not None else f"type {info.type}  "
        if info.name:
            text += f"name {info.name}  "
        text += f"flags 0x{info.map_flags:x}\n"
        self.print(text)

    def show_map(self, m: _Map, info: _Info) -> None:
        memlock = m.fdinfo("memlock", info)
        frozen_str = m.fdinfo("frozen", info)
        frozen = _atoll(frozen_str) if frozen_str is not None else 0
        owner_type = owner_jited = None
        if info.type == BPF_MAP_TYPE_PROG_ARRAY:
            owner_type = m.fdinfo("owner_prog_type", info)
            owner_jited = m.fdinfo("owner_jited", info)
        jw = self.json
        if jw is not None:
            jw.start_object()
            self.show_header_json(info, jw)
            jw.int_field("bytes_key", info.key_size)
            jw.int_field("bytes_value", info.value_size)
            jw.int_field("max_entries", info.max_entries)
            if memlock is not None:
                jw.int_field("bytes_memlock", _atoll(memlock))
            if owner_type is not None:
                prog_type = _atoll(owner_type) & 0xFFFFFFFF
                if prog_type < len(PROG_TYPES):
                    jw.string_field("owner_prog_type", PROG_TYPES[prog_type])
                else:
                    jw.int_field("owner_prog_type", prog_type)
            if owner_jited is not None:
                jw.bool_field("owner_jited", bool(_atoll(owner_jited)))
            jw.int_field("frozen", frozen)
            if info.btf_id:
                jw.int_field("btf_id", info.btf_id)
            jw.end_object()
            return
        self.show_header_plain(info)
        text = f"\tkey {info.key_size}B  value {info.value_size}B  max_entries {info.max_entries}"
        if memlock is not None:
            text += f"  memlock {memlock}B"
        if owner_type is not None or owner_jited is not None:
            text += "\n\t"
        if owner_type is not None:
            prog_type = _atoll(owner_type) & 0xFFFFFFFF
            if prog_type < len(PROG_TYPES):
                text += f"owner_prog_type {PROG_TYPES[prog_type]}  "
            else:
                text += f"owner_prog_type {_s32(prog_type)}  "
        if owner_jited is not None:
            text += f"owner{'' if _atoll(owner_jited) else ' not'} jited"
        if info.btf_id or frozen:
            text += "\n\t"
        if info.btf_id:
            text += f"btf_id {info.btf_id}"
        if frozen:
            text += f"{'  ' if info.btf_id else ''}frozen"
        self.print(text + "\n")

    def print_entry(self, info: _Info, key: bytes, value: bytes) -> None:
        """print_entry_json() / print_entry_plain() for a map without per-CPU values."""
        jw = self.json
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
        self.print(text + "\n")

    def print_entry_error(self, info: _Info, key: bytes, err: int) -> None:
        jw = self.json
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
        self.print(text)

    # the verbs

    def do_show(self, args: _Args) -> int:
        if args.argc == 2:
            return self.show_subset(args)
        if args.argc:
            return self.bad_arg(args)
        jw = self.json
        if jw is not None:
            jw.start_array()
        last_errno = errno.ENOENT
        next_id = ffi.new("uint32_t *")
        cur = 0
        while True:
            rc = lib.bpfmap_map_get_next_id(cur, next_id)
            if rc:
                last_errno = -rc
                if last_errno != errno.ENOENT:
                    hint = " -- kernel too old?" if last_errno == errno.EINVAL else ""
                    self.p_err(f"can't get next map: {strerror(last_errno)}{hint}")
                break
            cur = int(next_id[0])
            fd = self._by_id(cur)
            if fd < 0:
                last_errno = -fd
                if last_errno == errno.ENOENT:
                    continue
                self.p_err(f"can't get map by id ({cur}): {strerror(last_errno)}")
                break
            m = _Map(fd=fd)
            try:
                try:
                    info = m.info()
                except OSError as exc:
                    last_errno = _errno_of(exc)
                    self.p_err(f"can't get map info: {strerror(last_errno)}")
                    break
                self.show_map(m, info)
            finally:
                m.close()
        if jw is not None:
            jw.end_array()
        return 0 if last_errno == errno.ENOENT else -1

    def show_subset(self, args: _Args) -> int:
        maps = self.map_parse_maps(args)
        if not maps:
            return -1
        err = -1
        jw = self.json
        many = len(maps) > 1
        if jw is not None and many:
            jw.start_array()
        try:
            for m in maps:
                try:
                    info = m.info()
                except OSError as exc:
                    err = -_errno_of(exc)
                    self.p_err(f"can't get map info: {strerror(-err)}")
                    break
                err = 0
                self.show_map(m, info)
        finally:
            for m in maps:
                m.close()
        if jw is not None and many:
            jw.end_array()
        return err

    def map_dump(self, m: _Map, info: _Info, show_header: bool) -> int:
        amap = self.array_of(m, info)
        if amap is None:
            return -1
        jw = self.json
        if jw is not None:
            if show_header:
                jw.start_object()
                self.show_header_json(info, jw)
                jw.name("elements")
            jw.start_array()
        elif show_header:
            self.show_header_plain(info)
        key_bytes = info.key_size
        count = 0
        err = 0
        prev: int | None = None
        while True:
            try:
                key = amap.get_next_key(prev)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    err = -_errno_of(exc)
                break
            raw_key = key.to_bytes(key_bytes, sys.byteorder)
            try:
                value = amap.lookup(key)
            except OSError as exc:
                self.print_entry_error(info, raw_key, _errno_of(exc))
            else:
                self.print_entry(info, raw_key, value)
                count += 1
            prev = key
        if jw is not None:
            jw.end_array()
            if show_header:
                jw.end_object()
        else:
            self.print(f"Found {count} element{'s' if count != 1 else ''}\n")
        return err

    def do_dump(self, args: _Args) -> int:
        if args.argc != 2:
            self.usage()
        maps = self.map_parse_maps(args)
        if not maps:
            return -1
        err = -1
        jw = self.json
        many = len(maps) > 1
        if jw is not None and many:
            jw.start_array()
        try:
            for i, m in enumerate(maps):
                try:
                    info = m.info()
                except OSError as exc:
                    self.p_err(f"can't get map info: {strerror(_errno_of(exc))}")
                    break
                err = self.map_dump(m, info, many)
                if jw is None and i != len(maps) - 1:
                    self.print("\n")
                if err:
                    break
        finally:
            for m in maps:
                m.close()
        if jw is not None and many:
            jw.end_array()
        return err

    def _elem_command(
        self, args: _Args, run: Callable[[_Map, _Info, _Args], int]
    ) -> int:
        if args.argc < 2:
            self.usage()
        opened = self.map_parse_map_info(args)
        if opened is None:
            return -1
        m, info = opened
        try:
            return run(m, info, args)
        finally:
            m.close()

    @staticmethod
    def _key_int(key: bytes) -> int:
        return int.from_bytes(key, sys.byteorder)

    def do_update(self, args: _Args) -> int:
        def run(m: _Map, info: _Info, args: _Args) -> int:
            parsed = self.parse_elem(args, info, want_key=True, want_value=True, want_flags=True)
            if parsed is None:
                return -1
            key, value, flags = parsed
            assert key is not None and value is not None
            amap = self.array_of(m, info)
            if amap is None:
                return -1
            try:
                amap.update(self._key_int(key), value, flags)
            except OSError as exc:
                err = _errno_of(exc)
                self.p_err(f"update failed: {strerror(err)}")
                return -err
            if self.json is not None:
                self.json.null()
            return 0

        return self._elem_command(args, run)

    def do_lookup(self, args: _Args) -> int:
        def run(m: _Map, info: _Info, args: _Args) -> int:
            parsed = self.parse_elem(args, info, want_key=True, want_value=False, want_flags=False)
            if parsed is None:
                return -1
            key = parsed[0]
            assert key is not None
            amap = self.array_of(m, info)
            if amap is None:
                return -1
            try:
                value = amap.lookup(self._key_int(key))
            except OSError as exc:
                err = _errno_of(exc)
                if err == errno.ENOENT:
                    if self.json is not None:
                        self.json.null()
                    else:
                        self.print(f"key:\n{fprint_hex(key)}\n\nNot found\n")
                else:
                    self.p_err(f"lookup failed: {strerror(err)}")
                return -err
            self.print_entry(info, key, value)
            return 0

        return self._elem_command(args, run)

    def do_getnext(self, args: _Args) -> int:
        def run(m: _Map, info: _Info, args: _Args) -> int:
            key: bytes | None = None
            if args.argc:
                parsed = self.parse_elem(
                    args, info, want_key=True, want_value=False, want_flags=False
                )
                if parsed is None:
                    return -1
                key = parsed[0]
            amap = self.array_of(m, info)
            if amap is None:
                return -1
            try:
                nxt = amap.get_next_key(None if key is None else self._key_int(key))
            except OSError as exc:
                err = _errno_of(exc)
                self.p_err(f"can't get next key: {strerror(err)}")
                return -err
            next_key = nxt.to_bytes(info.key_size, sys.byteorder)
            jw = self.json
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
                self.print(f"{text}next key:\n{fprint_hex(next_key)}\n")
            return 0

        return self._elem_command(args, run)

    def do_delete(self, args: _Args) -> int:
        def run(m: _Map, info: _Info, args: _Args) -> int:
            parsed = self.parse_elem(args, info, want_key=True, want_value=False, want_flags=False)
            if parsed is None:
                return -1
            key = parsed[0]
            assert key is not None
            amap = self.array_of(m, info)
            if amap is None:
                return -1
            try:
                amap.delete(self._key_int(key))
            except OSError as exc:
                err = _errno_of(exc)
                self.p_err(f"delete failed: {strerror(err)}")
                return -err
            if self.json is not None:
                self.json.null()
            return 0

        return self._elem_command(args, run)

    def do_pop(self, args: _Args) -> int:
        def run(m: _Map, info: _Info, args: _Args) -> int:
            amap = self.array_of(m, info)
            if amap is None:
                return -1
            key = bytes(info.key_size)
            try:
                value = amap.lookup_and_delete(self._key_int(key))
            except OSError as exc:
                err = _errno_of(exc)
                if err == errno.ENOENT:
                    if self.json is not None:
                        self.json.null()
                    else:
                        self.print("Error: empty map\n")
                else:
                    self.p_err(f"pop failed: {strerror(err)}")
                return -err
            self.print_entry(info, key, value)
            return 0

        return self._elem_command(args, run)

    def do_event_pipe(self, args: _Args) -> int:
        opened = self.map_parse_map_info(args)
        if opened is None:
            return -1
        m, info = opened
        m.close()
        if info.type != BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            self.p_err("map is not a perf event array")
        else:
            self.p_err("event_pipe is not supported by bpfmap")
        return -1

    def pin_map(self, m: _Map, path: str) -> int:
        """do_pin_fd(), without mounting anything: kernel maps pin on bpffs only."""
        try:
            if m.fd is not None:
                rc = lib.bpfmap_obj_pin(m.fd, os.fsencode(path))
                if rc:
                    raise OSError(-rc, strerror(-rc))
            else:
                m.array().pin(path)
        except OSError as exc:
            err = _errno_of(exc)
            self.p_err(f"can't pin the object ({path}): {strerror(err)}")
            return -err
        return 0

    def do_pin(self, args: _Args) -> int:
        if not self.req_args(args, 3):
            return -errno.EINVAL
        m = self.map_parse_map(args)
        if m is None:
            return -1
        try:
            err = self.pin_map(m, self.next_arg(args))
        finally:
            m.close()
        if not err and self.json is not None:
            self.json.null()
        return err

    def _parse_u32(self, args: _Args, current: int, what: str) -> int | None:
        self.next_arg(args)
        if current:
            self.p_err(f"{what} already specified")
            return None
        word = self.next_arg(args)
        value, rest = strtoul(word, 0)
        if rest:
            self.p_err(f"can't parse {word} as {what}")
            return None
        return value & 0xFFFFFFFF

    def do_create(self, args: _Args) -> int:
        if not self.req_args(args, 7):
            return -1
        path = args.next()
        map_type = 0
        sizes = {"key size": 0, "value size": 0, "max entries": 0, "flags": 0}
        name: str | None = None
        while args.argc:
            if not self.req_args(args, 2):
                return -1
            word = args.peek()
            if is_prefix(word, "type"):
                self.next_arg(args)
                if map_type:
                    self.p_err("map type already specified")
                    return -1
                type_name = self.next_arg(args)
                if type_name not in MAP_TYPES:
                    self.p_err(f"unrecognized map type: {type_name}")
                    return -1
                map_type = MAP_TYPES.index(type_name)
                continue
            if is_prefix(word, "name"):
                self.next_arg(args)
                name = self.next_arg(args)
                continue
            for what, kw in (("key size", "key"), ("value size", "value"),
                             ("max entries", "entries"), ("flags", "flags")):  # fmt: skip
                if is_prefix(word, kw):
                    value = self._parse_u32(args, sizes[what], what)
                    if value is None:
                        return -1
                    sizes[what] = value
                    break
            else:
                if is_prefix(word, "dev") or is_prefix(word, "inner_map"):
                    self.p_err(f"{word}: bpfmap creates plain array maps only")
                else:
                    self.p_err(f"unknown arg {word}")
                return -1
        if name is None:
            self.p_err("map name not specified")
            return -1
        if map_type == 0:  # BPF_MAP_TYPE_UNSPEC: the kernel's EINVAL
            self.p_err(f"map create failed: {strerror(errno.EINVAL)}")
            return -1
        if map_type != C.BPF_MAP_TYPE_ARRAY:
            self.p_err(f"map type {MAP_TYPES[map_type]}: bpfmap creates array maps only")
            return -1
        on_bpffs = _is_bpffs(path)
        backend = "kernel" if on_bpffs else "emulated"
        try:
            amap = ArrayMap(
                sizes["value size"], sizes["max entries"], flags=sizes["flags"],
                name=os.fsencode(name)[: BPF_OBJ_NAME_LEN - 1],  # libbpf truncates
                key_size=sizes["key size"], backend=backend,
            )  # fmt: skip
        except OSError as exc:
            self.p_err(f"map create failed: {strerror(_errno_of(exc))}")
            return -1
        try:
            if on_bpffs is None:  # no directory to pin in
                self.p_err(f"can't pin the object ({path}): {strerror(errno.ENOENT)}")
                return -1
            err = self.pin_map(_Map(amap=amap), path)
        finally:
            amap.close()
        if err:
            return err
        if self.json is not None:
            self.json.null()
        return 0

    def do_freeze(self, args: _Args) -> int:
        if not self.req_args(args, 2):
            return -1
        m = self.map_parse_map(args)
        if m is None:
            return -1
        try:
            if args.argc:
                return self.bad_arg(args)
            try:
                info = m.info()
            except OSError as exc:
                self.p_err(f"failed to freeze map: {strerror(_errno_of(exc))}")
                return -1
            amap = self.array_of(m, info)
            if amap is None:
                return -1
            try:
                amap.freeze()
            except OSError as exc:
                err = _errno_of(exc)
                self.p_err(f"failed to freeze map: {strerror(err)}")
                return -err
        finally:
            m.close()
        if self.json is not None:
            self.json.null()
        return 0

    # options and verbs

    def verbs(self) -> list[tuple[str, Callable[[_Args], int]]]:
        """bpftool's table, in its order: a verb may be abbreviated to any prefix."""
        return [
            ("show", self.do_show),
            ("list", self.do_show),
            ("help", self.do_help),
            ("dump", self.do_dump),
            ("update", self.do_update),
            ("lookup", self.do_lookup),
            ("getnext", self.do_getnext),
            ("delete", self.do_delete),
            ("pin", self.do_pin),
            ("event_pipe", self.do_event_pipe),
            ("create", self.do_create),
            ("peek", self.do_lookup),
            ("push", self.do_update),
            ("enqueue", self.do_update),
            ("pop", self.do_pop),
            ("dequeue", self.do_pop),
            ("freeze", self.do_freeze),
        ]

    def parse_options(self, argv: list[str]) -> list[str]:
        """getopt_long() as bpftool calls it: options anywhere (until ``--``), in order."""
        words: list[str] = []
        long_opts = {"json": "j", "pretty": "p", "help": "h", "debug": "d", "nomount": "n"}
        pretty = False
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                words.extend(argv[i:])
                break
            if not arg.startswith("-") or arg == "-":
                words.append(arg)
                continue
            if arg.startswith("--"):
                name, eq, _ = arg[2:].partition("=")
                matches = [k for k in long_opts if k.startswith(name)]
                if name in long_opts:
                    matches = [name]
                opts = long_opts[matches[0]] if len(matches) == 1 and not eq else "?"
            else:
                opts = arg[1:]
            for opt in opts:
                if opt == "h":
                    self.do_help()
                    raise _Exit(0)
                if opt in ("j", "p"):
                    pretty = pretty or opt == "p"
                    if self.json is None:
                        self.json = JsonWriter(self.out, pretty)
                    self.json.pretty = pretty
                elif opt not in ("d", "n"):
                    # -d: no libbpf to debug; -n: bpfmap never mounts bpffs anyway.
                    self.p_err(f"unrecognized option '{arg}'")
                    if self.json is not None:
                        raise _Exit(-1)
                    self.usage()
        return words

    def run(self, argv: list[str]) -> int:
        words = self.parse_options(argv)
        if not words:
            return self.do_help()  # bpftool runs 'show' here; bpfmap explains itself
        verb = words[0]
        args = _Args(words, 1)
        for name, fn in self.verbs():
            if is_prefix(verb, name):
                return fn(args)
        self.do_help()
        return -1

    def finish(self) -> None:
        if self.json is not None:
            self.json.destroy()
            self.json = None
        self.out.flush()


def main(argv: list[str]) -> int:
    """``bpfmap map ARGS``: the exit status is bpftool's (its return value & 0xff)."""
    tool = Tool(sys.stdout, sys.stderr)
    try:
        try:
            code = tool.run(list(argv))
        except _Exit as done:
            code = done.code
        except BrokenPipeError:
            raise
        except OSError as exc:  # never a traceback: a failure no verb reported itself
            code = -_errno_of(exc)
            tool.p_err(strerror(-code))
        except KeyboardInterrupt:
            code = 130
        tool.finish()
    except BrokenPipeError:
        # The reader went away (`bpfmap map dump ... | head`): stop quietly, as
        # bpftool does when SIGPIPE kills it.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        return 141
    return code & 0xFF
