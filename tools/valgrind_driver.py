"""A tour of the whole API for valgrind memcheck (tools/valgrind.sh): every C core entry
point, success and error paths, regions, batches, adoption of foreign memfds, pins,
threads, and the exception/memoryview cycles that once crashed the garbage collector."""

from __future__ import annotations

import array
import fcntl
import gc
import mmap
import os
import tempfile
import threading

import bpfmap
from bpfmap import (
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY,
    BPF_NOEXIST,
    ArrayMap,
)

PAGE = mmap.PAGESIZE


def attempt(fn, *args, **kw):  # type: ignore[no-untyped-def]
    try:
        return fn(*args, **kw)
    except (OSError, TypeError, ValueError, BufferError):
        return None


def tour(backend: str) -> int:
    calls = 0
    for vs, n, flags in [(8, 1024, BPF_F_MMAPABLE), (13, 37, BPF_F_MMAPABLE), (4096, 3, 0),
                         (1, 1, BPF_F_MMAPABLE | BPF_F_RDONLY_PROG)]:
        m = ArrayMap(vs, n, flags=flags, name="vg", backend=backend)
        buf = bytearray(vs + 8)
        for key in (0, n - 1, n, 2**32 - 1):
            for fl in (0, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK, 1 << 40):
                attempt(m.update, key, bytes([key & 0xFF]) * vs, fl)
                attempt(m.update, key, memoryview(bytearray(vs)), fl)
                attempt(m.lookup, key, fl)
                attempt(m.lookup_into, key, buf, fl)
                attempt(m.lookup_into, key, memoryview(buf), fl)
                attempt(m.lookup_and_delete, key, fl)
                calls += 6
            attempt(m.delete, key)
            attempt(m.get_next_key, key)
            calls += 2
        attempt(m.get_next_key)
        for count in (None, 0, 1, n, n + 1, 2**32 - 1):
            for inb in (None, 0, n - 1, n):
                attempt(m.lookup_batch, count, in_batch=inb)
                calls += 1
            if count is not None and count <= n + 1:
                out_keys = array.array("I", [0]) * count
                for out in (bytearray(vs * count), bytearray(max(vs * count - 1, 0))):
                    attempt(m.lookup_batch_into, out_keys, out)
                    attempt(m.lookup_batch_into, out_keys, out, in_batch=n - 1)
                    calls += 2
        list(m.batches(7))
        keys = array.array("I", range(n))
        attempt(m.update_batch, keys, bytes(vs * n))
        attempt(m.update_batch, list(range(n + 1)), [bytes(vs)] * (n + 1))
        attempt(m.update_batch, memoryview(keys), bytes(vs * n - 1))
        attempt(m.update_batch, keys, bytes(vs * n), elem_flags=BPF_F_LOCK)
        attempt(m.delete_batch, keys)
        m.info()
        repr(m)
        calls += 8
        regions = [attempt(m.mmap), attempt(m.mmap, writable=False),
                   attempt(m.mmap, offset=PAGE), attempt(m.mmap, length=2**40),
                   attempt(m.mmap, shared=False)]
        for r in regions:
            if r is not None:
                first = r[0:1]
                if r.writable:
                    r[0:1] = first
                    attempt(r.ndarray, "<u1")
                r.close()
        calls += 5
        other = ArrayMap.from_fd(os.dup(m.fd))
        other.lookup(0)
        other.close()
        attempt(m.freeze)
        attempt(m.freeze)
        attempt(m.update, 0, bytes(vs))
        assert m.frozen or flags & BPF_F_RDONLY_PROG or not flags
        m.close()
        calls += 6
    for flag in (BPF_F_RDONLY, BPF_F_WRONLY):
        h = ArrayMap(8, 4, flags=BPF_F_MMAPABLE | flag, backend=backend)
        attempt(h.lookup, 0)
        attempt(h.update, 0, bytes(8))
        attempt(h.mmap)
        attempt(h.mmap, writable=False)
        attempt(h.freeze)
        h.close()
        calls += 6
    return calls


def foreign_memfds() -> int:
    """Adopted memfds: valid, unsealed, truncated headers, garbage."""
    good = ArrayMap(8, 4)
    data = os.pread(good.fd, 2 * PAGE, 0)
    calls = 0
    for seals, body in [(fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK, data), (0, data),
                        (fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK, data[:PAGE]),
                        (fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK, os.urandom(2 * PAGE)),
                        (0, b"")]:
        fd = os.memfd_create("vg", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, body)
        if seals:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        m = attempt(ArrayMap.from_fd, fd)
        if m is None:
            os.close(fd)
        else:
            m.lookup(3)
            m.close()
        calls += 1
    r, w = os.pipe()
    attempt(ArrayMap.from_fd, r)
    os.close(r)
    os.close(w)
    return calls + 1


def cycles() -> int:
    """A failed call's traceback in a cycle with the caller's memoryview, then gc."""
    m = ArrayMap(8, 4)
    m.freeze()
    for _ in range(20):
        mv = memoryview(bytearray(8))
        try:
            m.update(0, mv)
        except OSError as e:
            err = e  # noqa: F841 - the cycle: frame -> err -> traceback -> frame
        try:
            m.update_batch(memoryview(array.array("I", [0, 9])), mv)
        except (OSError, ValueError) as e:
            err = e  # noqa: F841
    gc.collect()
    return 40


def threads_and_close() -> int:
    m = ArrayMap(16, 64, flags=BPF_F_MMAPABLE)

    def hammer() -> None:
        for i in range(300):
            try:
                m.update(i % 64, bytes(16))
                m.lookup(i % 64)
                m.lookup_batch(8)
                m.mmap(writable=bool(i % 2)).close()
            except ValueError:
                return

    ts = [threading.Thread(target=hammer) for _ in range(3)]
    for t in ts:
        t.start()
    m.close()
    for t in ts:
        t.join()
    return 3 * 300 * 4


def pins() -> int:
    with tempfile.TemporaryDirectory() as d:
        m = ArrayMap(8, 4)
        path = os.path.join(d, "pin")
        m.pin(path)
        ArrayMap.open_pinned(path).lookup(0)
        ArrayMap.open_pinned(path, readonly=True).lookup(0)
        assert attempt(m.pin, path) is None
        os.unlink(path)
        assert attempt(ArrayMap.open_pinned, path) is None
    return 5


def main() -> None:
    calls = tour("emulated")
    if bpfmap.kernel_unavailable_reason() is None:
        calls += tour("kernel")
    calls += foreign_memfds() + cycles() + threads_and_close() + pins()
    gc.collect()
    print(f"valgrind driver: {calls} calls done")


if __name__ == "__main__":
    main()
