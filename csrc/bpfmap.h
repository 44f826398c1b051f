/* bpfmap C core: the public declarations, shared with cffi (bpfmap_api.h holds
 * them all, constants included, as an enum that cffi reads too). */
#ifndef BPFMAP_H
#define BPFMAP_H

#include <stdint.h>

#include "bpfmap_api.h"

#endif
