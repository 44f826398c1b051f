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

/* Fill a report: "insn N: " (when insn >= 0) and the message. */
void bpfvm_report_set(struct bpfvm_report *rep, int32_t insn, uint32_t code, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* Instruction classes, fields and modes of include/uapi/linux/bpf.h. */
#define CLS_LD 0x00
#define CLS_LDX 0x01
#define CLS_ST 0x02
#define CLS_STX 0x03
#define CLS_ALU 0x04
#define CLS_JMP 0x05
#define CLS_JMP32 0x06
#define CLS_ALU64 0x07
#define SRC_X 0x08
#define MODE_IMM 0x00
#define MODE_ABS 0x20
#define MODE_IND 0x40
#define MODE_MEM 0x60
#define MODE_MEMSX 0x80
#define MODE_ATOMIC 0xc0
#define SIZE_W 0x00
#define SIZE_H 0x08
#define SIZE_B 0x10
#define SIZE_DW 0x18
#define ATOMIC_FETCH 0x01
#define ATOMIC_XCHG (0xe0 | ATOMIC_FETCH)
#define ATOMIC_CMPXCHG (0xf0 | ATOMIC_FETCH)
#define PSEUDO_MAP_FD 1
#define PSEUDO_MAP_VALUE 2
#define PSEUDO_MAP_IDX 5
#define PSEUDO_MAP_IDX_VALUE 6
#define PSEUDO_CALL 1
#define SKF_NET_OFF (-0x100000)
#define SKF_LL_OFF (-0x200000)

/* The internal opcodes: one per distinct behaviour, so the run loop never decodes. */
#define VM_ALU_OPS(X, W)                                                                  \
    X(ADD##W##_K) X(ADD##W##_X) X(SUB##W##_K) X(SUB##W##_X) X(MUL##W##_K) X(MUL##W##_X) \
    X(DIV##W##_K) X(DIV##W##_X) X(SDIV##W##_K) X(SDIV##W##_X) X(MOD##W##_K)              \
    X(MOD##W##_X) X(SMOD##W##_K) X(SMOD##W##_X) X(OR##W##_K) X(OR##W##_X) X(AND##W##_K)  \
    X(AND##W##_X) X(XOR##W##_K) X(XOR##W##_X) X(LSH##W##_K) X(LSH##W##_X) X(RSH##W##_K)  \
    X(RSH##W##_X) X(ARSH##W##_K) X(ARSH##W##_X) X(MOV##W##_K) X(MOV##W##_X) X(NEG##W)    \
    X(MOVSX##W##_8) X(MOVSX##W##_16)
#define VM_JMP_OPS(X, W)                                                                  \
    X(JEQ##W##_K) X(JEQ##W##_X) X(JNE##W##_K) X(JNE##W##_X) X(JGT##W##_K) X(JGT##W##_X) \
    X(JGE##W##_K) X(JGE##W##_X) X(JLT##W##_K) X(JLT##W##_X) X(JLE##W##_K) X(JLE##W##_X) \
    X(JSGT##W##_K) X(JSGT##W##_X) X(JSGE##W##_K) X(JSGE##W##_X) X(JSLT##W##_K)          \
    X(JSLT##W##_X) X(JSLE##W##_K) X(JSLE##W##_X) X(JSET##W##_K) X(JSET##W##_X)
#define VM_OPS(X)                                                                         \
    X(BAD) VM_ALU_OPS(X, 64) VM_ALU_OPS(X, 32) X(MOVSX64_32) X(NOP) X(TRUNC16) X(TRUNC32) \
    X(SWAP16) X(SWAP32) X(SWAP64) VM_JMP_OPS(X, 64) VM_JMP_OPS(X, 32) X(JA) X(CALL)       \
    X(CALL_LOCAL) X(KFUNC) X(EXIT) X(LDDW) X(LD_PKT) X(LDX_B) X(LDX_H) X(LDX_W) X(LDX_DW)  \
    X(LDXSX_B) X(LDXSX_H) X(LDXSX_W) X(ST_B) X(ST_H) X(ST_W) X(ST_DW) X(STX_B) X(STX_H)   \
    X(STX_W) X(STX_DW) X(ATOMIC_W) X(ATOMIC_DW)

#define VM_ENUM(name) OP_##name,
enum { VM_OPS(VM_ENUM) OP_COUNT };

#endif
