/*
 * libFuzzer harness for the eBPF interpreter (csrc/vm_load.c, vm.c, vm_helpers.c): arbitrary
 * bytecode, loaded against a table of three array maps (one writable one-element map for
 * the map-value pseudo-loads, a BPF_F_RDONLY_PROG one, a frozen four-element one with
 * padding in its stride) and run on a context and a packet. Under ASan/UBSan any access
 * outside those regions, any undefined behaviour or leak is a crash; a refusal (-errno)
 * is a normal outcome. Built and run by tools/fuzz_vm.sh.
 *
 * Input: byte 0 picks the argument r1 (0: the context, 1: the packet's xdp_md, 2: a
 * socket filter's __sk_buff, 3: 0) and, from bit 7, how many repetitions;
 * the rest are the instructions (a partial last instruction is dropped).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

#define CTX_SIZE 64
#define PACKET_SIZE 128

static unsigned char map0[8 * 1] __attribute__((aligned(8)));
static unsigned char map1[16 * 1] __attribute__((aligned(8)));
static unsigned char map2[16 * 4] __attribute__((aligned(8)));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bpfvm_map maps[3] = {
        {.fd = 0, .map_type = 2, .key_size = 4, .value_size = 8, .max_entries = 1,
         .elem_size = 8, .base = map0},
        {.fd = 1, .map_type = 2, .key_size = 4, .value_size = 12, .max_entries = 1,
         .map_flags = BPFVM_F_RDONLY_PROG, .elem_size = 16, .base = map1},
        {.fd = 2, .map_type = 2, .key_size = 4, .value_size = 12, .max_entries = 4,
         .elem_size = 16, .base = map2, .frozen = 1},
    };
    unsigned char ctx[CTX_SIZE], packet[PACKET_SIZE], md[24], skb[192];
    struct bpfvm_region regions[4];
    struct bpfvm_report report;
    struct bpfvm *vm;
    uint64_t retval, arg;
    uint32_t count;
    void *insns;

    if (size < 9)
        return 0;
    count = (uint32_t)((size - 1) / 8);
    /* a copy of exactly the instructions, so ASan sees any read past them */
    insns = malloc((size_t)count * 8);
    if (!insns)
        return 0;
    memcpy(insns, data + 1, (size_t)count * 8);
    if (bpfvm_load(&vm, insns, count, maps, 3, &report) == 0) {
        memset(ctx, 0x5a, sizeof(ctx));
        memset(packet, 0xa5, sizeof(packet));
        memset(md, 0, sizeof(md));
        regions[0] = (struct bpfvm_region){.base = (uintptr_t)ctx, .len = sizeof(ctx),
                                           .flags = BPFVM_READ | BPFVM_WRITE};
        regions[1] = (struct bpfvm_region){.base = (uintptr_t)md, .len = sizeof(md),
                                           .flags = BPFVM_READ, .kind = BPFVM_REGION_XDP_MD,
                                           .data = (uintptr_t)packet,
                                           .data_end = (uintptr_t)packet + sizeof(packet)};
        regions[2] = (struct bpfvm_region){.base = (uintptr_t)packet, .len = sizeof(packet),
                                           .flags = BPFVM_READ | BPFVM_WRITE};
        memset(skb, 0, sizeof(skb));
        regions[3] = (struct bpfvm_region){.base = (uintptr_t)skb, .len = sizeof(skb),
                                           .flags = BPFVM_READ | BPFVM_WRITE,
                                           .kind = BPFVM_REGION_SKB,
                                           .data = (uintptr_t)packet + 14,
                                           .data_end = (uintptr_t)packet + sizeof(packet)};
        switch (data[0] & 3) {
        case 0: arg = (uintptr_t)ctx; break;
        case 1: arg = (uintptr_t)md; break;
        case 2: arg = (uintptr_t)skb; break;
        default: arg = 0; break;
        }
        bpfvm_run(vm, arg, regions, 4, 20000, 1 + data[0] / 128, &retval, &report);
        bpfvm_free(vm);
    }
    free(insns);
    return 0;
}
