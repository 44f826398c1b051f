"""The one binding of the C core: the only module that imports ``bpfmap._core``.

The C core (csrc/, cffi API mode) returns 0 or ``-errno``, as the kernel does;
this module turns ``-errno`` into ``OSError(errno, "what: strerror")``, so that
callers see ``FileNotFoundError``, ``PermissionError``, ... with the kernel's
``.errno``, and a failed batch into a :class:`BatchError` that also carries
``.count``. The constants are read from the C header (the enum in
csrc/bpfmap_api.h), never repeated here.

``ffi`` and ``lib`` are re-exported for the few callers that marshal C structures
themselves (the map layer, the CLI, the conformance session); they raise through
:func:`error` and :func:`batch_error`.
"""

from __future__ import annotations

import mmap as _mmap
import os
from typing import Any


def _no_core(init_file: str) -> ImportError:
    """The ImportError for a bpfmap package whose ``_core`` extension is missing."""
    pkg = os.path.dirname(os.path.abspath(init_file))
    tree = os.path.dirname(pkg)
    if os.path.exists(os.path.join(tree, "csrc", "bpfmap.c")):
        return ImportError(
            f"bpfmap is being imported from its source tree ({tree}), where its C core "
            "(bpfmap._core) is not built. To use the installed bpfmap, run Python from "
            "another directory; to work on the source tree, build it in place with "
            "'pip install -e .' in that directory.",
            name="bpfmap._core",
        )
    return ImportError(
        f"bpfmap's C core (bpfmap._core) is missing from {pkg}: the installation is "
        "incomplete. Reinstall it: pip install --force-reinstall bpfmap",
        name="bpfmap._core",
    )



try:  # the C core, compiled by pip when bpfmap is installed
    from ._core import ffi, lib
except ModuleNotFoundError as _exc:
    if _exc.name != "bpfmap._core":
        raise
    # What ``import bpfmap`` says when the C core is not there (as NumPy says it): a
    # clone's bpfmap/ shadows an installed bpfmap when Python runs from the clone's root.
    raise _no_core(__file__) from None

__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "ENOTSUPP",
    "PAGE_SIZE",
    "BatchError",
    "batch_error",
    "check",
    "constant",
    "elem_size",
    "error",
    "ffi",
    "kernel_unavailable_reason",
    "lib",
    "obj_get",
    "obj_pin",
    "values_size",
]

PAGE_SIZE = _mmap.PAGESIZE


def constant(name: str) -> int:
    """``BPF_X`` (or ``ENOTSUPP``) as the C header defines it (``BPFMAP_X``)."""
    c_name = "BPFMAP_" + (name[4:] if name.startswith("BPF_") else name)
    return int(getattr(lib, c_name))


#: The kernel-internal errno BPF returns for unsupported operations; libc has no name for it.
ENOTSUPP = constant("ENOTSUPP")

#: Backend names and the C core's ids.
BACKENDS = {
    "emulated": int(lib.BPFMAP_BACKEND_EMULATED),
    "kernel": int(lib.BPFMAP_BACKEND_KERNEL),
}
BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}


def _strerror(e: int) -> str:
    return "Operation not supported (ENOTSUPP)" if e == ENOTSUPP else os.strerror(e)


def error(rc: int, what: str) -> OSError:
    """The OSError for a C core result ``-errno``: ``OSError(errno, "what: strerror")``."""
    e = -rc
    return OSError(e, f"{what}: {_strerror(e)}")


def check(rc: int, what: str) -> int:
    """``rc`` if it is not negative, else raise :func:`error`."""
    if rc < 0:
        raise error(rc, what)
    return rc


class BatchError(OSError):
    """A failed batch operation: ``.errno`` as the kernel's, and ``.count``, the
    elements processed before the failure (the kernel's ``attr->batch.count``; it
    does not roll back).

    The instance is also the errno's own OSError subclass (a batch EPERM is a
    :class:`PermissionError`), as :func:`error` gives for the other calls.
    """

    count: int

    def __init__(self, errno: int, strerror: str, count: int = 0) -> None:
        super().__init__(errno, strerror)
        self.count = count

    def __reduce__(self) -> tuple[Any, ...]:
        what = (self.strerror or "").split(": ", 1)[0]
        return (batch_error, (-(self.errno or 0), what, self.count))


_batch_classes: dict[type[OSError], type[BatchError]] = {OSError: BatchError}


def _batch_class(e: int) -> type[BatchError]:
    base = type(OSError(e, ""))  # what the errno maps to: PermissionError, ...
    cls = _batch_classes.get(base)
    if cls is None:
        cls = type(f"Batch{base.__name__}", (BatchError, base), {"__module__": __name__})
        _batch_classes[base] = cls
    return cls


def batch_error(rc: int, what: str, count: int) -> BatchError:
    """The BatchError for a C core batch result ``-errno`` after ``count`` elements."""
    e = -rc
    return _batch_class(e)(e, f"{what}: {_strerror(e)}", count)


# -- the value layout (csrc/layout.h) -------------------------------------


def elem_size(value_size: int) -> int:
    """The stride of values in a map: ``round_up(value_size, 8)``."""
    return int(lib.bpfmap_elem_size(value_size))


def values_size(value_size: int, max_entries: int) -> int:
    """The page-aligned value area: what ``mmap()`` of the map may cover."""
    return int(lib.bpfmap_values_size(value_size, max_entries, PAGE_SIZE))


# -- kernel objects by path -------------------------------------------------


def obj_pin(fd: int, path: str) -> None:
    """``BPF_OBJ_PIN``."""
    check(lib.bpfmap_obj_pin(fd, os.fsencode(path)), f"pin {path}")


def obj_get(path: str, file_flags: int) -> int:
    """``BPF_OBJ_GET``: a new descriptor."""
    return check(lib.bpfmap_obj_get(os.fsencode(path), file_flags), f"open pinned {path}")


def kernel_unavailable_reason() -> str | None:
    """Why this process cannot use the kernel backend, or ``None`` when it can.

    ``if reason := bpfmap.kernel_unavailable_reason(): print(reason)``; it probes
    with a real ``BPF_MAP_CREATE`` (a one-entry array, closed at once).
    """
    rc = lib.bpfmap_kernel_available()
    if rc == 0:
        return None
    return f"bpf(BPF_MAP_CREATE) failed: {os.strerror(-rc)} (errno {-rc})"
