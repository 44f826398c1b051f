"""``bpfmap gen skeleton``: a typed Python module for one BPF object, as ``bpftool gen
skeleton`` writes a C header and libbpf-cargo a Rust module.

The module is plain source that imports only bpfmap's public API: a class per data section
whose properties are the section's variables, annotated with what the runtime returns
(``int``, ``float``, a NumPy array, or a ctypes class generated from the BTF with the same
layout as bpfmap's), typed program and map holders, and a top-level class that opens the
object (on either backend) and delegates to :class:`bpfmap.BpfObject`. At open it checks that
the object still has the sections, variables, programs and maps it was generated from, so a
stale skeleton is an error, never a wrong type. The generated source passes ``mypy --strict``
and ``ruff``; a misspelt variable or a value of the wrong type is a mypy error in the
caller's code.
"""

from __future__ import annotations

import builtins
import ctypes
import keyword
import os
import re
from typing import Any

from . import _libbpf
from ._btf import BtfType
from ._object import BpfObject
from ._skeleton_text import HELPERS as _HELPERS
from ._skeleton_text import OBJECT as _OBJECT
from ._skeleton_text import SECTION as _SECTION
from ._version import __version__

# Names the generated module itself uses at module level (or Python's builtins, which its
# code calls): a C type of one of these names gets a suffix.
_MODULE_NAMES = frozenset({
    "annotations", "builtins", "ctypes", "enum", "os", "numpy", "TYPE_CHECKING", "Literal",
    "ArrayMap", "BpfObject", "Program", "Section", "OBJECT_FILE", "_LAYOUT", "_PROGRAMS",
    "_check", "_map", "_array_map", "_fd", "final",
}) | frozenset(dir(builtins))
# The attributes of a generated section class besides its variables.
_SECTION_OWN = frozenset({"map", "access", "readonly", "raw", "section", "name", "size"})
# The attributes of the generated object class besides its sections.
_OBJECT_OWN = frozenset({"obj", "programs", "maps", "open", "load", "close", "loaded",
                         "closed", "backend", "path"})
_SIMPLE = {"b": "int", "h": "int", "i": "int", "l": "int", "q": "int",
           "B": "int", "H": "int", "I": "int", "L": "int", "Q": "int",
           "f": "float", "d": "float", "?": "bool"}
# Names a section class's annotations use: a variable of that name gets a suffix.
_ANNOTATION_NAMES = frozenset({"numpy", "Literal", "Any", "ArrayMap", "Section", "builtins",
                               "ctypes"})
_BPF_MAP_TYPE_ARRAY = 2
_LINE = 100


class _Names:
    """Unique Python identifiers for C names: keywords and taken names gain a ``_``."""

    def __init__(self, taken: frozenset[str] | set[str] = frozenset()) -> None:
        self.taken = set(taken)

    def add(self, cname: str, fallback: str = "anon") -> str:
        name = re.sub(r"\W", "_", cname, flags=re.ASCII) or fallback
        if name[0].isdigit():
            name = "_" + name
        if name.startswith("__"):
            name = "v" + name  # a class body would mangle it
        while keyword.iskeyword(name) or name in self.taken:
            name += "_"
        self.taken.add(name)
        return name


