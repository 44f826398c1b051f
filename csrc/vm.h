/* The eBPF interpreter: constants and the state shared by vm.c and vm_helpers.c. */
#ifndef BPFVM_H
#define BPFVM_H

#include <stddef.h>
#include <stdint.h>

#include "vm_api.h"

/* Helper numbers of include/uapi/linux/bpf.h (enum bpf_func_id). */
#define BPFVM_FUNC_map_lookup_elem 1
#define BPFVM_FUNC_map_update_elem 2
#define BPFVM_FUNC_map_delete_elem 3
#define BPFVM_FUNC_ktime_get_ns 5
#define BPFVM_FUNC_trace_printk 6
#define BPFVM_FUNC_get_prandom_u32 7
#define BPFVM_FUNC_get_smp_processor_id 8
#define BPFVM_FUNC_get_current_pid_tgid 14
#define BPFVM_FUNC_get_current_uid_gid 15
#define BPFVM_FUNC_skb_load_bytes 26
#define BPFVM_FUNC_ktime_get_boot_ns 125

#define BPFVM_MAP_TYPE_ARRAY 2
#define BPFVM_F_RDONLY_PROG (1U << 7)
#define BPFVM_TRACE_MAX (1u << 20) /* captured trace_printk output: at most 1 MiB */

/* One decoded instruction: an internal opcode that already says what to do (size,
 * signedness, K or X), the registers, the offset and a ready 64-bit immediate. */
struct bpfvm_insn {
    uint16_t op;
    uint8_t dst;
    uint8_t src;
    int32_t off;
    uint64_t imm;
};

/* A memory area checked on every access: flat, or (elem_size != 0) the elements of an
 * array map, of which only the first value_size bytes are the program's. */
struct bpfvm_area {
    uint64_t base;
    uint64_t len;
    uint64_t elem_size;
    uint64_t value_size;
    uint32_t flags;
    uint32_t kind;          /* BPFVM_REGION_* */
    uint32_t frozen;        /* a map mapped read-only because the emulation froze it */
    int32_t map;            /* index into the map table, or -1 */
    uint64_t data, data_end, data_meta; /* XDP_MD: the packet pointers its loads give */
};

struct bpfvm {
    struct bpfvm_insn *insns;
    uint8_t *codes;         /* the opcode bytes, for reports */
    uint32_t insn_cnt;
    struct bpfvm_map *maps;
    uint32_t map_cnt;
    bpfvm_helper_fn helpers[BPFVM_MAX_HELPERS];
    /* the stack of all frames; frame k's r10 is stack + (MAX_FRAMES - k) * STACK_SIZE */
    unsigned char *stack;
    uint64_t stack_lo;      /* lowest address of the deepest live frame */
    uint64_t stack_hi;
    /* areas checked after the stack: the run's regions, then the maps */
    struct bpfvm_area *areas;
    uint32_t area_cnt;
    uint32_t area_cap;
    uint64_t prandom_state;
    void *user;
    char *trace;
    uint64_t trace_len;
    uint64_t trace_cap;
    const char *helper_why; /* set by a helper that fails, for the report */
    uint64_t conv;          /* the value of a converted context load (area_mem) */
    uint64_t hot_base, hot_len; /* the flat area that area_mem() found last ... */
    uint32_t hot_flags;         /* ... and what it allows (BPFVM_READ | BPFVM_WRITE) */
};

struct bpfvm_area;
const struct bpfvm_area *bpfvm_skb_area(struct bpfvm *vm);

#endif
