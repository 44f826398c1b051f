"""mmap: regions of a BPF_F_MMAPABLE map, and the views over them.

A ``MapRegion`` is an ``mmap.mmap`` over the values (offset, length, read-only
regions), outlives its map handle and the map's ``close()``, and exports buffers:
NumPy arrays with the element stride, ctypes structures over one value. Misuse
of ``mmap()`` and of the views is a ``TypeError``/``ValueError``; a closed map
under a live ndarray never crashes. Freeze against writable mappings is in
tests/test_freeze.py.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from conftest import errno_of, new_map

from bpfmap import BPF_F_MMAPABLE, ArrayMap, MapRegion

MM = BPF_F_MMAPABLE


def test_mmap_arg_misuse(m: ArrayMap) -> None:
    for arg in ("offset", "length"):
        with pytest.raises(TypeError, match=rf"{arg} must be an int, not str"):
            m.mmap(**{arg: "0"})
        with pytest.raises(ValueError, match=rf"{arg} must be in 0\.\.{2**63 - 1}, got -4096"):
            m.mmap(**{arg: -4096})
    with pytest.raises(TypeError, match=r"offset must be an int, not bool"):
        m.mmap(offset=False)


def test_mmap_region_basics(m: ArrayMap) -> None:
    m.update(1, b"wxyz")
    with m.mmap(writable=False) as r:
        assert isinstance(r, MapRegion)
        assert (r.map_offset, r.writable, r.value_size, r.elem_size) == (0, False, 4, 8)
        assert r[8:12] == b"wxyz"
        with pytest.raises(TypeError):
            r[0:1] = b"x"
        with pytest.raises(OSError) as info:
            r.resize(2 * len(r))
        assert info.value.errno == errno.EINVAL
    assert r.closed


def test_closing_keeps_regions(backend: str) -> None:
    m = ArrayMap(8, 4, flags=MM, backend=backend)
    m.update(3, b"12345678")
    r = m.mmap()
    m.close()
    with r:
        assert r[24:32] == b"12345678"
        r[0:8] = b"abcdefgh"
        assert r[0:8] == b"abcdefgh"


PAGE = mmap.PAGESIZE


def test_region_behaves_like_mmap(backend: str) -> None:
    m = new_map(backend, 12, 3)
    region = m.mmap()
    assert isinstance(region, mmap.mmap)
    assert len(region) == PAGE
    struct.pack_into("<I", region, 32, 0xDEADBEEF)  # value 2 starts at byte 32 (stride 16)
    assert m.lookup(2)[:4] == struct.pack("<I", 0xDEADBEEF)
    assert region[32:36] == struct.pack("<I", 0xDEADBEEF)
    view = memoryview(region)
    with pytest.raises(BufferError):
        region.close()
    view.release()
    region.close()
    assert region.closed
    with pytest.raises(ValueError):
        region[0]
    with m.mmap(writable=False) as ro:
        assert ro[32:36] == struct.pack("<I", 0xDEADBEEF)
        with pytest.raises(TypeError):
            ro[0:1] = b"x"
    assert ro.closed


def test_region_outlives_its_map_handle(backend: str) -> None:
    """K01: close(fd) while mapped: the map stays alive and the stores stay shared."""
    m = new_map(backend)
    other = ArrayMap.from_fd(os.dup(m.fd))
    region = m.mmap()
    m.close()
    struct.pack_into("<Q", region, 8, 99)
    assert struct.unpack("<Q", other.lookup(1))[0] == 99
    region.close()
    other.close()


def test_region_offset_and_length(backend: str) -> None:
    """M25/M26: a page at offset 4096 shows values 512.. of an 8-byte map."""
    m = new_map(backend)
    m.update(512, struct.pack("<Q", 7))
    with m.mmap(offset=PAGE, length=PAGE) as region:
        assert struct.unpack_from("<Q", region, 0)[0] == 7
    assert errno_of(lambda: m.mmap(offset=PAGE, length=2 * PAGE)) == errno.EINVAL
    assert errno_of(lambda: m.mmap(offset=100)) == errno.EINVAL
    assert errno_of(lambda: m.mmap(length=0)) == errno.EINVAL


def test_numpy_view_has_the_element_stride(backend: str) -> None:
    np = pytest.importorskip("numpy")
    m = new_map(backend, value_size=12, max_entries=5)
    for key in range(5):
        m.update(key, struct.pack("<Iq", key, -key))
    dtype = np.dtype([("key", "<u4"), ("neg", "<i8")], align=False)
    with m.mmap(writable=False) as region:
        arr = region.ndarray(dtype)
        assert arr.shape[0] >= 5
        assert list(arr["key"][:5]) == [0, 1, 2, 3, 4]
        assert list(arr["neg"][:5]) == [0, -1, -2, -3, -4]
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            region.ndarray("V16")  # larger than a value
        del arr
    rw = m.mmap()
    arr = rw.ndarray("<u4")
    arr[3] = 1234
    assert m.lookup(3)[:4] == struct.pack("<I", 1234)
    del arr
    rw.close()


class Counters(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


def test_ctypes_struct_over_a_value(backend: str) -> None:
    m = new_map(backend, value_size=16, max_entries=4)
    region = m.mmap()
    counters = region.struct(Counters, key=2)
    counters.packets = 3
    counters.bytes = 1500
    assert struct.unpack("<QQ", m.lookup(2)) == (3, 1500)
    with pytest.raises(BufferError):
        region.close()
    del counters
    region.close()
    with m.mmap(writable=False) as ro, pytest.raises(TypeError):
        ro.struct(Counters)


def small_map(backend: str, value_size: int = 8, max_entries: int = 8) -> ArrayMap:
    """An mmapable map of 8 values of 8 bytes unless told (new_map's default is 1024)."""
    return ArrayMap(value_size, max_entries, flags=BPF_F_MMAPABLE, backend=backend)


def test_ndarray_holds_the_mapping_like_an_export(backend: str) -> None:
    m = small_map(backend)
    region = m.mmap()
    arr = region.ndarray("<u8")
    with pytest.raises(BufferError):
        region.close()
    view = arr[2:]  # a view of the view holds it too
    del arr
    with pytest.raises(BufferError):
        region.close()
    view[1] = 7  # still mapped: no crash
    assert m[3] == (7).to_bytes(8, "little")
    del view
    region.close()
    assert region.closed


def test_close_under_a_live_ndarray_never_crashes(backend: str) -> None:
    """Before: close() unmapped under the array and the next read was SIGSEGV."""
    code = (
        "import bpfmap\n"
        f"m = bpfmap.ArrayMap(8, 8, flags=bpfmap.BPF_F_MMAPABLE, backend={backend!r})\n"
        "r = m.mmap(); a = r.ndarray('<u8')\n"
        "try:\n    r.close()\nexcept BufferError:\n    print('BufferError')\n"
        "print(int(a.sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["BufferError", "0"]


@pytest.mark.parametrize("max_entries", [1, 8, 511, 512, 513, 1000])
def test_ndarray_has_one_item_per_value(backend: str, max_entries: int) -> None:
    m = small_map(backend, 8, max_entries)
    region = m.mmap()
    arr = region.ndarray("<u8")
    assert arr.shape == (max_entries,)
    arr[:] = np.arange(max_entries, dtype="<u8")
    assert m[max_entries - 1] == (max_entries - 1).to_bytes(8, "little")
    del arr
    region.close()


def test_ndarray_of_a_window_past_the_first_page(backend: str) -> None:
    m = small_map(backend, 8, 600)  # values 512..599 on the second page
    region = m.mmap(offset=PAGE)
    arr = region.ndarray("<u8")
    assert arr.shape == (600 - PAGE // 8,)
    arr[0] = 9
    assert m[PAGE // 8] == (9).to_bytes(8, "little")
    del arr
    region.close()


def test_struct_refuses_keys_past_max_entries(backend: str) -> None:
    m = small_map(backend, 8, 8)
    region = m.mmap()
    with pytest.raises(ValueError):
        region.struct(ctypes.c_uint64, key=8)
    s = region.struct(ctypes.c_uint64, key=7)
    s.value = 5
    assert m[7] == (5).to_bytes(8, "little")
    del s
    region.close()


def test_ndarray_without_numpy_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import bpfmap\n"
        "m = bpfmap.ArrayMap(8, 8, flags=bpfmap.BPF_F_MMAPABLE)\n"
        "r = m.mmap()\n"
        "try:\n    r.ndarray()\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install numpy" in out.stdout
