"""Processes: one map shared by several processes, on both backends.

A map passed to a child by multiprocessing (fork, spawn, forkserver; a Pool's
workers; subclasses of ArrayMap too) or as a descriptor over a unix socket is the
same map: what the child stores, the parent reads. Freeze across processes is in
tests/test_freeze.py, pins across processes in tests/test_pins.py, other users in
tests/test_security.py.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import socket
import struct

import pytest
from conftest import new_map

from bpfmap import BPF_F_MMAPABLE, ArrayMap


def small_map(backend: str, value_size: int = 8, max_entries: int = 8) -> ArrayMap:
    """An mmapable map of 8 values of 8 bytes unless told (new_map's default is 1024)."""
    return ArrayMap(value_size, max_entries, flags=BPF_F_MMAPABLE, backend=backend)


def _child_writes(m: ArrayMap) -> None:
    m[2] = b"from-kid"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_still_passes_the_map(backend: str, method: str) -> None:
    m = small_map(backend)
    ctx = mp.get_context(method)
    proc = ctx.Process(target=_child_writes, args=(m,))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert m[2] == b"from-kid"


def test_subclasses_pass_through_multiprocessing_too() -> None:
    class Mine(ArrayMap):
        __slots__ = ()

    base = ArrayMap(8, 8)
    m = Mine.from_fd(os.dup(base.fd))
    from multiprocessing.reduction import ForkingPickler

    other = ForkingPickler.loads(ForkingPickler.dumps(m))
    m[0] = b"subclass"
    assert other[0] == b"subclass"
    with pytest.raises(TypeError):
        pickle.dumps(m)


def _child_update(m: ArrayMap, key: int, value: bytes) -> None:
    m.update(key, value)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pickled_map_is_the_same_map(backend: str, method: str) -> None:
    m = new_map(backend)
    ctx = mp.get_context(method)
    proc = ctx.Process(target=_child_update, args=(m, 5, b"childval"))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert m.lookup(5) == b"childval"


def _pool_task(args: tuple[ArrayMap, int]) -> bytes:
    m, key = args
    m.update(key, struct.pack("<Q", key * 10))
    return m.lookup(key)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_share_the_map(backend: str, method: str) -> None:
    m = new_map(backend)
    with mp.get_context(method).Pool(2) as pool:
        got = pool.map(_pool_task, [(m, k) for k in range(8)])
    assert got == [struct.pack("<Q", k * 10) for k in range(8)]
    assert [struct.unpack("<Q", m.lookup(k))[0] for k in range(8)] == [k * 10 for k in range(8)]


def test_from_fd_over_a_unix_socket(backend: str) -> None:
    m = new_map(backend)
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            left.close()
            _, fds, _, _ = socket.recv_fds(right, 8, 1)
            child_map = ArrayMap.from_fd(fds[0])
            child_map.update(3, b"via-scm!")
            code = 0
        finally:
            os._exit(code)
    right.close()
    socket.send_fds(left, [b"map"], [m.fd])
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert m.lookup(3) == b"via-scm!"
