"""``bpfmap bench``: both backends against each other, Python's shared memory and the peers.

Every case is one operation on one backend:

``emulated``
    the emulated map through the API (and its :class:`~bpfmap.MapRegion`);
``kernel``
    a real kernel map through the ``bpf()`` syscalls;
``kernel-mmap``
    a real kernel map through its ``mmap()`` (a :class:`~bpfmap.MapRegion`);
``shared_memory``
    :mod:`multiprocessing.shared_memory`, the plain-Python baseline;
``mmap``
    (region cases only) Python's own :class:`mmap.mmap` of a kernel map's fd,
    the reference a :class:`~bpfmap.MapRegion` must match;
``reference``
    a no-op cffi call and a NumPy copy (memcpy bandwidth).

Beside them, in tables of their own: the peers a user would pick instead (libbpf through
cffi, a ctypes ``bpf()`` wrapper, pylibbpf, bpfmaps, bcc: :mod:`.peers`), the program side
(a BPF program's map accesses timed by ``BPF_PROG_TEST_RUN``: :mod:`.programs`), ``map dump``
against bpftool (:mod:`.dump`) and, with ``--full``, the scale tables (:mod:`.scale`).

Timing: :func:`time.perf_counter_ns` around a compiled loop of the statement
(as :mod:`timeit` does, garbage collection off), the loop count calibrated so
that one repeat lasts a few milliseconds, the median of several repeats. An
operation with no meaning for a backend is skipped with the reason; so is every
kernel case when ``bpf()`` is unavailable. The same catalogue of cases feeds the
pytest-benchmark suite in ``benchmarks/``.

The package: :mod:`.core` (cases, results, resources), :mod:`.cases` (the catalogue),
:mod:`.stream` (processes), :mod:`.runner`, :mod:`.report`, :mod:`.plot` and
:mod:`.command` (``main``).
"""

from __future__ import annotations

from .cases import cases
from .command import main
from .core import Case, Prepared, Result, Skip
from .runner import run_cases

__all__ = ["Case", "Prepared", "Result", "Skip", "cases", "main", "run_cases"]
