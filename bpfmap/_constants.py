"""The kernel's constants (include/uapi/linux/bpf.h), as the C core defines them.

The values live once, in csrc/bpfmap_api.h; they are read here through cffi.
"""

from __future__ import annotations

from ._bindings import ENOTSUPP as ENOTSUPP
from ._bindings import constant as _c

# BPF_MAP_UPDATE_ELEM flags
BPF_ANY = _c("BPF_ANY")
BPF_NOEXIST = _c("BPF_NOEXIST")
BPF_EXIST = _c("BPF_EXIST")
BPF_F_LOCK = _c("BPF_F_LOCK")

# BPF_MAP_CREATE map_flags
BPF_F_NO_PREALLOC = _c("BPF_F_NO_PREALLOC")
BPF_F_NO_COMMON_LRU = _c("BPF_F_NO_COMMON_LRU")
BPF_F_NUMA_NODE = _c("BPF_F_NUMA_NODE")
BPF_F_RDONLY = _c("BPF_F_RDONLY")
BPF_F_WRONLY = _c("BPF_F_WRONLY")
BPF_F_STACK_BUILD_ID = _c("BPF_F_STACK_BUILD_ID")
BPF_F_ZERO_SEED = _c("BPF_F_ZERO_SEED")
BPF_F_RDONLY_PROG = _c("BPF_F_RDONLY_PROG")
BPF_F_WRONLY_PROG = _c("BPF_F_WRONLY_PROG")
BPF_F_CLONE = _c("BPF_F_CLONE")
BPF_F_MMAPABLE = _c("BPF_F_MMAPABLE")
BPF_F_PRESERVE_ELEMS = _c("BPF_F_PRESERVE_ELEMS")
BPF_F_INNER_MAP = _c("BPF_F_INNER_MAP")
BPF_F_LINK = _c("BPF_F_LINK")
BPF_F_PATH_FD = _c("BPF_F_PATH_FD")
BPF_F_VTYPE_BTF_OBJ_FD = _c("BPF_F_VTYPE_BTF_OBJ_FD")
BPF_F_TOKEN_FD = _c("BPF_F_TOKEN_FD")
BPF_F_SEGV_ON_FAULT = _c("BPF_F_SEGV_ON_FAULT")
BPF_F_NO_USER_CONV = _c("BPF_F_NO_USER_CONV")

BPF_MAP_TYPE_ARRAY = _c("BPF_MAP_TYPE_ARRAY")
