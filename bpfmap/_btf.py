"""BTF types as Python types: what a BPF object's global variables are, read through libbpf.

libbpf parses the object's ``.BTF`` (and fixes every DATASEC's size and variable offsets from
the ELF symbol table when it opens the object); this module walks the parsed types
(``include/uapi/linux/btf.h``) and turns each into a :class:`BtfType`: a C-like name, a size,
and a ctypes type laid out at the exact BTF offsets, from which NumPy dtypes follow.
Pointers become 8-byte integers: shared memory must never hold a pointer Python follows.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from . import _libbpf

# BTF_KIND_* (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19
_MODIFIERS = {VOLATILE: "volatile", CONST: "const", RESTRICT: "restrict", TYPE_TAG: ""}
# BTF_INT_ENCODING bits
_INT_SIGNED, _INT_CHAR, _INT_BOOL = 1, 2, 4

_SIGNED = {1: ctypes.c_int8, 2: ctypes.c_int16, 4: ctypes.c_int32, 8: ctypes.c_int64}
_UNSIGNED = {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32, 8: ctypes.c_uint64}
_FLOATS = {4: ctypes.c_float, 8: ctypes.c_double}
_MAX_RESOLVE_DEPTH = 32
# No global bpfmap lays out is larger: a data section is one map value, which the kernel caps
# at KMALLOC_MAX_SIZE-ish sizes far below this; a larger BTF size is a corrupted file.
_MAX_TYPE_SIZE = 1 << 30


class BtfError(ValueError):
    """A type bpfmap cannot lay out (a forward declaration, a function, ...)."""


@dataclass(frozen=True)
class BtfType:
    """One resolved type: how Python reads and writes it.

    ``kind`` is ``"int"``, ``"float"``, ``"enum"``, ``"pointer"``, ``"array"``, ``"struct"``
    or ``"union"``. ``signed`` is for the scalar kinds; ``shape`` and ``element`` for arrays
    (nested C arrays fold into one shape); ``enumerators`` for enums.
    """

    name: str
    kind: str
    size: int
    ctype: Any
    signed: bool = False
    shape: tuple[int, ...] = ()
    element: BtfType | None = None
    enumerators: dict[str, int] = field(default_factory=dict)

    @property
    def scalar(self) -> bool:
        return self.kind in ("int", "float", "enum", "pointer")


@dataclass(frozen=True)
class BtfVar:
    """A variable of a DATASEC: its name, offset in the section and type."""

    name: str
    offset: int
    size: int
    type: BtfType


class Btf:
    """The types of one libbpf ``struct btf`` (owned by its object: do not outlive it)."""

    def __init__(self, handle: Any) -> None:
        if handle == _libbpf.ffi.NULL:
            raise BtfError("the object has no BTF (build it with clang -g)")
        self._lib = _libbpf.lib()
        self._btf = handle
        self._cache: dict[int, BtfType] = {}
        self._resolving: list[int] = []  # the chain being resolved, against cycles

    # -- raw access ---------------------------------------------------------

    def _raw(self, type_id: int) -> Any:
        t = self._lib.btf__type_by_id(self._btf, type_id)
        if t == _libbpf.ffi.NULL:
            raise BtfError(f"BTF type id {type_id} does not exist")
        return t

    def _name(self, t: Any) -> str:
        return _libbpf.string(self._lib.btf__name_by_offset(self._btf, t.name_off))

    @staticmethod
    def _kind(t: Any) -> int:
        return int((t.info >> 24) & 0x1F)

    def _items(self, t: Any, ctype: str) -> Any:
        """The array that follows a btf_type (members, enumerators, secinfos, ...)."""
        return _libbpf.ffi.cast(ctype + " *", t + 1)

    # -- the public walk ----------------------------------------------------

    def datasec(self, type_id: int) -> tuple[str, list[BtfVar]]:
        """A DATASEC's name and variables, in offset order."""
        t = self._raw(type_id)
        if self._kind(t) != DATASEC:
            raise BtfError(f"BTF type {type_id} is not a DATASEC")
        infos = self._items(t, "struct btf_var_secinfo")
        out = []
        for i in range(t.info & 0xFFFF):
            var = self._raw(infos[i].type)
            if self._kind(var) != VAR:
                continue  # a DATASEC of .maps or .ksyms holds FUNCs too
            out.append(
                BtfVar(self._name(var), int(infos[i].offset), int(infos[i].size),
                       self.resolve(var.size_or_type))
            )
        out.sort(key=lambda v: v.offset)
        return self._name(t), out

    def resolve(self, type_id: int) -> BtfType:
        cached = self._cache.get(type_id)
        if cached is None:
            # BTF from a file may refer to itself or nest without end; the kernel's own
            # resolver stops at MAX_RESOLVE_DEPTH (32) and refuses such types too.
            if type_id in self._resolving:
                raise BtfError(f"BTF type {type_id} contains itself")
            if len(self._resolving) >= _MAX_RESOLVE_DEPTH:
                raise BtfError(f"BTF type {type_id} nests deeper than {_MAX_RESOLVE_DEPTH} types")
            self._resolving.append(type_id)
            try:
                cached = self._cache[type_id] = self._build(type_id)
            finally:
                self._resolving.pop()
        return cached

    def _build(self, type_id: int) -> BtfType:
        t = self._raw(type_id)
        kind = self._kind(t)
        if kind in _MODIFIERS:
            inner = self.resolve(t.size_or_type)
            prefix = _MODIFIERS[kind]
            return _renamed(inner, f"{prefix} {inner.name}" if prefix else inner.name)
        if kind == TYPEDEF:
            return _renamed(self.resolve(t.size_or_type), self._name(t))
        if kind == INT:
            return self._int(t)
        if kind == FLOAT:
            return self._float(t)
        if kind == PTR:
            return BtfType("void *", "pointer", 8, ctypes.c_uint64)
        if kind in (ENUM, ENUM64):
            return self._enum(t, kind)
        if kind == ARRAY:
            return self._array(t)
        if kind in (STRUCT, UNION):
            return self._record(t, kind)
        what = {FWD: "a forward declaration", FUNC: "a function", FUNC_PROTO: "a function type",
                VAR: "a variable", DATASEC: "a section", DECL_TAG: "a tag"}.get(kind, "unknown")
        raise BtfError(f"BTF type {type_id} ({self._name(t) or 'anonymous'}) is {what}")

    def _int(self, t: Any) -> BtfType:
        size = int(t.size_or_type)
        if size not in (1, 2, 4, 8, 16):  # btf_int_check_meta's sizes
            raise BtfError(f"BTF int {self._name(t)!r}: {size} bytes")
        encoding = (self._items(t, "uint32_t")[0] >> 24) & 0xF
        signed = bool(encoding & _INT_SIGNED)
        table = _SIGNED if signed else _UNSIGNED
        ctype = table.get(size) or ctypes.c_uint8 * size  # __int128: bytes, read as an int
        return BtfType(self._name(t), "int", size, ctype, signed=signed)

    def _float(self, t: Any) -> BtfType:
        size = int(t.size_or_type)
        if size not in _FLOATS:
            raise BtfError(f"{self._name(t)}: a {size}-byte float has no Python type")
        return BtfType(self._name(t), "float", size, _FLOATS[size], signed=True)

    def _enum(self, t: Any, kind: int) -> BtfType:
        size = int(t.size_or_type)
        values: dict[str, int] = {}
        if kind == ENUM:
            items = self._items(t, "struct btf_enum")
            for i in range(t.info & 0xFFFF):
                values[self._name(items[i])] = int(items[i].val)
        else:
            items = self._items(t, "struct btf_enum64")
            for i in range(t.info & 0xFFFF):
                raw = int(items[i].val_hi32) << 32 | int(items[i].val_lo32)
                values[self._name(items[i])] = raw
        # kind_flag marks a signed enum (newer compilers); older BTF says nothing, and a C
        # enum with a negative enumerator is signed.
        signed = bool(t.info >> 31) or any(v < 0 for v in values.values())
        if signed and kind == ENUM64:
            values = {k: v - (1 << 64) if v >= 1 << 63 else v for k, v in values.items()}
        table = _SIGNED if signed else _UNSIGNED
        if size not in table:
            raise BtfError(f"enum {self._name(t)}: {size} bytes")
        name = self._name(t)
        return BtfType(f"enum {name}" if name else "enum", "enum", size, table[size],
                       signed=signed, enumerators=values)

    def _array(self, t: Any) -> BtfType:
        info = self._items(t, "struct btf_array")[0]
        elem = self.resolve(info.type)
        n = int(info.nelems)
        if elem.size * n > _MAX_TYPE_SIZE:
            raise BtfError(f"BTF array of {n} x {elem.size} bytes: larger than any section")
        shape = (n,) + elem.shape if elem.kind == "array" else (n,)
        base = elem.element if elem.kind == "array" and elem.element else elem
        dims = "".join(f"[{d}]" for d in shape)
        return BtfType(f"{base.name}{dims}", "array", elem.size * n, elem.ctype * n,
                       shape=shape, element=base)

    def _record(self, t: Any, kind: int) -> BtfType:
        keyword = "struct" if kind == STRUCT else "union"
        name = self._name(t)
        size = int(t.size_or_type)
        if size > _MAX_TYPE_SIZE:
            raise BtfError(f"BTF {keyword} {name or 'anon'}: {size} bytes")
        members = self._items(t, "struct btf_member")
        fields: list[tuple[str, int, Any]] = []
        for i in range(t.info & 0xFFFF):
            m = members[i]
            bitfield = (m.offset >> 24) if t.info >> 31 else 0
            bit_offset = (m.offset & 0xFFFFFF) if t.info >> 31 else int(m.offset)
            if bitfield or bit_offset % 8 or self._int_bits(m.type) not in (None, 0):
                continue  # bitfields stay in the raw bytes: ctypes cannot place them exactly
            member = self.resolve(m.type)
            fname = self._name(m)
            if not fname and member.kind not in ("struct", "union"):
                continue  # only a struct or union member may be anonymous (C11 6.7.2.1)
            fields.append((fname or f"_anon{i}", bit_offset // 8, member.ctype))
        record = _layout(keyword, name or "anon", size, fields)
        return BtfType(f"{keyword} {name}" if name else keyword, keyword, size, record)

    def _int_bits(self, type_id: int) -> int | None:
        """For an integer type that is a bitfield in old-style BTF (fewer bits than bytes): its
        width in bits; 0 for a whole integer; None for any other type."""
        t = self._raw(type_id)
        for _ in range(_MAX_RESOLVE_DEPTH):
            if self._kind(t) not in (TYPEDEF, *_MODIFIERS):
                break
            t = self._raw(t.size_or_type)
        if self._kind(t) != INT:
            return None
        bits = int(self._items(t, "uint32_t")[0] & 0xFF)
        return 0 if bits == t.size_or_type * 8 else bits


def _renamed(inner: BtfType, name: str) -> BtfType:
    return BtfType(name, inner.kind, inner.size, inner.ctype, inner.signed, inner.shape,
                   inner.element, inner.enumerators)


def _layout(keyword: str, name: str, size: int, fields: list[tuple[str, int, Any]]) -> Any:
    """A packed ctypes Structure/Union with every field at its BTF byte offset.

    Padding fields fill the gaps, so the layout never depends on ctypes' own alignment rules
    (a BPF object's layout is the compiler's for the BPF target).
    """
    base: Any = ctypes.Structure if keyword == "struct" else ctypes.Union
    out: list[tuple[str, Any]] = []
    if keyword == "struct":
        pos = 0
        for i, (fname, offset, ctype) in enumerate(sorted(fields, key=lambda f: f[1])):
            if offset < pos:
                continue  # overlapping (cannot happen in C without bitfields): keep the first
            if offset > pos:
                out.append((f"_pad{i}", ctypes.c_uint8 * (offset - pos)))
            out.append((fname, ctype))
            pos = offset + ctypes.sizeof(ctype)
        if pos < size:
            out.append(("_pad_end", ctypes.c_uint8 * (size - pos)))
    else:
        out = [(fname, ctype) for fname, offset, ctype in fields if offset == 0]
        out.append(("_raw", ctypes.c_uint8 * size))
    anonymous = [f for f, _ in out if f.startswith("_anon")]
    try:
        cls: Any = type(name, (base,), {"_pack_": 1, "_anonymous_": anonymous, "_fields_": out})
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise BtfError(f"{keyword} {name}: cannot be laid out ({exc})") from None
    if ctypes.sizeof(cls) != size:
        raise BtfError(f"{keyword} {name}: laid out in {ctypes.sizeof(cls)} bytes, BTF says {size}")
    return cls
