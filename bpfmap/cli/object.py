"""``bpfmap object show FILE``: what a clang-built ``.bpf.o`` holds, without loading it.

libbpf opens the object on the emulated backend (no privileges, no ``bpf()``): its data
sections (size, flags, whether load freezes them), their variables (type, offset, size,
initial value, from the object's BTF), its maps as libbpf will create them, and its programs.
The output follows bpftool's habits: plain text with two spaces between fields and a tab
before continuation lines, ``-j`` compact JSON and ``-p`` the same JSON indented, from the
same writer as ``bpfmap map``; an error is ``Error: ...`` on stderr (``{"error": ...}`` on
stdout in JSON mode, as bpftool does) and a non-zero exit status.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from typing import Any, Union

from .. import _constants, _libbpf
from .._btf import BtfType
from .._object import BpfObject
from .common import Args, Context, is_prefix, run_command
from .json_writer import JsonWriter

BIN = "bpfmap"

HELP = """\
Usage: {bin} object {{ show | list }} FILE
       {bin} object help

       FILE := a BPF object file (clang -O2 -g -target bpf), opened without loading it
       OPTIONS := {{ {{-j|--json}} [{{-p|--pretty}}] }}
"""

#: A value as JSON sees it.
Json = Union[None, bool, int, float, str, list[Any], dict[str, Any]]

# libbpf freezes these after filling them (bpf_object__populate_internal_map).
_FROZEN_AFTER_LOAD = (".rodata", ".kconfig")
# The map flags by name, lower case without BPF_F_ (bpftool's spelling in its docs).
FLAG_NAMES = tuple(
    (getattr(_constants, name), name[len("BPF_F_"):].lower())
    for name in dir(_constants)
    if name.startswith("BPF_F_") and name not in ("BPF_F_LOCK",)
)
# Plain output shows this many items of a long array, then how many more there are.
_SHOWN_ITEMS = 16


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in sorted(FLAG_NAMES) if flags & bit]


# -- opening ----------------------------------------------------------------


def open_object(path: str) -> BpfObject:
    """The object, opened on the emulated backend (BpfObject.open refuses what is not a
    regular file, lets libbpf parse the bytes in a child first, and turns libbpf's own error
    codes into an errno and words); OSError/ValueError."""
    return BpfObject.open(path)


# -- values -----------------------------------------------------------------


def _is_char(t: BtfType | None) -> bool:
    return t is not None and t.kind == "int" and t.size == 1 and "char" in t.name


def btf_value(t: BtfType, data: bytes) -> Json:
    """A variable's bytes as JSON, as bpftool's BTF dumper shows them: numbers, enumerator
    names, char arrays as strings, arrays as lists, structs and unions as objects."""
    if len(data) < t.size:
        return None  # the DATASEC gives the variable fewer bytes than its type: no value
    if t.kind in ("int", "pointer", "enum"):
        number = int.from_bytes(data[: t.size], sys.byteorder, signed=t.signed)
        if t.kind == "enum":
            names = [k for k, v in t.enumerators.items() if v == number]
            return names[0] if names else number
        if t.name.endswith(("_Bool", "bool")) and t.size == 1:
            return bool(number)
        return number
    if t.kind == "float":
        return float(struct.unpack("=f" if t.size == 4 else "=d", data[: t.size])[0])
    if t.kind == "array":
        if len(t.shape) == 1 and _is_char(t.element):
            text = data[: t.size].split(b"\0", 1)[0]
            if all(32 <= b < 127 for b in text):
                return text.decode("ascii")
        return ctype_value(t.ctype.from_buffer_copy(data[: t.size]))
    return ctype_value(t.ctype.from_buffer_copy(data[: t.size]))


def ctype_value(value: Any) -> Json:
    """A ctypes value (what bpfmap's BTF layout made of a struct, union or array) as JSON:
    padding left out, anonymous members' fields in their parent, as C reads them."""
    if isinstance(value, ctypes.Array):
        return [ctype_value(item) for item in value]
    if isinstance(value, (ctypes.Structure, ctypes.Union)):
        out: dict[str, Any] = {}
        anonymous = getattr(type(value), "_anonymous_", ())
        for field in type(value)._fields_:
            name = field[0]
            if name.startswith("_pad") or name == "_raw":
                continue
            item = ctype_value(getattr(value, name))
            if name in anonymous and isinstance(item, dict):
                out.update(item)
            else:
                out[name] = item
        return out
    if isinstance(value, ctypes._SimpleCData):
        return ctype_value(value.value)
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)


