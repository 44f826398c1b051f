"""BpfObject: a clang-built ``.bpf.o``, its global data as typed attributes, its programs.

libbpf opens the object on both backends (it parses the ELF and BTF without any privilege or
``bpf()`` call). Loading is where the backends part:

* ``kernel``: libbpf's ``bpf_object__load`` creates the maps, fills the data sections from the
  initial values set in Python, freezes ``.rodata``/``.kconfig`` and loads the programs; bpfmap
  then adopts each map by descriptor and maps it itself (libbpf 1.1's post-load
  ``initial_value`` pointer was seen stale).
* ``emulated``: the same maps become emulated ``ArrayMap`` s, no root needed: one-entry arrays
  holding each data section, with libbpf's flags (``BPF_F_MMAPABLE``, plus
  ``BPF_F_RDONLY_PROG`` for ``.rodata*``), filled and frozen exactly as libbpf does.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from typing import Any

from . import _kconfig, _libbpf
from ._btf import Btf, BtfError
from ._map import ArrayMap
from ._program import Program
from ._section import Section

BACKENDS = ("emulated", "kernel")
_BPF_MAP_TYPE_ARRAY = 2
# libbpf freezes these after filling them (bpf_object__populate_internal_map).
_FROZEN_SECTIONS = (".rodata", ".kconfig")
_LOG_SIZE = 1 << 20
_KCONFIG = ".kconfig"


class BpfObject:
    """A BPF object file, opened with libbpf; ``load()`` creates its maps and programs.

    Use as a context manager, or call :meth:`close`.
    """

    path: str
    backend: str
    name: str
    loaded: bool
    sections: dict[str, Section]
    programs: dict[str, Program]
    _obj: Any
    _btf: Btf | None
    _maps: dict[str, ArrayMap | int]
    _section_maps: dict[str, Any]
    _map_handles: dict[str, Any]
    _kconfig: str | None
    _kconfig_keep: Any
    _image: bytes
    _image_keep: tuple[Any, Any]

    def __init__(self) -> None:
        raise TypeError("use BpfObject.open(path, backend=...)")

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        backend: str = "emulated",
        kconfig: str | None = None,
    ) -> BpfObject:
        """Open an object file (no privileges needed). ``kconfig``: Kconfig lines
        (``CONFIG_X=y``, one per line) that take precedence over the running kernel's
        config for the ``.kconfig`` externs, as libbpf's ``kconfig`` open option."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'emulated' or 'kernel', not {backend!r}")
        p = os.fspath(path)
        if not isinstance(p, str):
            raise TypeError("path must be str or os.PathLike[str]")
        if kconfig is not None and not isinstance(kconfig, str):
            raise TypeError(f"kconfig must be str, not {type(kconfig).__name__}")
        image = _read_object_file(p)
        libbpf, ffi = _libbpf.lib(), _libbpf.ffi
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        # The name libbpf's open_file gives: the file's basename up to its first dot.
        name = ffi.new("char[]", os.fsencode(os.path.basename(p)).split(b".")[0])
        opts.object_name = name
        keep = ffi.new("char[]", kconfig.encode()) if kconfig is not None else ffi.NULL
        opts.kconfig = keep
        buf = ffi.from_buffer(image)
        _probe_open(p, libbpf.bpf_object__open_mem, buf, len(image), opts)
        handle = libbpf.bpf_object__open_mem(buf, len(image), opts)
        if handle == _libbpf.ffi.NULL:
            raise _libbpf.open_error(p, ffi.errno or errno.EINVAL, image)
        if _is_error_pointer(handle):
            raise OSError(errno.EINVAL, f"open {p}: the file is malformed (libbpf returned an "
                          "error it could not name)")
        self = object.__new__(cls)
        # libbpf's object is closed by close(), or when the last reference goes.
        self._obj = ffi.gc(handle, libbpf.bpf_object__close)
        self.path = p
        self.backend = backend
        self.loaded = False
        self._kconfig = kconfig
        self._kconfig_keep = keep  # libbpf keeps the pointer until load
        self._image = image  # the bytes libbpf opened (and the relocations are read from)
        self._image_keep = (buf, name)
        self._maps = {}
        try:
            self._collect()
        except BtfError as exc:
            self.close()
            raise BtfError(f"open {p}: {exc}") from None
        except BaseException:
            self.close()
            raise
        return self

    def _collect(self) -> None:
        libbpf, ffi = _libbpf.lib(), _libbpf.ffi
        self.name = _libbpf.string(libbpf.bpf_object__name(self._obj))
        btf = libbpf.bpf_object__btf(self._obj)
        self._btf = Btf(btf) if btf != ffi.NULL else None
        self.sections = {}
        self._section_maps: dict[str, Any] = {}
        self._map_handles: dict[str, Any] = {}
        # Internal maps of sections with no variables to name (clang's .rodata.str1.1 of
        # string literals): no Section, but libbpf creates, fills and freezes them.
        self._literal_maps: dict[str, Any] = {}
        m = ffi.NULL
        while (m := libbpf.bpf_object__next_map(self._obj, m)) != ffi.NULL:
            if not libbpf.bpf_map__is_internal(m):
                self._map_handles[_libbpf.string(libbpf.bpf_map__name(m))] = m
                continue
            section = self._section(m)
            if section is not None:
                self.sections[section.name] = section
                self._section_maps[section.name] = m
            else:
                self._literal_maps[_libbpf.string(libbpf.bpf_map__name(m))] = m
        self.programs = {}
        p = ffi.NULL
        while (p := libbpf.bpf_object__next_program(self._obj, p)) != ffi.NULL:
            prog = Program(self, p)
            self.programs[prog.name] = prog

    def _section(self, m: Any) -> Section | None:
        """The Section of one of libbpf's internal maps, typed from its DATASEC."""
        libbpf, ffi = _libbpf.lib(), _libbpf.ffi
        if self._btf is None:
            raise ValueError(f"{self.path} has no BTF: build it with clang -g")
        size = ffi.new("size_t *")
        initial = libbpf.bpf_map__initial_value(m, size)
        data = bytes(ffi.buffer(initial, size[0])) if initial != ffi.NULL else b""
        type_id = libbpf.bpf_map__btf_value_type_id(m)
        if not type_id:
            return None  # a string-literal section (.rodata.str1.1): no variables to name
        name, variables = self._btf.datasec(type_id)
        if not data:
            data = bytes(libbpf.bpf_map__value_size(m))
        return Section(name, int(libbpf.bpf_map__map_flags(m)), data, variables)

    # -- the usual sections -------------------------------------------------

    def _named(self, name: str) -> Section:
        self._check_open()
        try:
            return self.sections[name]
        except KeyError:
            raise AttributeError(f"{self.path} has no {name} section") from None

    @property
    def bss(self) -> Section:
        return self._named(".bss")

    @property
    def data(self) -> Section:
        return self._named(".data")

    @property
    def rodata(self) -> Section:
        return self._named(".rodata")

    @property
    def maps(self) -> dict[str, ArrayMap | int]:
        """Once loaded: every map by name (data sections by section name), an ArrayMap for
        arrays, the raw descriptor (owned by the object) for other map types."""
        self._check_open()
        return dict(self._maps)

    # -- loading ------------------------------------------------------------

    def load(self) -> None:
        """Create the maps, fill them, freeze ``.rodata*``; on the kernel, load the programs
        (an ``OSError`` carrying the verifier's log when the kernel refuses one)."""
        self._check_open()
        if self.loaded:
            raise ValueError(f"{self.path} is loaded already")
        if self.backend == "kernel":
            self._load_kernel()
        else:
            self._load_emulated()
        self.loaded = True

    def _load_kernel(self) -> None:
        libbpf, ffi = _libbpf.lib(), _libbpf.ffi
        for name, section in self.sections.items():
            if name == _KCONFIG:
                continue  # libbpf fills it at load
            m = self._section_maps[name]
            rc = libbpf.bpf_map__set_initial_value(m, section.raw(), section.size)
            if rc < 0:
                raise OSError(-rc, f"{name}: set initial value: {os.strerror(-rc)}")
        logs = []
        for prog in self.programs.values():
            prog.log = bytearray(_LOG_SIZE)
            logs.append(ffi.from_buffer(prog.log))
            libbpf.bpf_program__set_log_buf(prog._prog, logs[-1], _LOG_SIZE)
        rc = libbpf.bpf_object__load(self._obj)
        for prog in self.programs.values():
            libbpf.bpf_program__set_log_buf(prog._prog, ffi.NULL, 0)
        if rc < 0:
            code, reason = _libbpf.errno_and_reason(-rc)
            raise OSError(code, self._load_failure(reason))
        for name, m in self._section_maps.items():
            amap = ArrayMap.from_fd(os.dup(libbpf.bpf_map__fd(m)))
            self.sections[name]._loaded(amap)
            self._maps[name] = amap
        for name, m in self._literal_maps.items():
            self._maps[name] = ArrayMap.from_fd(os.dup(libbpf.bpf_map__fd(m)))
        for name, m in self._map_handles.items():
            fd = int(libbpf.bpf_map__fd(m))
            self._maps[name] = (
                ArrayMap.from_fd(os.dup(fd)) if libbpf.bpf_map__type(m) == _BPF_MAP_TYPE_ARRAY
                else fd
            )

    def _load_failure(self, reason: str) -> str:
        lines = [f"load {self.path}: {reason}"]
        for prog in self.programs.values():
            log = prog.verifier_log().strip()
            if log:
                lines += [f"verifier log of {prog.name} ({prog.section}):", log]
        return "\n".join(lines)

    def _load_emulated(self) -> None:
        libbpf, ffi = _libbpf.lib(), _libbpf.ffi
        for name, m in self._map_handles.items():
            if libbpf.bpf_map__type(m) != _BPF_MAP_TYPE_ARRAY:
                kind = _libbpf.string(libbpf.libbpf_bpf_map_type_str(libbpf.bpf_map__type(m)))
                raise OSError(
                    95, f"map {name}: the emulated backend has array maps only, not {kind}"
                )
        created: list[ArrayMap] = []
        try:
            for name, m in self._section_maps.items():
                created.append(self._emulated_map(m))
                section = self.sections[name]
                value = section.raw()
                if name == _KCONFIG:  # what libbpf reads from the running kernel
                    value = _kconfig.fill(section.size, section.variables, self._kconfig)
                created[-1].update(0, value)
                if name.startswith(_FROZEN_SECTIONS):
                    created[-1].freeze()
            for name, m in self._literal_maps.items():
                created.append(self._emulated_map(m))
                size = ffi.new("size_t *")
                initial = libbpf.bpf_map__initial_value(m, size)
                if initial != ffi.NULL:
                    created[-1].update(0, bytes(ffi.buffer(initial, size[0])))
                if name.startswith(_FROZEN_SECTIONS):
                    created[-1].freeze()
            for m in self._map_handles.values():
                created.append(self._emulated_map(m))
        except BaseException:
            for amap in created:
                amap.close()
            raise
        names = list(self._section_maps) + list(self._literal_maps) + list(self._map_handles)
        self._maps = dict(zip(names, created))
        try:  # what the kernel's verifier would refuse, as far as the interpreter sees it
            from ._vm_run import check_programs

            check_programs(self)
        except BaseException:
            for amap in created:
                amap.close()
            self._maps = {}
            raise
        for name, amap in zip(names, created):
            if name in self.sections:
                self.sections[name]._loaded(amap)

    @staticmethod
    def _emulated_map(m: Any) -> ArrayMap:
        libbpf = _libbpf.lib()
        return ArrayMap(
            libbpf.bpf_map__value_size(m),
            libbpf.bpf_map__max_entries(m),
            flags=libbpf.bpf_map__map_flags(m),
            name=_libbpf.string(libbpf.bpf_map__name(m)).encode()[:15],
            key_size=libbpf.bpf_map__key_size(m),
            backend="emulated",
        )

    # -- lifetime -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._obj is None:
            raise ValueError("operation on a closed BpfObject")

    def _check_kernel_loaded(self, what: str) -> None:
        self._check_open()
        if self.backend != "kernel":
            raise NotImplementedError(
                f"{what} needs the kernel: the emulated backend runs programs with test_run "
                "only; open the object with backend='kernel'"
            )
        if not self.loaded:
            raise ValueError(f"{what}: load() the object first")

    @property
    def closed(self) -> bool:
        return self._obj is None

    def close(self) -> None:
        """Release the maps, programs and mappings (mappings exported elsewhere live on)."""
        if getattr(self, "_obj", None) is None:
            return
        for section in self.sections.values() if hasattr(self, "sections") else ():
            section.close()
        for amap in self._maps.values():
            if isinstance(amap, ArrayMap):
                amap.close()
        self._maps = {}
        _libbpf.ffi.release(self._obj)  # bpf_object__close, now
        self._obj = None

    def __enter__(self) -> BpfObject:
        self._check_open()  # as files do: a closed object cannot be entered again
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("loaded" if self.loaded else "opened")
        return f"<BpfObject {self.name} {self.backend} {state}>"


