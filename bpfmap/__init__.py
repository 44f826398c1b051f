"""bpfmap: BPF_MAP_TYPE_ARRAY with mmap(), faithful to the kernel.

``ArrayMap(value_size, max_entries, backend="emulated")`` lives in real shared
memory and needs no privileges; ``backend="kernel"`` drives the real ``bpf()``
syscall through the same API.
"""

from . import _bindings  # noqa: F401  (first: says what to do when the C core is not built)
from ._constants import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_CLONE,
    BPF_F_INNER_MAP,
    BPF_F_LINK,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NO_COMMON_LRU,
    BPF_F_NO_PREALLOC,
    BPF_F_NO_USER_CONV,
    BPF_F_NUMA_NODE,
    BPF_F_PATH_FD,
    BPF_F_PRESERVE_ELEMS,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_SEGV_ON_FAULT,
    BPF_F_STACK_BUILD_ID,
    BPF_F_TOKEN_FD,
    BPF_F_VTYPE_BTF_OBJ_FD,
    BPF_F_WRONLY,
    BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED,
    BPF_MAP_TYPE_ARRAY,
    BPF_NOEXIST,
    ENOTSUPP,
)
from ._map import (
    ArrayMap,
    Batch,
    BatchCount,
    BatchError,
    MapInfo,
    MapRegion,
    kernel_unavailable_reason,
)
from ._object import BpfObject
from ._program import Link, Program, TestRun
from ._section import Section, Variable
from ._typedmap import TypedArray
from ._version import __version__ as __version__

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_F_CLONE",
    "BPF_F_INNER_MAP",
    "BPF_F_LINK",
    "BPF_F_LOCK",
    "BPF_F_MMAPABLE",
    "BPF_F_NO_COMMON_LRU",
    "BPF_F_NO_PREALLOC",
    "BPF_F_NO_USER_CONV",
    "BPF_F_NUMA_NODE",
    "BPF_F_PATH_FD",
    "BPF_F_PRESERVE_ELEMS",
    "BPF_F_RDONLY",
    "BPF_F_RDONLY_PROG",
    "BPF_F_SEGV_ON_FAULT",
    "BPF_F_STACK_BUILD_ID",
    "BPF_F_TOKEN_FD",
    "BPF_F_VTYPE_BTF_OBJ_FD",
    "BPF_F_WRONLY",
    "BPF_F_WRONLY_PROG",
    "BPF_F_ZERO_SEED",
    "BPF_MAP_TYPE_ARRAY",
    "BPF_NOEXIST",
    "ENOTSUPP",
    "ArrayMap",
    "Batch",
    "BatchCount",
    "BatchError",
    "BpfObject",
    "Link",
    "Program",
    "Section",
    "TestRun",
    "TypedArray",
    "Variable",
    "MapInfo",
    "MapRegion",
    "kernel_unavailable_reason",
]