def plain_value(value: Json, top: bool = True) -> str:
    """A JSON value for the plain output: compact, long arrays cut short."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "-"
    if isinstance(value, list):
        shown = [plain_value(v, False) for v in value[:_SHOWN_ITEMS]]
        if len(value) > _SHOWN_ITEMS:
            shown.append(f"... {len(value) - _SHOWN_ITEMS} more")
        return "[" + ", ".join(shown) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {plain_value(v, False)}" for k, v in value.items()) + "}"
    return repr(value)


# -- what the object holds --------------------------------------------------


def describe(obj: BpfObject) -> dict[str, Any]:
    """Everything ``object show`` prints, as JSON."""
    sections = []
    for sec in obj.sections.values():
        raw = sec.raw()
        kconfig = sec.name == ".kconfig"  # libbpf fills it at load: no initial value
        sections.append({
            "name": sec.name,
            "size": sec.size,
            "flags": sec.flags,
            "flag_names": flag_names(sec.flags),
            "frozen_after_load": sec.name.startswith(_FROZEN_AFTER_LOAD),
            "variables": [{
                "name": v.name,
                "type": v.type.name,
                "offset": v.offset,
                "size": v.size,
                "value": None if kconfig else btf_value(v.type, raw[v.offset:v.offset + v.size]),
            } for v in sec.variables.values()],
        })
    return {
        "name": obj.name,
        "file": obj.path,
        "sections": sections,
        "maps": _maps(obj),
        "programs": [{"name": p.name, "type": p.type, "section": p.section}
                     for p in obj.programs.values()],
    }


def _maps(obj: BpfObject) -> list[dict[str, Any]]:
    """The maps libbpf will create, explicit (SEC(".maps")) and internal (data sections)."""
    libbpf, ffi = _libbpf.lib(), _libbpf.ffi
    out = []
    m = ffi.NULL
    while (m := libbpf.bpf_object__next_map(obj._obj, m)) != ffi.NULL:
        kind = libbpf.bpf_map__type(m)
        info: dict[str, Any] = {
            "name": _libbpf.string(libbpf.bpf_map__name(m)),
            "type": _libbpf.string(libbpf.libbpf_bpf_map_type_str(kind)) or str(kind),
            "bytes_key": int(libbpf.bpf_map__key_size(m)),
            "bytes_value": int(libbpf.bpf_map__value_size(m)),
            "max_entries": int(libbpf.bpf_map__max_entries(m)),
            "flags": int(libbpf.bpf_map__map_flags(m)),
        }
        info["flag_names"] = flag_names(info["flags"])
        if libbpf.bpf_map__is_internal(m):
            sections = [n for n, h in obj._section_maps.items() if h == m]
            if sections:  # none for a string-literal section (.rodata.str1.1)
                info["section"] = sections[0]
        out.append(info)
    return out


# -- output -----------------------------------------------------------------


def json_value(jw: JsonWriter, value: Json) -> None:
    if isinstance(value, dict):
        jw.start_object()
        for k, v in value.items():
            jw.name(k)
            json_value(jw, v)
        jw.end_object()
    elif isinstance(value, list):
        jw.start_array()
        for v in value:
            json_value(jw, v)
        jw.end_array()
    elif isinstance(value, str):
        jw.string(value)
    elif isinstance(value, bool):
        jw.printf("true" if value else "false")
    elif value is None:
        jw.null()
    else:
        jw.printf(repr(value))


def show_plain(ctx: Context, d: dict[str, Any]) -> None:
    lines = [f"object {d['name']}  file {d['file']}"]
    for sec in d["sections"]:
        text = f"section {sec['name']}  size {sec['size']}B  flags 0x{sec['flags']:x}"
        for name in sec["flag_names"]:
            text += f"  {name}"
        if sec["frozen_after_load"]:
            text += "  frozen_after_load"
        lines.append(text)
        for v in sec["variables"]:
            value = "set at load" if sec["name"] == ".kconfig" else plain_value(v["value"])
            lines.append(f"\t{v['name']}  {v['type']}  offset {v['offset']}  size {v['size']}"
                         f"  value {value}")
    for m in d["maps"]:
        text = (f"map {m['name']}  {m['type']}  key {m['bytes_key']}B  value {m['bytes_value']}B"
                f"  max_entries {m['max_entries']}  flags 0x{m['flags']:x}")
        if "section" in m:
            text += f"  section {m['section']}"
        lines.append(text)
    for p in d["programs"]:
        lines.append(f"program {p['name']}  {p['type']}  section {p['section']}")
    ctx.print("\n".join(lines) + "\n")


def describe_error(path: str, exc: Exception) -> str:
    """One line for what went wrong with an object, naming the file once."""
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    text = text.split("\n", 1)[0]
    if text.startswith(f"open {path}"):
        text = text[len("open "):]
    if not isinstance(exc, (OSError, ValueError)):
        return f"{path}: cannot read the object ({type(exc).__name__}: {text})"
    return text if text.startswith(path) else f"{path}: {text}"


def do_show(ctx: Context, args: Args) -> int:
    if args.argc != 1:
        ctx.p_err("'show' takes one FILE" if args.argc == 0 else
                  f"what is '{args.peek(1)}'? ('show' takes one FILE)")
        return -1
    path = args.next()
    try:
        obj = open_object(path)
    except Exception as exc:  # missing, not ELF, no BTF, corrupted: one line
        ctx.p_err(describe_error(path, exc))
        return -1
    try:
        with obj:
            d = describe(obj)
    except Exception as exc:
        ctx.p_err(describe_error(path, exc))
        return -1
    if ctx.json is not None:
        json_value(ctx.json, d)
    else:
        show_plain(ctx, d)
    return 0


def _help(ctx: Context, args: Args) -> int:
    return ctx.do_help(args)


VERBS = [("show", do_show), ("list", do_show), ("help", _help)]


def main(argv: list[str]) -> int:
    """``bpfmap object ARGS``."""
    ctx = Context(sys.stdout, sys.stderr, HELP.format(bin=BIN))

    def body() -> int:
        words = ctx.parse_options(list(argv))
        if not words:
            ctx.do_help()
            return -1  # a script that lost its verb must not succeed
        for name, fn in VERBS:
            if is_prefix(words[0], name):
                return fn(ctx, Args(words, 1))
        ctx.p_err(f"unknown verb '{words[0]}' (see '{BIN} object help')")
        return -1

    return run_command(ctx, body)