# An object file is read whole into memory: a BPF object is kilobytes to a few megabytes.
_MAX_OBJECT_SIZE = 256 << 20
_PARSE_TIMEOUT_S = 30


def _read_object_file(path: str) -> bytes:
    """The file's bytes, read once: the crash probe and libbpf then parse the same bytes even
    if someone rewrites the file meanwhile."""
    # O_NONBLOCK: a FIFO at the path must not hang the open (it is refused below).
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, f"open {path}: not a regular file")
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"open {path}: not a regular file")
        if st.st_size > _MAX_OBJECT_SIZE:
            raise OSError(errno.EFBIG, f"open {path}: {st.st_size} bytes, more than a BPF "
                          f"object ({_MAX_OBJECT_SIZE >> 20} MiB at most)")
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > _MAX_OBJECT_SIZE:
                raise OSError(errno.EFBIG, f"open {path}: grew past {_MAX_OBJECT_SIZE >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _is_error_pointer(handle: Any) -> bool:
    from ._bindings import ffi as core_ffi
    from ._bindings import lib as core

    address = int(_libbpf.ffi.cast("uintptr_t", handle))
    return bool(core.bpfmap_is_error_pointer(core_ffi.cast("void *", address)))


def _probe_open(path: str, open_mem: Any, buf: Any, size: int, opts: Any) -> None:
    """Parse the object in a forked child first: libbpf trusts the ELF and BTF it parses, and
    a corrupted file can crash it; the child's death is then a clean error here."""
    from ._bindings import ffi as core_ffi
    from ._bindings import lib as core

    signo = core_ffi.new("int *")
    address = int(_libbpf.ffi.cast("uintptr_t", open_mem))
    err = core.bpfmap_probe_open_mem(
        address, core_ffi.cast("void *", int(_libbpf.ffi.cast("uintptr_t", buf))), size,
        core_ffi.cast("void *", int(_libbpf.ffi.cast("uintptr_t", opts))),
        _PARSE_TIMEOUT_S, signo)
    if signo[0] == signal.SIGALRM:
        raise OSError(errno.EINVAL, f"open {path}: libbpf did not finish parsing it in "
                      f"{_PARSE_TIMEOUT_S} s: the file is malformed")
    if signo[0]:
        raise OSError(errno.EINVAL, f"open {path}: the file is malformed (libbpf's parser "
                      f"died of {signal.Signals(signo[0]).name} on it, in a child process)")
    if err == -errno.ECHILD:
        return  # SIGCHLD is ignored here, so the child's fate is unknown: libbpf decides below
    if err in (-errno.EAGAIN, -errno.ENOMEM):
        raise OSError(-err, f"open {path}: cannot fork to parse it safely: {os.strerror(-err)}")
