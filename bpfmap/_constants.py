"""Constants with the values of the kernel's include/uapi/linux/bpf.h."""

from __future__ import annotations

# BPF_MAP_UPDATE_ELEM flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# BPF_MAP_CREATE map_flags
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_STACK_BUILD_ID = 1 << 5
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_CLONE = 1 << 9
BPF_F_MMAPABLE = 1 << 10
BPF_F_PRESERVE_ELEMS = 1 << 11
BPF_F_INNER_MAP = 1 << 12
BPF_F_LINK = 1 << 13
BPF_F_PATH_FD = 1 << 14
BPF_F_VTYPE_BTF_OBJ_FD = 1 << 15
BPF_F_TOKEN_FD = 1 << 16
BPF_F_SEGV_ON_FAULT = 1 << 17
BPF_F_NO_USER_CONV = 1 << 18

BPF_MAP_TYPE_ARRAY = 2

#: The kernel-internal errno BPF returns for unsupported operations; libc has no name for it.
ENOTSUPP = 524
