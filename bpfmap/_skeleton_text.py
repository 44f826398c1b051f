"""The fixed parts of a generated skeleton (see :mod:`bpfmap._skeleton`): its helper
functions, a section class's common members and the top-level class, as templates."""

from __future__ import annotations

from string import Template

HELPERS = """\
def _check(obj: BpfObject) -> None:
    \"\"\"Refuse an object whose globals or programs are not the skeleton's.\"\"\"
    for name in sorted(set(_LAYOUT) | set(obj.sections)):
        sec = obj.sections.get(name)
        found = None if sec is None else (sec.size, tuple(
            (v.name, v.offset, v.size, v.type.name) for v in sec.variables.values()))
        if found != _LAYOUT.get(name):
            raise ValueError(f"{obj.path}: section {name} is not the one this skeleton was "
                             "generated from: regenerate it with bpfmap gen skeleton")
    if tuple(obj.programs) != _PROGRAMS:
        raise ValueError(f"{obj.path}: its programs are not the ones this skeleton was "
                         "generated from: regenerate it with bpfmap gen skeleton")


def _map(obj: BpfObject, name: str) -> ArrayMap | int:
    if not obj.loaded or obj.closed:
        raise ValueError(f"map {name}: the object is not loaded (load() it first)")
    try:
        return obj.maps[name]
    except KeyError:
        raise ValueError(f"{obj.path} has no map {name}: regenerate the skeleton") from None


def _array_map(obj: BpfObject, name: str) -> ArrayMap:
    found = _map(obj, name)
    if not isinstance(found, ArrayMap):
        raise TypeError(f"map {name} is not an array: regenerate the skeleton")
    return found


def _fd(obj: BpfObject, name: str) -> int:
    found = _map(obj, name)
    if isinstance(found, ArrayMap):
        raise TypeError(f"map {name} is an array: regenerate the skeleton")
    return found"""

SECTION = Template('''\
class $cls:
    """$name of $obj: $size bytes ($flags).

    Before load the variables are the initial value; after load the live map,
    through its mapping where it is mmapable.
    """

    __slots__ = ("_section",)

    def __init__(self, section: Section) -> None:
        self._section = section

    @property
    def section(self) -> Section:
        """The untyped bpfmap Section (variables by C name, raw bytes)."""
        return self._section

    @property
    def map(self) -> ArrayMap | None:
        """The section's map once loaded (None before)."""
        return self._section.map

    def raw(self) -> $bytes:
        """The whole section's bytes as they are now."""
        return self._section.raw()''')

OBJECT = Template('''\
@final  # generated: extend it by holding one, not by subclassing
class $cls:
    """$name: opens the object and gives its globals, programs and maps typed;
    the bpfmap.BpfObject underneath is ``obj``.
    """

    obj: BpfObject
${fields}    programs: $programs
    maps: $maps

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        backend: Literal["emulated", "kernel"] = "emulated",
        kconfig: str | None = None,
    ) -> None:
        """Open the object (``OBJECT_FILE`` unless ``path`` is given)."""
        obj = BpfObject.open(OBJECT_FILE if path is None else path, backend=backend,
                             kconfig=kconfig)
        try:
            _check(obj)
        except BaseException:
            obj.close()
            raise
        self.obj = obj
${fill}        self.programs = $programs(obj.programs)
        self.maps = $maps(obj)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        backend: Literal["emulated", "kernel"] = "emulated",
        kconfig: str | None = None,
    ) -> $cls:
        """Open the object (``OBJECT_FILE`` unless ``path`` is given)."""
        return cls(path, backend=backend, kconfig=kconfig)

    def load(self) -> None:
        """Create, fill and freeze the maps; load the programs (kernel)."""
        self.obj.load()

    @property
    def loaded(self) -> bool:
        return self.obj.loaded

    def close(self) -> None:
        self.obj.close()

    def __enter__(self) -> $cls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
''')
