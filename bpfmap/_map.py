"""The Python API: a thin layer over the C core (bpfmap._core, cffi API mode).

The C core returns 0 or -errno, exactly as the kernel would; this layer turns
-errno into ``OSError(errno, message)`` (so callers see FileNotFoundError,
PermissionError, ...) and Python-level misuse into TypeError/ValueError.
"""

from __future__ import annotations

import array
import ctypes
import errno
import mmap as _mmap
import operator
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from resource import RLIMIT_FSIZE as _RLIMIT_FSIZE
from resource import getrlimit as _getrlimit
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, Union

from . import _constants as C

if TYPE_CHECKING:
    from ._typedmap import TypedArray
from ._core import ffi, lib

BACKENDS = {"emulated": 0, "kernel": 1}
_BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}
_U32 = 2**32 - 1
_U64 = 2**64 - 1
_NO_FLAGS = 0  # the fast paths below take `flags is _NO_FLAGS`: the int 0, not False or 0.0
# ffi.from_buffer() with a ctype object and positional flags: half the cost of a type string.
_U32_ARRAY = ffi.typeof("uint32_t[]")
_CHAR_ARRAY = ffi.typeof("char[]")
PAGE_SIZE = _mmap.PAGESIZE

_CT = TypeVar("_CT", bound="ctypes._CData")
Buffer = Union[bytes, bytearray, memoryview, Any]


def error(err: int, what: str) -> OSError:
    """OSError for a C core result ``-errno``, with the kernel's errno."""
    e = -err
    text = "Operation not supported (ENOTSUPP)" if e == C.ENOTSUPP else os.strerror(e)
    return OSError(e, f"{what}: {text}")


def _closed() -> ValueError:
    return ValueError("I/O operation on closed map")


class _ClosedView:
    """What a closed (or non-emulated) map's lookup fast path slices: it raises."""

    __slots__ = ()

    def __getitem__(self, index: object) -> bytes:
        raise _closed()


_CLOSED_VIEW: Any = _ClosedView()


def _check_uint(value: object, bits: int, what: str) -> int:
    """``value`` as an int: an int or any exact integer type with ``__index__``
    (NumPy's, as ``mmap`` and NumPy indexing take them), never a bool."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"{what} must be an int, not {type(value).__name__}")
        value = operator.index(value)  # type: ignore[arg-type]
    assert isinstance(value, int)
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} must be in 0..{(1 << bits) - 1}, got {value}")
    return value


def _exact_ints(key: object, flags: object) -> None:
    """cffi takes bools (and anything with __index__) as ints: check them as every call does."""
    if type(key) is not int:
        _check_uint(key, 32, "key")
    if type(flags) is not int:
        _check_uint(flags, 64, "flags")


def _bad_args(**args: tuple[object, int]) -> Exception:
    """The TypeError/ValueError for the first argument cffi refused."""
    for name, (value, bits) in args.items():
        try:
            _check_uint(value, bits, name)
        except (TypeError, ValueError) as exc:
            return exc
    return TypeError("invalid argument")


class MapInfo(NamedTuple):
    """The fields of the kernel's ``struct bpf_map_info`` that bpfmap reports."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str


