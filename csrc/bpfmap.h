/* bpfmap C core: the public declarations, shared with cffi (bpfmap_api.h holds
 * them all, constants included, as an enum that cffi reads too). */
#ifndef BPFMAP_H
#define BPFMAP_H

#include <stdint.h>

#include "bpfmap_api.h"

/* csrc/emu_charge.c: memory and file-size limits of emulated maps. */
int emu_charge(int fd, uint64_t bytes);
int emu_fsize_check(uint64_t end);

#endif
