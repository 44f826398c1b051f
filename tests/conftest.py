"""Shared fixtures: the kernel backend is mandatory in CI, skipped with a reason elsewhere."""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bpfmap
from bpfmap import BPF_F_MMAPABLE, ArrayMap

KERNEL_UNAVAILABLE = bpfmap.kernel_unavailable_reason()
IN_CI = os.environ.get("CI", "").lower() == "true"


#: The stress family: hostile input, crashes, concurrency, properties. They carry the
#: ``stress`` marker so ``python -m pytest tests -m "not stress"`` is a fast inner loop;
#: CI and the README's command run everything.
STRESS_MODULES = frozenset(
    {"test_hostile", "test_object_hostile", "test_crashes", "test_concurrency", "test_properties"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__ in STRESS_MODULES:
            item.add_marker(pytest.mark.stress)


def require_kernel() -> None:
    """Skip (or, under CI=true, fail) when this process cannot use bpf()."""
    if KERNEL_UNAVAILABLE is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the kernel backend is unavailable: {KERNEL_UNAVAILABLE}")
    pytest.skip(f"kernel backend unavailable: {KERNEL_UNAVAILABLE}")


@pytest.fixture
def kernel() -> None:
    require_kernel()


@pytest.fixture(params=["emulated", "kernel"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "kernel":
        require_kernel()
    return str(request.param)


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("errno", n) or ("raise", type name): what a call did."""
    try:
        return ("ok", fn())
    except OSError as exc:
        return ("errno", exc.errno)
    except (TypeError, ValueError) as exc:
        return ("raise", type(exc).__name__)


def both(make: Callable[[str], Any], op: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Run ``op`` on a map made by ``make(backend)`` on each backend; return both outcomes."""
    require_kernel()
    results = []
    for be in ("emulated", "kernel"):
        made = outcome(lambda be=be: make(be))
        if made[0] != "ok":
            results.append(("create", made))
            continue
        m = made[1]
        try:
            results.append(outcome(lambda m=m: op(m)))
        finally:
            if hasattr(m, "close"):
                m.close()
    return results[0], results[1]


# -- helpers the map tests share -----------------------------------------------

PAGE = mmap.PAGESIZE
MM = BPF_F_MMAPABLE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


@pytest.fixture
def m(backend: str) -> Iterator[ArrayMap]:
    mp = ArrayMap(4, 4, flags=MM, backend=backend)
    try:
        yield mp
    finally:
        mp.close()


def new_map(backend: str, value_size: int = 8, max_entries: int = 1024, flags: int = 0) -> ArrayMap:
    return ArrayMap(value_size, max_entries, flags=flags | BPF_F_MMAPABLE, backend=backend)


def errno_of(fn: Any) -> int:
    try:
        fn()
    except OSError as exc:
        return int(exc.errno or 0)
    return 0


def address(region: Any) -> int:
    """The start address of a mapping (the temporary export is released at once)."""
    from bpfmap._buffers import address_of

    return address_of(region)


def mprotect(region: Any, prot: int, length: int = PAGE) -> int:
    rc = libc.mprotect(address(region), length, prot)
    return 0 if rc == 0 else ctypes.get_errno()