class Batch(NamedTuple):
    """One ``BPF_MAP_LOOKUP_BATCH`` result.

    ``keys`` holds the keys copied, ``values`` their values packed at a
    ``value_size`` stride (the kernel's layout, not the padded element stride).
    ``out_batch`` is the token to pass as ``in_batch`` to continue (``None`` if
    nothing was copied). ``done`` is the kernel's ENOENT: no key follows.
    """

    keys: array.array[int]
    values: bytearray
    out_batch: int | None
    done: bool

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(key, value) pairs, values as bytes."""
        n = len(self.keys)
        if not n:
            return
        size = len(self.values) // n
        for i, key in enumerate(self.keys):
            yield key, bytes(self.values[i * size : (i + 1) * size])


class BatchCount(NamedTuple):
    """One ``lookup_batch_into`` result: the caller's buffers hold the data.

    ``copied`` keys (and their values, at a ``value_size`` stride) were written
    to the front of the buffers: the kernel's ``attr->batch.count`` on return.
    ``out_batch`` and ``done`` as in ``Batch``.
    """

    copied: int
    out_batch: int | None
    done: bool


def _name_bytes(name: str | bytes) -> bytes:
    if isinstance(name, str):
        return name.encode("utf-8")
    if isinstance(name, bytes):
        return name
    raise TypeError(f"name must be str or bytes, not {type(name).__name__}")


def _decode_name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _holds_pointers(ctype: Any) -> bool:
    """Whether a ctypes type has pointer fields (c_void_p is a plain integer: it has not)."""
    func_ptr = ctypes.CFUNCTYPE(None).__mro__[1]  # ctypes._CFuncPtr, not in ctypes' stubs
    if issubclass(ctype, (ctypes._Pointer, func_ptr, ctypes.c_char_p, ctypes.c_wchar_p,
                          ctypes.py_object)):
        return True
    if issubclass(ctype, ctypes.Array):
        return _holds_pointers(ctype._type_)
    if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
        return any(_holds_pointers(field[1]) for field in getattr(ctype, "_fields_", ()))
    return False


class MapRegion(_mmap.mmap):
    """A mapping of a map's values: a :class:`mmap.mmap` whose offset 0 is value 0.

    Buffer protocol, slicing, ``len()``, ``close()``, ``closed`` and ``with``
    behave as for :class:`mmap.mmap`; closing while buffers are exported raises
    :class:`BufferError`. The mapping keeps the map alive after the map's own
    handle is closed, as a kernel mapping keeps its map.
    """

    map_offset: int
    writable: bool
    value_size: int
    elem_size: int
    max_entries: int

    def resize(self, newsize: int) -> None:
        raise OSError(22, "mremap of a map region: Invalid argument")

    def struct(self, ctype: type[_CT], key: int = 0) -> _CT:
        """A ctypes structure over value ``key`` (the map's index), live in the mapping.

        Only for writable regions: ctypes has no read-only objects, and a store
        into a read-only mapping would kill the process. Read a read-only
        region with :meth:`ndarray` and a structured dtype instead. While the
        structure lives, :meth:`close` raises BufferError, as for any export.
        """
        if not self.writable:
            raise TypeError(
                "ctypes structures need a writable region; "
                "use region.ndarray(dtype) for a read-only view"
            )
        size = ctypes.sizeof(ctype)
        if _holds_pointers(ctype):
            # Any process sharing the map can write any bytes there: a pointer read
            # from it (char *, py_object, POINTER(...)) crashes the reader.
            raise TypeError(f"{ctype.__name__} holds pointers: shared memory cannot hold them")
        if size > self.value_size:
            raise ValueError(f"{ctype.__name__} is {size} bytes, the value is {self.value_size}")
        start = _check_uint(key, 32, "key") * self.elem_size - self.map_offset
        if key >= self.max_entries or start < 0 or start + size > len(self):
            raise ValueError(f"value {key} is not inside this region")
        return ctype.from_buffer(self, start)  # type: ignore[attr-defined,no-any-return]

    def ndarray(self, dtype: Any = None) -> Any:
        """A NumPy array with one item per value of the map in the region.

        The stride is the map's element stride ``round_up(value_size, 8)``; the
        dtype (default: ``value_size`` raw bytes) may be at most ``value_size``
        bytes. The page padding past ``max_entries`` is not part of it. While the
        array (or any view of it) lives, :meth:`close` raises BufferError.
        """
        np = _numpy()
        dt = np.dtype(dtype if dtype is not None else f"V{self.value_size}")
        if dt.hasobject:  # object items are PyObject pointers, read from shared memory
            raise TypeError(f"dtype {dt} holds Python objects: shared memory cannot hold them")
        if dt.itemsize > self.value_size:
            raise ValueError(
                f"dtype of {dt.itemsize} bytes does not fit a {self.value_size}-byte value"
            )
        # The first whole value in the region (offsets are page aligned).
        skip = (-self.map_offset) % self.elem_size
        usable = len(self) - skip
        count = 0 if usable < dt.itemsize else (usable - dt.itemsize) // self.elem_size + 1
        count = max(0, min(count, self.max_entries - (self.map_offset + skip) // self.elem_size))
        # np.frombuffer() holds a buffer export of the mapping (np.ndarray(buffer=self)
        # does not), and the strided array below keeps it as its base: close()
        # raises BufferError while any of them lives, instead of unmapping under it.
        flat = np.frombuffer(self, dtype=np.uint8)
        return np.ndarray(
            shape=(count,), dtype=dt, buffer=flat, offset=skip, strides=(self.elem_size,)
        )


def _numpy() -> Any:
    """NumPy, or an ImportError that says how to get it."""
    try:
        import numpy
    except ImportError as exc:
        raise ImportError(
            "NumPy views need NumPy: pip install 'bpfmap[numpy]' (or pip install numpy)",
            name="numpy",
        ) from exc
    return numpy


class ArrayMap:
    """A ``BPF_MAP_TYPE_ARRAY``: emulated in shared memory, or a real kernel map.

    ``backend="emulated"`` needs no privileges; ``backend="kernel"`` creates the
    map with the ``bpf()`` syscall. Both give the same bytes and the same errno
    for every operation.
    """

    __slots__ = (
        "_h", "_value_size", "_stride", "_rn", "_rview", "_rbase", "_wn", "_wfd", "_wbase",
        "__weakref__",
    )

    def __init__(
        self,
        value_size: int,
        max_entries: int,
        *,
        flags: int = 0,
        name: str | bytes = "",
        key_size: int = 4,
        backend: str = "emulated",
    ) -> None:
        self._h: Any = None
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'emulated' or 'kernel', not {backend!r}")
        for what, value in (
            ("value_size", value_size),
            ("max_entries", max_entries),
            ("flags", flags),
            ("key_size", key_size),
        ):
            _check_uint(value, 32, what)
        raw_name = _name_bytes(name)
        raw = ffi.new("struct bpfmap *")
        rc = lib.bpfmap_create(
            raw,
            BACKENDS[backend],
            C.BPF_MAP_TYPE_ARRAY,
            key_size,
            value_size,
            max_entries,
            flags,
            raw_name,
            len(raw_name),
        )
        if rc:
            raise error(rc, "map create")
        self._adopt(raw)

    def _adopt(self, raw: Any) -> None:
        # The handle is released (fd closed, view unmapped) when the last
        # reference goes: close() drops ours, a call in flight in another
        # thread keeps its own, so a racing close never unmaps under it.
        self._h = h = ffi.gc(raw, lib.bpfmap_release)
        self._value_size = int(raw.value_size)
        self._stride = int(raw.elem_size)
        # The emulated fast paths (see lookup and update): how many keys each
        # may serve (0: none, go through the C core), and what they use.
        emulated = raw.backend == BACKENDS["emulated"]
        self._rn = int(raw.max_entries) if emulated and raw.view != ffi.NULL else 0
        self._rbase = raw.view + raw.page_size if self._rn else ffi.NULL
        self._rview = _CLOSED_VIEW
        if self._rn:
            # The buffer keeps `keeper` alive and `keeper` keeps the handle, so
            # no slice of the view can outlive the mapping, even when close()
            # races the slice in another thread.
            keeper = ffi.gc(ffi.cast("char *", self._rbase), lambda _p, _h=h: None)
            self._rview = ffi.buffer(keeper, self._rn * self._stride)
        self._wn = int(raw.max_entries) if emulated and raw.access != os.O_RDONLY else 0
        self._wfd = int(raw.fd)
        self._wbase = int(raw.page_size)

    @classmethod
    def from_fd(cls, fd: int) -> ArrayMap:
        """Adopt a map descriptor (emulated memfd or kernel bpf map fd).

        The new map owns ``fd`` and closes it; on failure the caller keeps it.
        """
        _check_uint(fd, 31, "fd")
        raw = ffi.new("struct bpfmap *")
        rc = lib.bpfmap_open_fd(raw, fd)
        if rc:
            raise error(rc, "open map fd")
        self = cls.__new__(cls)
        self._adopt(raw)
        return self

    @classmethod
    def open_pinned(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> ArrayMap:
        """Open a pinned map; the backend follows from what is at ``path``.

        On bpffs: a kernel map (``BPF_OBJ_GET``, with ``BPF_F_RDONLY`` if
        ``readonly``). Elsewhere: an emulated map pinned by :meth:`pin`.
        """
        from . import _pin

        p = os.fspath(path)
        fd = _pin.get_kernel(p, readonly) if _pin.on_bpffs(p) else _pin.get_emulated(p, readonly)
        try:
            return cls.from_fd(fd)
        except BaseException:
            os.close(fd)
            raise

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map at ``path``: it lives on until the path is removed.

        Kernel maps: ``BPF_OBJ_PIN`` on bpffs (the kernel's EPERM elsewhere,
        EEXIST if the path exists). Emulated maps: any path outside bpffs, served
        to the owning user only (mode 0600) by a holder process that exits, and
        so releases the map, when the path is unlinked.
        """
        from . import _pin

        h = self._handle()
        p = os.fspath(path)
        if h.backend == BACKENDS["kernel"]:
            _pin.pin_kernel(h.fd, p)
        elif h.access == os.O_RDWR:
            _pin.pin_emulated(h.fd, p)
        else:
            # bpffs pins the map, not the descriptor: open_pinned() then gives the
            # owner the access it asks for, whatever this handle's mode. The holder
            # needs a read-write descriptor for that. The memfd is 0400: the owner
            # lifts that for its own re-open only (still owner-only throughout).
            # Without the right to (another user's map), the pin serves this mode.
            proc = f"/proc/self/fd/{h.fd}"
            try:
                rw = os.open(proc, os.O_RDWR | os.O_CLOEXEC)
            except PermissionError:
                try:
                    mode = os.fstat(h.fd).st_mode & 0o7777
                    os.fchmod(h.fd, 0o600)
                except PermissionError:
                    rw = os.dup(h.fd)
                else:
                    try:
                        rw = os.open(proc, os.O_RDWR | os.O_CLOEXEC)
                    finally:
                        os.fchmod(h.fd, mode)
            try:
                _pin.pin_emulated(rw, p)
            finally:
                os.close(rw)

    # Pickling hands a descriptor to another process: only multiprocessing can do
    # that (its ForkingPickler, registered below, as it registers sockets). A plain
    # pickle or copy would dup a descriptor that nothing ever closes.
    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(
            f"cannot pickle {type(self).__name__!r} object: multiprocessing passes maps "
            "to its processes; elsewhere send m.fd over a Unix socket (socket.send_fds) "
            "and adopt it with ArrayMap.from_fd(), or pin the map and open_pinned() it"
        )

    def __copy__(self) -> ArrayMap:
        raise TypeError(
            f"cannot copy {type(self).__name__!r} object: "
            "ArrayMap.from_fd(os.dup(m.fd)) opens another handle of the same map"
        )

    def __deepcopy__(self, memo: object) -> ArrayMap:
        return self.__copy__()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register_for_multiprocessing(cls)

    # -- lifetime -----------------------------------------------------------

    def _handle(self) -> Any:
        h = self._h
        if h is None:
            raise _closed()
        return h

    def close(self) -> None:
        """Close this handle. Mappings made from it stay valid, as in the kernel."""
        # The fast paths first: a racing lookup that already passed its checks
        # slices _CLOSED_VIEW and raises like every call after close.
        self._rn = self._wn = 0
        self._rview = _CLOSED_VIEW
        self._h = None

    @property
    def closed(self) -> bool:
        return self._h is None

    def __enter__(self) -> ArrayMap:
        self._handle()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._h is None:
            return "<ArrayMap closed>"
        h = self._h
        return (
            f"<ArrayMap {_BACKEND_NAMES[h.backend]} id={h.id} name={self.name!r} "
            f"value_size={h.value_size} max_entries={h.max_entries} flags={h.map_flags:#x}>"
        )

    # -- attributes ---------------------------------------------------------

    @property
    def fd(self) -> int:
        return int(self._handle().fd)

    @property
    def backend(self) -> str:
        return _BACKEND_NAMES[self._handle().backend]

    @property
    def key_size(self) -> int:
        return int(self._handle().key_size)

    @property
    def value_size(self) -> int:
        return int(self._handle().value_size)

    @property
    def max_entries(self) -> int:
        return int(self._handle().max_entries)

    @property
    def flags(self) -> int:
        """The map's flags as the kernel reports them (BPF_F_RDONLY/WRONLY belong to handles)."""
        return int(self._handle().map_flags)

    @property
    def name(self) -> str:
        return _decode_name(ffi.string(self._handle().name, 16))

    @property
    def id(self) -> int:
        return int(self._handle().id)

    @property
    def access(self) -> str:
        """This handle's access mode: ``"rw"``, ``"r"`` (BPF_F_RDONLY) or ``"w"`` (BPF_F_WRONLY)."""
        return {os.O_RDWR: "rw", os.O_RDONLY: "r", os.O_WRONLY: "w"}[self._handle().access]

    @property
    def frozen(self) -> bool:
        rc = lib.bpfmap_frozen(self._handle())
        if rc < 0:
            raise error(rc, "frozen")
        return bool(rc)

    def info(self) -> MapInfo:
        """``BPF_OBJ_GET_INFO_BY_FD``."""
        h = self._handle()
        info = ffi.new("struct bpfmap_info *")
        rc = lib.bpfmap_info(h, info)
        if rc:
            raise error(rc, "map info")
        return MapInfo(
            info.type,
            info.id,
            info.key_size,
            info.value_size,
            info.max_entries,
            info.map_flags,
            _decode_name(ffi.string(info.name, 16)),
        )

    # -- elements -----------------------------------------------------------

    # Fast paths for the emulated backend's common case: an exact int key in
    # range, flags 0, a handle with the access (and, for update, a bytes value
    # of value_size bytes). A read is a slice of the handle's private read-only
    # view, the very bytes bpfmap_lookup() copies; a write is one os.pwrite(),
    # as bpfmap_update() does, so freeze (F_SEAL_WRITE) stays exact. Anything
    # else, and any pwrite() failure, goes through the C core, which decides
    # the errno. close() zeroes _rn and _wn first, so after it only the C core
    # path runs, and it raises. A lookup's slice keeps the mapping alive by
    # itself (see _adopt); the other fast paths take a local reference `h` to
    # the handle, so a racing close() can neither unmap the view nor close the
    # fd (whose number could be reused) under them.
    def lookup(self, key: int, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``: the value at ``key``, ``value_size`` bytes."""
        if type(key) is int and flags is _NO_FLAGS and 0 <= key < self._rn:
            key *= self._stride
            return self._rview[key : key + self._value_size]  # type: ignore[no-any-return]
        h = self._handle()
        vs = self._value_size
        buf = ffi.new("char[]", vs)
        _exact_ints(key, flags)
        try:
            rc = lib.bpfmap_lookup(h, key, buf, flags)
        except (TypeError, OverflowError):
            raise _bad_args(key=(key, 32), flags=(flags, 64)) from None
        if rc:
            raise error(rc, "lookup")
        return ffi.unpack(buf, vs)  # type: ignore[no-any-return]

    def lookup_into(self, key: int, buffer: Buffer, flags: int = 0) -> None:
        """``BPF_MAP_LOOKUP_ELEM`` into a writable buffer of at least ``value_size`` bytes.

        Bytes past ``value_size`` are left untouched, as the kernel leaves them.
        """
        h = self._handle()
        vs = self._value_size
        if (
            type(buffer) is bytearray
            and type(key) is int
            and flags is _NO_FLAGS
            and 0 <= key < self._rn
            and len(buffer) >= vs
        ):
            ffi.memmove(buffer, self._rbase + key * self._stride, vs)
            return
        dst = _writable_buffer(buffer, vs, "buffer")
        try:  # the export of the caller's buffer must not outlive the call: see _buffer_view
            _exact_ints(key, flags)
            try:
                rc = lib.bpfmap_lookup(h, key, dst, flags)
            except (TypeError, OverflowError):
                raise _bad_args(key=(key, 32), flags=(flags, 64)) from None
        finally:
            ffi.release(dst)
        if rc:
            raise error(rc, "lookup")

    def update(self, key: int, value: Buffer, flags: int = C.BPF_ANY) -> None:
        """``BPF_MAP_UPDATE_ELEM``: ``value`` must be exactly ``value_size`` bytes."""
        h = self._handle()
        vs = self._value_size
        if type(value) is bytes:
            if len(value) != vs:
                raise ValueError(f"value must be {vs} bytes, got {len(value)}")
            if type(key) is int and flags is _NO_FLAGS and 0 <= key < self._wn:
                off = self._wbase + key * self._stride
                # A write past RLIMIT_FSIZE would be cut short (a torn value), or
                # raise SIGXFSZ: then the C core refuses it before writing (EFBIG).
                limit = _getrlimit(_RLIMIT_FSIZE)[0]
                try:
                    if (limit < 0 or off + vs <= limit) and os.pwrite(self._wfd, value, off) == vs:
                        return
                except OSError:
                    pass  # e.g. EPERM once frozen: the C core below gives the errno
            src: Any = value
        else:
            src = _readable_buffer(value, vs, "value")
        try:  # the export of the caller's buffer must not outlive the call: see _buffer_view
            _exact_ints(key, flags)
            try:
                rc = lib.bpfmap_update(h, key, src, flags)
            except (TypeError, OverflowError):
                raise _bad_args(key=(key, 32), flags=(flags, 64)) from None
        finally:
            if src is not value:
                ffi.release(src)
        if rc:
            raise error(rc, "update")

    def delete(self, key: int) -> None:
        """``BPF_MAP_DELETE_ELEM``: arrays refuse it (EINVAL), as in the kernel."""
        h = self._handle()
        _check_uint(key, 32, "key")
        rc = lib.bpfmap_delete(h, key)
        if rc:
            raise error(rc, "delete")

    def lookup_and_delete(self, key: int, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM``: arrays refuse it (ENOTSUPP)."""
        h = self._handle()
        _check_uint(key, 32, "key")
        _check_uint(flags, 64, "flags")
        buf = ffi.new("char[]", self._value_size)
        rc = lib.bpfmap_lookup_and_delete(h, key, buf, flags)
        if rc:
            raise error(rc, "lookup_and_delete")
        return ffi.unpack(buf, self._value_size)  # type: ignore[no-any-return]

    def get_next_key(self, key: int | None = None) -> int:
        """``BPF_MAP_GET_NEXT_KEY``; ``None`` (or an out-of-range key) starts at 0."""
        h = self._handle()
        nxt = ffi.new("uint32_t *")
        if key is None:
            rc = lib.bpfmap_get_next_key(h, ffi.NULL, nxt)
        else:
            cur = ffi.new("uint32_t *", _check_uint(key, 32, "key"))
            rc = lib.bpfmap_get_next_key(h, cur, nxt)
        if rc:
            raise error(rc, "get_next_key")
        return int(nxt[0])

    # -- batches ------------------------------------------------------------

    def lookup_batch(
        self,
        count: int | None = None,
        *,
        in_batch: int | None = None,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> Batch:
        """``BPF_MAP_LOOKUP_BATCH``: up to ``count`` (default: all) keys after ``in_batch``.

        The kernel's ENOENT ("no more keys", possibly with data) is returned as
        ``Batch.done``; any other failure raises OSError.
        """
        view = self._rview  # taken first: it keeps the mapping alive while we copy
        h = self._handle()
        n = h.max_entries if count is None else _check_uint(count, 32, "count")
        # No batch holds more than max_entries keys, and any count above that
        # behaves as max_entries + 1 (all keys, then ENOENT): allocate for that,
        # not for count (lookup_batch(2**32 - 1) would ask for 16 GiB of keys).
        n = min(n, int(h.max_entries) + 1)
        _check_uint(elem_flags, 64, "elem_flags")
        _check_uint(flags, 64, "flags")
        vs = self._value_size
        keys = array.array("I", [0]) * n  # filled by the C core
        # An emulated map with unpadded values: the C core decides (checks,
        # keys, count, ENOENT) without copying, and the values are copied once,
        # from the view into the new bytearray, instead of zero-fill + memcpy.
        direct = view is not _CLOSED_VIEW and self._stride == vs
        values = bytearray() if direct else bytearray(n * vs)
        cnt = ffi.new("uint32_t *", n)
        out = ffi.new("uint32_t *")
        inb = (
            ffi.NULL
            if in_batch is None
            else ffi.new("uint32_t *", _check_uint(in_batch, 32, "in_batch"))
        )
        rc = lib.bpfmap_lookup_batch(
            h, inb, out, ffi.from_buffer(_U32_ARRAY, keys),
            ffi.NULL if direct else ffi.from_buffer(values), cnt, elem_flags, flags,
        )
        if rc and rc != -errno.ENOENT:
            raise error(rc, "lookup_batch")
        got = int(cnt[0])
        del keys[got:]
        if not direct:
            del values[got * vs :]
        elif got:
            start = (int(out[0]) - got + 1) * vs  # keys[0] * vs: the C core copied none
            with memoryview(view) as whole:
                values = bytearray(whole[start : start + got * vs])
        return Batch(keys, values, int(out[0]) if got else None, rc == -errno.ENOENT)

    def lookup_batch_into(
        self,
        keys: Buffer,
        values: Buffer,
        *,
        in_batch: int | None = None,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> BatchCount:
        """``BPF_MAP_LOOKUP_BATCH`` into the caller's buffers, as the syscall does.

        ``keys``: a writable native ``uint32`` buffer (``array('I')``, a NumPy
        ``uint32`` array); its length is the batch's count. ``values``: a
        writable buffer of at least ``len(keys) * value_size`` bytes. Nothing is
        allocated, so a reused pair of buffers costs one copy of the values.
        """
        h = self._handle()
        if elem_flags is not _NO_FLAGS:
            _check_uint(elem_flags, 64, "elem_flags")
        if flags is not _NO_FLAGS:
            _check_uint(flags, 64, "flags")
        # count, out_batch and in_batch in one allocation: this call is for hot loops.
        io = ffi.new("uint32_t[3]")
        inb = ffi.NULL
        if in_batch is not None:
            io[2] = _check_uint(in_batch, 32, "in_batch")
            inb = io + 2
        key_buf, n = _u32_buffer(keys, writable=True)
        val_buf: Any = None
        cnt, out = io, io + 1
        try:  # no export of the caller's buffers may outlive the call: see _buffer_view
            val_buf = _writable_buffer(values, n * self._value_size, "values")
            cnt[0] = n
            # The C core copies straight from the map (emulated: one memcpy).
            rc = lib.bpfmap_lookup_batch(h, inb, out, key_buf, val_buf, cnt, elem_flags, flags)
        finally:
            ffi.release(key_buf)
            if val_buf is not None:
                ffi.release(val_buf)
        if rc and rc != -errno.ENOENT:
            raise error(rc, "lookup_batch")
        got = int(cnt[0])
        return BatchCount(got, int(out[0]) if got else None, rc == -errno.ENOENT)

    def batches(self, count: int = 4096) -> Iterator[Batch]:
        """Every key and value, ``count`` at a time, through ``lookup_batch``."""
        token: int | None = None
        while True:
            batch = self.lookup_batch(count, in_batch=token)
            if batch.keys:
                yield batch
            if batch.done or batch.out_batch is None:
                return
            token = batch.out_batch

    def update_batch(
        self,
        keys: Iterable[int] | Buffer,
        values: Buffer | Sequence[bytes],
        *,
        elem_flags: int = 0,
        flags: int = 0,
    ) -> int:
        """``BPF_MAP_UPDATE_BATCH``: returns the number of elements written.

        ``keys``: ints, or a buffer of native ``uint32`` (``array('I')``, a NumPy
        ``uint32`` array). ``values``: one buffer of ``len(keys) * value_size``
        bytes, or a sequence of ``value_size``-byte values. On failure the
        OSError carries ``.count``, the elements written before it (the kernel
        does not roll back).
        """
        h = self._handle()
        _check_uint(elem_flags, 64, "elem_flags")
        _check_uint(flags, 64, "flags")
        key_buf, n = _u32_buffer(keys)
        val_buf: Any = None
        try:  # no export of the caller's buffers may outlive the call: see _buffer_view
            vs = self._value_size
            if isinstance(values, (list, tuple)):
                for i, v in enumerate(values):
                    if len(v) != vs:
                        raise ValueError(f"values[{i}] must be {vs} bytes, got {len(v)}")
                values = b"".join(values)
            val_buf = _readable_buffer(values, n * vs, "values")
            cnt = ffi.new("uint32_t *", n)
            rc = lib.bpfmap_update_batch(h, key_buf, val_buf, cnt, elem_flags, flags)
        finally:
            ffi.release(key_buf)
            if val_buf is not None:
                ffi.release(val_buf)
        if rc:
            exc = error(rc, "update_batch")
            exc.count = int(cnt[0])  # type: ignore[attr-defined]
            raise exc
        return int(cnt[0])

    def delete_batch(
        self, keys: Iterable[int] | Buffer, *, elem_flags: int = 0, flags: int = 0
    ) -> int:
        """``BPF_MAP_DELETE_BATCH``: arrays refuse it (ENOTSUPP), as in the kernel."""
        h = self._handle()
        _check_uint(elem_flags, 64, "elem_flags")
        _check_uint(flags, 64, "flags")
        key_buf, n = _u32_buffer(keys)
        cnt = ffi.new("uint32_t *", n)
        try:  # the export of the caller's keys must not outlive the call: see _buffer_view
            rc = lib.bpfmap_delete_batch(h, key_buf, cnt, elem_flags, flags)
        finally:
            ffi.release(key_buf)
        if rc:
            exc = error(rc, "delete_batch")
            exc.count = int(cnt[0])  # type: ignore[attr-defined]
            raise exc
        return int(cnt[0])

    # -- freeze and mmap ----------------------------------------------------

    def freeze(self) -> None:
        """``BPF_MAP_FREEZE``: no more writes from userspace, permanently.

        EBUSY while any writable mapping of the map exists, in any process;
        EPERM on a second freeze or through a read-only handle.
        """
        rc = lib.bpfmap_freeze(self._handle())
        if rc:
            raise error(rc, "freeze")

    def mmap(
        self,
        *,
        writable: bool = True,
        shared: bool = True,
        offset: int = 0,
        length: int | None = None,
    ) -> MapRegion:
        """Map the values, as ``mmap()`` on a ``BPF_F_MMAPABLE`` map fd.

        ``offset`` and ``length`` are in bytes of the value area (offset 0 is
        value 0); ``length`` defaults to the rest of the area. Refusals carry
        the kernel's errno: EINVAL without BPF_F_MMAPABLE, for MAP_PRIVATE, an
        unaligned offset or a range past the values, or a read-only handle;
        EPERM for a writable mapping of a frozen map; EACCES for a writable
        mapping of a BPF_F_RDONLY_PROG map or through a read-only handle.
        """
        h = self._handle()
        offset = _check_uint(offset, 63, "offset")
        window = int(lib.bpfmap_mmap_window(h))
        if length is None:
            # The rest of the window; past its end the kernel's EINVAL decides.
            length = window - offset if offset < window else PAGE_SIZE
        length = _check_uint(length, 63, "length")
        fd = ffi.new("int *")
        file_offset = ffi.new("uint64_t *")
        rc = lib.bpfmap_mmap_check(h, bool(writable), bool(shared), offset, length, fd, file_offset)
        if rc:
            raise error(rc, "mmap")
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        try:
            region = MapRegion(
                fd[0],
                length,
                flags=_mmap.MAP_SHARED if shared else _mmap.MAP_PRIVATE,
                prot=prot,
                offset=file_offset[0],
            )
        except OSError as exc:  # the kernel's own refusal (kernel maps, or a racing freeze)
            raise OSError(exc.errno, f"mmap: {os.strerror(exc.errno or 0)}") from None
        region.map_offset = offset
        region.writable = bool(writable)
        region.value_size = int(h.value_size)
        region.elem_size = int(h.elem_size)
        region.max_entries = int(h.max_entries)
        return region

    # -- container protocol -------------------------------------------------

    def __len__(self) -> int:
        return self.max_entries

    def __getitem__(self, key: int) -> bytes:
        return self.lookup(key)

    def __setitem__(self, key: int, value: Buffer) -> None:
        self.update(key, value)

    def __delitem__(self, key: int) -> None:
        self.delete(key)

    def __iter__(self) -> Iterator[int]:
        """The keys, in ``get_next_key`` order."""
        key: int | None = None
        while True:
            try:
                key = self.get_next_key(key)
            except FileNotFoundError:
                return
            yield key

    def items(self) -> Iterator[tuple[int, bytes]]:
        for key in self:
            yield key, self.lookup(key)

    def typed(self, vtype: Any) -> TypedArray:
        """The map seen through a value type (a ctypes type or a NumPy dtype of exactly
        ``value_size`` bytes): ``t[i]`` typed, ``t.values()`` as one NumPy array."""
        from ._typedmap import TypedArray

        return TypedArray(self, vtype)


def _buffer_view(value: Any, what: str, writable: bool) -> tuple[int, bool]:
    """(nbytes, readonly) of a contiguous buffer; the view is released at once.

    The C core gets ``ffi.from_buffer(value)`` of the object itself, never of a
    memoryview: a cdata holding a memoryview's export can meet that memoryview
    in a reference cycle, and clearing the cycle would crash the interpreter.
    The caller's own object may be a memoryview, so every such cdata is also
    ``ffi.release()``d before the call returns or raises: a traceback would keep
    it alive, and ``except OSError as e: err = e`` makes that a cycle.
    """
    kind = "a writable bytes-like object" if writable else "a bytes-like object"
    try:
        view = memoryview(value)
    except TypeError:
        raise TypeError(f"{what} must be {kind}, not {type(value).__name__}") from None
    with view:
        if not view.c_contiguous:
            raise ValueError(f"{what} must be a contiguous buffer")
        if writable and view.readonly:
            raise TypeError(f"{what} must be writable")
        return view.nbytes, view.readonly


def _readable_buffer(value: Any, size: int, what: str) -> Any:
    # bytes and bytearray are contiguous: their length is their size (no view needed).
    t = type(value)
    nbytes = len(value) if t is bytes or t is bytearray else _buffer_view(value, what, False)[0]
    if nbytes != size:
        raise ValueError(f"{what} must be {size} bytes, got {nbytes}")
    return ffi.from_buffer(value)


def _writable_buffer(value: Any, size: int, what: str) -> Any:
    nbytes = len(value) if type(value) is bytearray else _buffer_view(value, what, True)[0]
    if nbytes < size:
        raise ValueError(f"{what} must hold at least {size} bytes, got {nbytes}")
    return ffi.from_buffer(_CHAR_ARRAY, value, True)


def _u32_buffer(keys: Any, writable: bool = False) -> tuple[Any, int]:
    """Keys as a C uint32_t array: native uint32 buffers are used in place.

    ``writable``: the C core fills them, so they must be a writable buffer.
    """
    if type(keys) is array.array and keys.typecode == "I" and keys.itemsize == 4:
        # The common case, without a memoryview: always contiguous and writable.
        return ffi.from_buffer(_U32_ARRAY, keys, writable), len(keys)
    try:
        view = memoryview(keys)
    except TypeError:
        if writable:
            raise TypeError(
                f"keys must be a writable uint32 buffer (array('I'), numpy uint32), "
                f"not {type(keys).__name__}"
            ) from None
        items = [_check_uint(k, 32, "key") for k in keys]
        arr = array.array("I", items)
        return ffi.from_buffer(_U32_ARRAY, arr), len(items)
    with view:
        native = ("I", "=I", "@I", "<I" if sys.byteorder == "little" else ">I")
        if view.format not in native or view.itemsize != 4:
            raise TypeError(f"a keys buffer must hold native uint32, not format {view.format!r}")
        if not view.c_contiguous:
            raise ValueError("a keys buffer must be contiguous")
        if writable and view.readonly:
            raise TypeError("a keys buffer must be writable")
        n = view.nbytes // 4
    return ffi.from_buffer(_U32_ARRAY, keys, writable), n


def _reduce_for_multiprocessing(m: ArrayMap) -> tuple[Any, tuple[Any, ...]]:
    """Pickle by passing the descriptor (multiprocessing: spawn, fork, forkserver, Pool).

    The receiving process gets its own descriptor of the same map, never a copy.
    """
    from multiprocessing.reduction import DupFd

    return (_rebuild, (DupFd(m.fd),))


def _register_for_multiprocessing(cls: type[ArrayMap]) -> None:
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.register(cls, _reduce_for_multiprocessing)


def _rebuild(dup: Any) -> ArrayMap:
    fd = dup.detach()
    try:
        # spawn passes the descriptor inheritable and forkserver/resource_sharer
        # receive it without MSG_CMSG_CLOEXEC: bpfmap's descriptors are close-on-exec.
        os.set_inheritable(fd, False)
        return ArrayMap.from_fd(fd)
    except BaseException:
        os.close(fd)
        raise


def kernel_unavailable_reason() -> str | None:
    """Why this process cannot use the kernel backend, or ``None`` when it can.

    ``if reason := bpfmap.kernel_unavailable_reason(): print(reason)``; it probes
    with a real ``BPF_MAP_CREATE`` (a one-entry array, closed at once).
    """
    rc = lib.bpfmap_kernel_available()
    if rc == 0:
        return None
    return f"bpf(BPF_MAP_CREATE) failed: {os.strerror(-rc)} (errno {-rc})"


_register_for_multiprocessing(ArrayMap)
