"""The Python API: :class:`ArrayMap`, a thin layer over the C core.

The C core (csrc/, through :mod:`bpfmap._bindings`) returns 0 or -errno,
exactly as the kernel would; the bindings turn -errno into ``OSError(errno,
message)`` (so callers see FileNotFoundError, PermissionError, ...), and this
layer turns Python-level misuse into TypeError/ValueError.

An ArrayMap is a handle (:mod:`bpfmap._handle`) with the element operations
(:mod:`bpfmap._elements`) and the batches (:mod:`bpfmap._batches`); this module
adds creation, adoption, pinning, pickling, freeze and mmap.
"""

from __future__ import annotations

import errno
import mmap as _mmap
import os
from typing import TYPE_CHECKING, Any

from . import _constants as C
from ._args import check_uint, create_hint, name_bytes
from ._batches import Batch as Batch
from ._batches import BatchCount as BatchCount
from ._batches import BatchOps
from ._bindings import BACKENDS, PAGE_SIZE, error, ffi, lib
from ._bindings import BatchError as BatchError
from ._bindings import kernel_unavailable_reason as kernel_unavailable_reason
from ._elements import ElementOps
from ._fastpath import OFF
from ._handle import MapInfo as MapInfo
from ._region import MapRegion as MapRegion

if TYPE_CHECKING:
    from ._typedmap import TypedArray

__all__ = [
    "PAGE_SIZE",
    "ArrayMap",
    "Batch",
    "BatchCount",
    "BatchError",
    "MapInfo",
    "MapRegion",
    "error",
    "kernel_unavailable_reason",
]


class ArrayMap(ElementOps, BatchOps):
    """A ``BPF_MAP_TYPE_ARRAY``: emulated in shared memory, or a real kernel map.

    ``backend="emulated"`` needs no privileges; ``backend="kernel"`` creates the
    map with the ``bpf()`` syscall. Both give the same bytes and the same errno
    for every operation.
    """

    __slots__ = ()

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
        self._h = None
        self._fast = OFF
        self._spare = []
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'emulated' or 'kernel', not {backend!r}")
        for what, value in (
            ("value_size", value_size),
            ("max_entries", max_entries),
            ("flags", flags),
            ("key_size", key_size),
        ):
            check_uint(value, 32, what)
        raw_name = name_bytes(name)
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
            exc = error(rc, "map create")
            hint = create_hint(key_size, value_size, max_entries, flags, raw_name)
            if hint and exc.errno == errno.EINVAL:
                exc = OSError(exc.errno, f"{exc.strerror} ({hint})")
            raise exc
        self._adopt(raw)

    @classmethod
    def from_fd(cls, fd: int) -> ArrayMap:
        """Adopt a map descriptor (emulated memfd or kernel bpf map fd).

        The new map owns ``fd`` and closes it; on failure the caller keeps it.
        """
        check_uint(fd, 31, "fd")
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
        """Pin the map at ``path``: it lives on until the last link to the pin is removed.

        Kernel maps: ``BPF_OBJ_PIN`` on bpffs (the kernel's EPERM elsewhere,
        EEXIST if the path exists). Emulated maps: any path outside bpffs, a pin
        file (mode 0600) that the user's holder process serves to its owner only;
        renames and hard links keep it, as on bpffs, and the holder lets the map go
        once the file's last link is removed (docs/emulation.md).
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
        offset = check_uint(offset, 63, "offset")
        window = int(lib.bpfmap_mmap_window(h))
        if length is None:
            # The rest of the window; past its end the kernel's EINVAL decides.
            length = window - offset if offset < window else PAGE_SIZE
        length = check_uint(length, 63, "length")
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

    def typed(self, vtype: Any) -> TypedArray:
        """The map seen through a value type (a ctypes type or a NumPy dtype of exactly
        ``value_size`` bytes): ``t[i]`` typed, ``t.values()`` as one NumPy array."""
        from ._typedmap import TypedArray

        return TypedArray(self, vtype)


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


_register_for_multiprocessing(ArrayMap)