def _camel(name: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+", name)
    out = "".join(w[:1].upper() + w[1:] for w in words if w)
    return out if out and not out[0].isdigit() else "Bpf" + out


def _ctype_name(ctype: Any) -> str:
    """The ctypes spelling of a simple type: ctypes.c_uint32, ctypes.c_double, ..."""
    code = ctype._type_
    if code in "fd":
        return "ctypes.c_float" if code == "f" else "ctypes.c_double"
    if code == "?":
        return "ctypes.c_bool"
    bits = ctypes.sizeof(ctype) * 8
    return f"ctypes.c_{'u' if code.isupper() else ''}int{bits}"


def _numpy_scalar(t: BtfType | None) -> str:
    """The NumPy scalar type of an array's elements, as the runtime's view has them."""
    if t is None:
        return "Any"
    if t.kind == "float":
        return f"numpy.float{t.size * 8}"
    if t.scalar and t.size in (1, 2, 4, 8):
        return f"numpy.{'' if t.signed else 'u'}int{t.size * 8}"
    if t.kind in ("struct", "union"):
        return "numpy.void"
    return "Any"


class _Writer:
    """Builds the module's source from one opened object."""

    def __init__(self, obj: BpfObject, cls: str, object_file: str, relative: bool) -> None:
        self.obj = obj
        self.cls = cls
        self.object_file = object_file
        self.relative = relative
        self.names = _Names(_MODULE_NAMES | {cls} | _identifiers(obj))
        self.props: set[str] = set()  # the properties of the section class being written
        self.types: list[str] = []  # class definitions, inner ones first
        self.ctypes_done: dict[Any, str] = {}
        self.enums_done: dict[tuple[str, tuple[tuple[str, int], ...]], str] = {}
        self.aliases: dict[tuple[str, tuple[tuple[str, int], ...]], str] = {}
        self.uses: set[str] = set()

    # -- C types as Python classes -----------------------------------------

    def record(self, ctype: Any) -> str:
        """The generated ctypes class for one of bpfmap's Structure/Union classes."""
        done = self.ctypes_done.get(ctype)
        if done is not None:
            return done
        fields = [(f[0], f[1]) for f in ctype._fields_]
        specs = [(fname, self.field_ctype(ftype)) for fname, ftype in fields]
        annotations: list[str] = []
        anonymous = set(getattr(ctype, "_anonymous_", ()))
        for fname, ftype in fields:
            self.annotate(fname, ftype, anonymous, annotations)
        name = self.names.add(_camel(ctype.__name__))
        self.ctypes_done[ctype] = name
        self.uses.add("ctypes")
        base = "ctypes.Structure" if issubclass(ctype, ctypes.Structure) else "ctypes.Union"
        lines = [f"class {name}({base}):", f'    """{_c_name(ctype)}: {ctypes.sizeof(ctype)} '
                 'bytes, laid out as in the object\'s BTF."""', ""]
        lines += annotations
        if annotations:
            lines.append("")
        lines += ['    _layout_ = "ms"  # _pack_ means this layout (Python 3.14 asks for it)',
                  "    _pack_ = 1"]
        if anonymous:
            lines.append(f"    _anonymous_ = ({', '.join(map(_str, sorted(anonymous)))},)")
        lines.append("    _fields_ = [")
        lines += [f'        ("{fname}", {spec}),' for fname, spec in specs]
        lines.append("    ]")
        self.types.append("\n".join(lines))
        return name

    def field_ctype(self, ftype: Any) -> str:
        if issubclass(ftype, ctypes.Array):
            return f"{self.field_ctype(ftype._type_)} * {ftype._length_}"
        if issubclass(ftype, (ctypes.Structure, ctypes.Union)):
            return self.record(ftype)
        return _ctype_name(ftype)

    def field_annotation(self, ftype: Any) -> str:
        if issubclass(ftype, ctypes.Array):
            inner = ftype._type_
            if issubclass(inner, ctypes.Array):
                return f"ctypes.Array[ctypes.Array[{self._array_item(inner._type_)}]]"
            return f"ctypes.Array[{self._array_item(inner)}]"
        if issubclass(ftype, (ctypes.Structure, ctypes.Union)):
            return self.record(ftype)
        return _SIMPLE.get(ftype._type_, "int")

    def _array_item(self, ftype: Any) -> str:
        if issubclass(ftype, ctypes.Array):
            return "Any"
        if issubclass(ftype, (ctypes.Structure, ctypes.Union)):
            return self.record(ftype)
        return _ctype_name(ftype)

    def annotate(self, fname: str, ftype: Any, anonymous: set[str], out: list[str]) -> None:
        """Class-level annotations for a field (an anonymous member's fields in its place):
        ctypes makes the attributes, the annotations tell mypy."""
        if fname in anonymous:
            for sub in ftype._fields_:
                self.annotate(sub[0], sub[1], set(getattr(ftype, "_anonymous_", ())), out)
            return
        if fname.startswith("_pad") or fname == "_raw" or not fname.isidentifier() \
                or keyword.iskeyword(fname):
            return  # padding, or a name Python cannot spell (getattr reaches it)
        out.append(f"    {fname}: {self.field_annotation(ftype)}")

    def enum(self, t: BtfType) -> str | None:
        """An IntEnum for a named C enum (its values, to pass where the enum is taken)."""
        cname = t.name.split()[-1]
        if cname == "enum" or not t.enumerators:
            return None
        key = (cname, tuple(t.enumerators.items()))
        done = self.enums_done.get(key)
        if done is not None:
            return done
        name = self.names.add(_camel(cname))
        self.enums_done[key] = name
        self.uses.add("enum")
        members = _Names({"name", "value", "mro"})
        lines = [f"class {name}(enum.IntEnum):", f'    """enum {cname}."""', ""]
        # Enum reserves _sunder_ names: a C enumerator with a leading underscore gains a v.
        lines += [f"    {members.add('v' + k if k.startswith('_') else k, 'member')} = {v}"
                  for k, v in t.enumerators.items()]
        self.types.append("\n".join(lines))
        return name

    # -- variables ----------------------------------------------------------

    def variable(self, attr: str, cname: str, t: BtfType, where: str,
                 writable: bool) -> list[str]:
        """A property for one variable: the getter's type is what the runtime returns."""
        key = _str(cname)
        doc = f'        """{_doc(t.name)} {_doc(cname)} ({where})."""'
        setter_type = None
        if t.kind == "array":
            self.uses.add("numpy")
            getter = f"numpy.typing.NDArray[{_numpy_scalar(t.element)}]"
            if "Any" in getter:
                self.uses.add("Any")
            read = [f"        value: {getter} = self._section[{key}]", "        return value"]
            setter_type, store = "numpy.typing.ArrayLike", "value"
        elif t.kind in ("struct", "union"):
            getter = self.record(t.ctype)
            read = [f"        return {getter}.from_buffer(self._section[{key}])"]
            setter_type, store = f"{getter} | {self.builtin('bytes')}", "bytes(value)"
        else:
            getter = self.builtin("float" if t.kind == "float" else "int")
            read = [f"        value: {getter} = self._section[{key}]", "        return value"]
            setter_type, store = getter, "value"
            if t.kind == "enum":
                self.enum(t)
                alias = self.enum_names(t, cname)
                if alias is not None:
                    setter_type = f"{getter} | {alias}"
        lines = ["    @property", f"    def {attr}(self) -> {getter}:", doc, *read]
        if writable:
            lines += ["", f"    @{attr}.setter",
                      f"    def {attr}(self, value: {setter_type}) -> None:",
                      f"        self._section[{key}] = {store}"]
        return [_wrap(line) for line in lines]

    def enum_names(self, t: BtfType, var: str) -> str | None:
        """A Literal alias of an enum's enumerator names (a write also takes a name)."""
        if not t.enumerators:
            return None
        cname = t.name.split()[-1]
        key = (cname if cname != "enum" else var, tuple(t.enumerators.items()))
        done = self.aliases.get(key)
        if done is not None:
            return done
        name = self.names.add(_camel(key[0]) + "Name")
        self.aliases[key] = name
        self.uses.add("Literal")
        lines = [f"#: The enumerators of {_doc(t.name)}, by name.", f"{name} = Literal["]
        lines += [f"    {_str(k)}," for k in t.enumerators]
        self.types.append("\n".join([*lines, "]"]))
        return name

    def builtin(self, name: str) -> str:
        """A builtin type's name in an annotation; ``builtins.X`` where a property of the
        class being written has that name (mypy looks in the class first)."""
        if name in self.props:
            self.uses.add("builtins")
            return f"builtins.{name}"
        return name

    def section_class(self, sec_name: str) -> tuple[str, str]:
        """(the class name, its source) for one data section."""
        sec = self.obj.sections[sec_name]
        name = self.names.add(self.cls + _camel(sec_name))
        attrs = _Names(_SECTION_OWN | _ANNOTATION_NAMES | {"_section"})
        props = {v.name: attrs.add(v.name) for v in sec.variables.values()}
        self.props = set(props.values())
        flags = ", ".join(_flag_words(sec.flags)) or "no flags"
        text = _SECTION.substitute(cls=name, name=_doc(sec_name), obj=_doc(self.obj.name),
                                   size=sec.size, flags=flags, bytes=self.builtin("bytes"))
        lines = text.split("\n")
        writable = sec_name != ".kconfig"  # libbpf fills .kconfig at load
        for v in sec.variables.values():
            where = f"offset {v.offset}, {v.size} bytes"
            lines.append("")
            lines += self.variable(props[v.name], v.name, v.type, where, writable)
        return name, "\n".join(lines)

    # -- programs and maps --------------------------------------------------

    def programs_class(self) -> tuple[str, str]:
        name = self.names.add(self.cls + "Programs")
        attrs = _Names()
        progs = [(attrs.add(p.name), p) for p in self.obj.programs.values()]
        lines = [f"class {name}:", f'    """The programs of {self.obj.name}."""', ""]
        if progs:
            slots = ", ".join(_str(a) for a in sorted(a for a, _ in progs))
            lines += [f"    __slots__ = ({slots}{',' if len(progs) == 1 else ''})", ""]
        lines.append("    def __init__(self, programs: dict[str, Program]) -> None:")
        for attr, p in progs:
            lines += [f'        # {p.type}, SEC("{p.section}")'.replace("\n", " "),
                      f"        self.{attr}: Program = programs[{_str(p.name)}]"]
        if not progs:
            lines.append("        pass")
        return name, "\n".join(_wrap(line) for line in lines)

    def maps_class(self) -> tuple[str, str]:
        """(class name, source) for the object's maps."""
        libbpf, ffi = _libbpf.lib(), _libbpf.ffi
        name = self.names.add(self.cls + "Maps")
        attrs = _Names({"_obj"})
        lines = [f"class {name}:",
                 f'    """The maps of {self.obj.name} once loaded: ArrayMap for arrays, the raw',
                 '    descriptor (owned by the object) for other map types."""',
                 "",
                 '    __slots__ = ("_obj",)',
                 "",
                 "    def __init__(self, obj: BpfObject) -> None:",
                 "        self._obj = obj"]
        for sec_name in self.obj.sections:
            attr = attrs.add(_section_attr(sec_name))
            lines += ["", "    @property", f"    def {attr}(self) -> ArrayMap:",
                      f'        """The {sec_name} section\'s map."""',
                      f"        return _array_map(self._obj, {_str(sec_name)})"]
        m = ffi.NULL
        while (m := libbpf.bpf_object__next_map(self.obj._obj, m)) != ffi.NULL:
            if libbpf.bpf_map__is_internal(m):
                continue
            mname = _libbpf.string(libbpf.bpf_map__name(m))
            kind = libbpf.bpf_map__type(m)
            kind_name = _libbpf.string(libbpf.libbpf_bpf_map_type_str(kind)) or str(kind)
            array = kind == _BPF_MAP_TYPE_ARRAY
            ptype, helper = ("ArrayMap", "_array_map") if array else ("int", "_fd")
            lines += ["", "    @property", f"    def {attrs.add(mname)}(self) -> {ptype}:",
                      f'        """{kind_name} {_doc(mname)}: key '
                      f"{libbpf.bpf_map__key_size(m)}B, value {libbpf.bpf_map__value_size(m)}B,"
                      f' max_entries {libbpf.bpf_map__max_entries(m)}."""',
                      f"        return {helper}(self._obj, {_str(mname)})"]
        return name, "\n".join(_wrap(line) for line in lines)

    # -- the module ---------------------------------------------------------

    def module(self) -> str:
        sections = [(s, *self.section_class(s)) for s in self.obj.sections]
        programs_cls, programs_src = self.programs_class()
        maps_cls, maps_src = self.maps_class()
        body = "\n\n\n".join([*self.types, *(src for _, _, src in sections), programs_src,
                              maps_src, self._object_class(sections, programs_cls, maps_cls)])
        return "\n".join([self._header(), self._layout(), "", "", _HELPERS, "", "", body])

    def _header(self) -> str:
        typing = [n for n in ("Any", "TYPE_CHECKING", "Literal", "final")
                  if n in self.uses or (n == "TYPE_CHECKING" and "numpy" in self.uses)]
        std = [f"import {m}" for m in ("builtins", "ctypes", "enum") if m in self.uses]
        std += ["import os", f"from typing import {', '.join(typing)}"]
        lines = [
            f'"""A typed skeleton of the BPF object {self.obj.name} '
            f"({os.path.basename(self.obj.path)}).",
            "",
            f"Generated by `bpfmap gen skeleton` (bpfmap {__version__}): do not edit, regenerate",
            "when the object changes (opening checks that it still matches).",
            "",
            f"    with {self.cls}.open(backend=\"kernel\") as skel:   # or \"emulated\" (no root)",
            "        skel.load()",
            '"""',
            "",
            "from __future__ import annotations",
            "",
            *std,
            "",
            "from bpfmap import ArrayMap, BpfObject, Program"
            + (", Section" if self.obj.sections else ""),
        ]
        if "numpy" in self.uses:
            lines += ["", "if TYPE_CHECKING:", "    import numpy", "    import numpy.typing"]
        here = ("os.path.join(os.path.dirname(os.path.abspath(__file__)), "
                f"{_str(self.object_file)})")
        lines += ["", "#: The object this skeleton was generated from"
                  + (" (beside this module)." if self.relative else ".")]
        if self.relative:
            lines.append(_wrap(f"OBJECT_FILE = {here}"))
        else:
            lines += _long_string("OBJECT_FILE = ", self.object_file)
        return "\n".join(lines)

    def _layout(self) -> str:
        lines = ["# What open() checks: section -> (size, ((variable, offset, size, type), ...)).",
                 "_LAYOUT: dict[str, tuple[int, tuple[tuple[str, int, int, str], ...]]] = {"]
        for sec in self.obj.sections.values():
            lines.append(f"    {_str(sec.name)}: ({sec.size}, (")
            lines += [_wrap(f"        ({_str(v.name)}, {v.offset}, {v.size}, {_str(v.type.name)}),")
                      for v in sec.variables.values()]
            lines.append("    )),")
        lines.append("}")
        names = [_str(p) for p in self.obj.programs]
        lines.append(_wrap(f"_PROGRAMS: tuple[str, ...] = ({', '.join(names)}"
                           f"{',' if len(names) == 1 else ''})"))
        return "\n".join(lines)

    def _object_class(self, sections: list[tuple[str, str, str]], programs_cls: str,
                      maps_cls: str) -> str:
        attrs = _Names(_OBJECT_OWN)
        named = [(attrs.add(_section_attr(s)), s, c) for s, c, _ in sections]
        self.uses |= {"final", "Literal"}
        fields = "".join(f"    {attr}: {cls}\n" for attr, _, cls in named)
        fill = "".join(f"        self.{attr} = {cls}(obj.sections[{_str(s)}])\n"
                       for attr, s, cls in named)
        text = _OBJECT.substitute(cls=self.cls, name=_doc(self.obj.name), fields=fields,
                                  fill=fill, programs=programs_cls, maps=maps_cls)
        return "\n".join(_wrap(line) for line in text.split("\n"))


def _c_name(ctype: Any) -> str:
    keyword_ = "struct" if issubclass(ctype, ctypes.Structure) else "union"
    return f"{keyword_} {ctype.__name__}"


def _section_attr(sec_name: str) -> str:
    return sec_name.lstrip(".").replace(".", "_") or "section"


def _flag_words(flags: int) -> list[str]:
    words = []
    if flags & 0x400:
        words.append("mmapable")
    if flags & 0x80:
        words.append("read-only to programs")
    return words


def _str(text: str) -> str:
    """A Python string literal, double-quoted as ruff's style has them."""
    r = repr(text)
    if r.startswith("'") and '"' not in text:
        r = '"' + r[1:-1].replace("\\'", "'") + '"'
    return r


def _doc(text: str) -> str:
    """Text safe inside a docstring."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _long_string(prefix: str, text: str) -> list[str]:
    """``prefix`` + a string literal, in pieces when the line would be too long."""
    line = prefix + _str(text)
    if len(line) <= _LINE:
        return [line]
    pieces = [text[i : i + 80] for i in range(0, len(text), 80)]
    return [prefix + "(", *(f"    {_str(p)}" for p in pieces), ")"]


def _wrap(line: str) -> str:
    """Long lines: a ``noqa`` for the line-length rule (C names can be long)."""
    return line if len(line) <= _LINE else line + "  # noqa: E501, RUF100"


def generate(obj: BpfObject, *, name: str | None = None, output: str | None = None) -> str:
    """The skeleton module's source for an opened object.

    ``name``: the top-level class (default: the object's name in CamelCase). ``output``: where
    the module will be written; the object's path is then stored relative to it (the two
    move together), else absolute.
    """
    cls = check_class_name(name if name is not None else _camel(obj.name))
    path = os.path.abspath(obj.path)
    if output is not None:
        rel = os.path.relpath(path, os.path.dirname(os.path.abspath(output)))
        if not rel.startswith(os.pardir):  # the object is in the module's folder (or below)
            return _Writer(obj, cls, rel, True).module()
    return _Writer(obj, cls, path, False).module()


def check_class_name(cls: str) -> str:
    """``cls`` if it can name the skeleton's class, else a ValueError saying why."""
    if not cls.isidentifier() or keyword.iskeyword(cls) or cls in _MODULE_NAMES:
        raise ValueError(f"{cls!r} cannot name the skeleton's class: give a Python identifier")
    return cls


def _identifiers(obj: BpfObject) -> set[str]:
    """Every name the skeleton gives an attribute (variables, struct fields, programs, maps,
    sections): the generated classes' names avoid them, so an annotation never means the
    wrong thing."""
    out = set(obj.programs) | {_section_attr(s) for s in obj.sections}
    out |= set(obj._map_handles)
    seen: set[Any] = set()

    def fields(ctype: Any) -> None:
        while issubclass(ctype, ctypes.Array):
            ctype = ctype._type_
        if ctype in seen or not issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            return
        seen.add(ctype)
        for f in ctype._fields_:
            out.add(f[0])
            fields(f[1])

    for sec in obj.sections.values():
        for v in sec.variables.values():
            out.add(v.name)
            fields(v.type.ctype)
    return out

