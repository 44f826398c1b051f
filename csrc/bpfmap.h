/* bpfmap C core: constants, then the declarations shared with cffi. */
#ifndef BPFMAP_H
#define BPFMAP_H

#include <stdint.h>

#define BPFMAP_BACKEND_EMULATED 0
#define BPFMAP_BACKEND_KERNEL 1

/* The kernel-internal errno that BPF returns for unsupported operations. */
#define BPFMAP_ENOTSUPP 524

/* Map flags, with the values of include/uapi/linux/bpf.h (headers may be older). */
#define BPFMAP_F_NUMA_NODE (1U << 2)
#define BPFMAP_F_RDONLY (1U << 3)
#define BPFMAP_F_WRONLY (1U << 4)
#define BPFMAP_F_RDONLY_PROG (1U << 7)
#define BPFMAP_F_WRONLY_PROG (1U << 8)
#define BPFMAP_F_MMAPABLE (1U << 10)
#define BPFMAP_F_PRESERVE_ELEMS (1U << 11)
#define BPFMAP_F_INNER_MAP (1U << 12)

#include "bpfmap_api.h"

/* csrc/emu_charge.c: memory and file-size limits of emulated maps. */
int emu_charge(int fd, uint64_t bytes);
int emu_fsize_check(uint64_t end);

#endif
