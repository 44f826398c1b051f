/*
 * An interpreter for the eBPF instruction set as the kernel defines it
 * (Documentation/bpf/standardization/instruction-set.rst, RFC 9669; the kernel's own
 * interpreter is ___bpf_prog_run() in kernel/bpf/core.c).
 *
 * There is no verifier, so safety comes from two places:
 *   - bpfvm_load() refuses what the kernel's verifier refuses by structure alone
 *     (unknown opcodes, reserved fields, bad registers, writes to r10, jumps outside
 *     the program or into the second half of an ld_imm64, falling off the end, division
 *     by a zero immediate, out-of-range shift immediates, unresolvable map references)
 *     and decodes every instruction into a form that needs no checks at run time;
 *   - bpfvm_run() checks every load and store against the memory the program may touch:
 *     the live stack frames, the regions the caller passes (context, packet data) and
 *     the values of the maps in the map table. A register is a host address only
 *     when it falls inside one of those, so no program can reach other memory.
 *
 * Dispatch: computed gotos under GCC/clang (one indirect jump per instruction, which
 * the branch predictor follows per site), the portable switch otherwise or with
 * -DBPFVM_SWITCH.
 */
#include "vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    X(CALL_LOCAL) X(KFUNC) X(EXIT) X(LDDW) X(LD_PKT) X(LDX_B) X(LDX_H) X(LDX_W) X(LDX_DW) X(LDXSX_B)         \
    X(LDXSX_H) X(LDXSX_W) X(ST_B) X(ST_H) X(ST_W) X(ST_DW) X(STX_B) X(STX_H) X(STX_W)     \
    X(STX_DW) X(ATOMIC_W) X(ATOMIC_DW)

#define VM_ENUM(name) OP_##name,
enum { VM_OPS(VM_ENUM) OP_COUNT };

/* -------------------------------------------------------------------------------- */
/* Reports */

static void report_set(struct bpfvm_report *rep, int32_t insn, uint32_t code,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report_set(struct bpfvm_report *rep, int32_t insn, uint32_t code,
                       const char *fmt, ...)
{
    int n = 0;
    va_list ap;

    rep->insn = insn;
    rep->code = code;
    if (insn >= 0)
        n = snprintf(rep->msg, sizeof(rep->msg), "insn %d: ", (int)insn);
    if (n < 0 || (size_t)n >= sizeof(rep->msg))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(rep->msg + n, sizeof(rep->msg) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* -------------------------------------------------------------------------------- */
/* Load: the structural checks of the kernel's verifier, and decoding */

struct raw_insn {
    uint8_t code;
    uint8_t regs;
    int16_t off;
    int32_t imm;
};

static int find_map(const struct bpfvm *vm, uint8_t src, int32_t imm)
{
    if (src == PSEUDO_MAP_IDX || src == PSEUDO_MAP_IDX_VALUE)
        return imm >= 0 && (uint32_t)imm < vm->map_cnt ? imm : -1;
    for (uint32_t i = 0; i < vm->map_cnt; i++)
        if (vm->maps[i].fd == imm)
            return (int)i;
    return -1;
}

/* ld_imm64 (two slots): a plain constant, a map pointer or the address of a map value.
 * The map value form is array_map_direct_value_addr(): one-element arrays only, and the
 * offset inside the value. */
static int decode_lddw(struct bpfvm *vm, uint32_t i, const struct raw_insn *raw,
                       struct bpfvm_insn *d, struct bpfvm_report *rep)
{
    const struct raw_insn *hi = raw + 1;
    uint8_t src = raw[0].regs >> 4;
    int m;

    if (i + 1 >= vm->insn_cnt) {
        report_set(rep, (int32_t)i, raw->code, "ld_imm64 is missing its second half");
        return -EINVAL;
    }
    if (hi->code || hi->regs || hi->off || raw->off) {
        report_set(rep, (int32_t)i, raw->code, "ld_imm64 uses reserved fields");
        return -EINVAL;
    }
    if (src == 0) {
        d->imm = (uint64_t)(uint32_t)raw->imm | (uint64_t)(uint32_t)hi->imm << 32;
        return 0;
    }
    if (src != PSEUDO_MAP_FD && src != PSEUDO_MAP_VALUE && src != PSEUDO_MAP_IDX &&
        src != PSEUDO_MAP_IDX_VALUE) {
        report_set(rep, (int32_t)i, raw->code, "ld_imm64 with unsupported src_reg %u",
                   (unsigned)src);
        return -EINVAL;
    }
    m = find_map(vm, src, raw->imm);
    if (m < 0) {
        report_set(rep, (int32_t)i, raw->code, "ld_imm64 refers to map %s %d, not in the map table",
                   src >= PSEUDO_MAP_IDX ? "index" : "fd", (int)raw->imm);
        return -EBADF;
    }
    if (src == PSEUDO_MAP_FD || src == PSEUDO_MAP_IDX) {
        if (hi->imm) {
            report_set(rep, (int32_t)i, raw->code, "ld_imm64 map pointer with a non-zero offset");
            return -EINVAL;
        }
        d->imm = (uint64_t)(uintptr_t)&vm->maps[m];
        return 0;
    }
    {
        const struct bpfvm_map *map = &vm->maps[m];
        uint32_t off = (uint32_t)hi->imm;
        if (!map->base || map->map_type != BPFVM_MAP_TYPE_ARRAY || map->max_entries != 1) {
            report_set(rep, (int32_t)i, raw->code,
                       "ld_imm64 map value of map %d: only one-element arrays have one", m);
            return -EINVAL;
        }
        if (off >= map->value_size) {
            report_set(rep, (int32_t)i, raw->code,
                       "ld_imm64 map value offset %u past value_size %u", off, map->value_size);
            return -EINVAL;
        }
        d->imm = (uint64_t)(uintptr_t)map->base + off;
    }
    return 0;
}

static int decode_alu(const struct raw_insn *raw, struct bpfvm_insn *d, const char **why)
{
    int is64 = (raw->code & 0x07) == CLS_ALU64;
    int x = (raw->code & SRC_X) != 0;
    uint8_t op = raw->code & 0xf0;
    int16_t off = raw->off;
    unsigned width = is64 ? 64 : 32;

#define PICK(NAME) (uint16_t)((is64 ? OP_##NAME##64_K : OP_##NAME##32_K) + x)
    if (op != 0xd0 && (x ? raw->imm != 0 : (raw->regs >> 4) != 0)) {
        *why = "uses reserved fields";
        return -EINVAL;
    }
    /* off selects the signed division (1) or the sign-extending move (8, 16, 32); it
     * must be zero everywhere else. */
    if (off && !(op == 0x30 || op == 0x90 || op == 0xb0)) {
        *why = "uses reserved fields";
        return -EINVAL;
    }
    d->imm = is64 ? (uint64_t)(int64_t)raw->imm : (uint64_t)(uint32_t)raw->imm;
    switch (op) {
    case 0x00: d->op = PICK(ADD); return 0;
    case 0x10: d->op = PICK(SUB); return 0;
    case 0x20: d->op = PICK(MUL); return 0;
    case 0x40: d->op = PICK(OR); return 0;
    case 0x50: d->op = PICK(AND); return 0;
    case 0xa0: d->op = PICK(XOR); return 0;
    case 0x30:
    case 0x90:
        if (off != 0 && off != 1) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        if (!x && raw->imm == 0) {
            *why = "divides by zero";
            return -EINVAL;
        }
        if (op == 0x30)
            d->op = off ? PICK(SDIV) : PICK(DIV);
        else
            d->op = off ? PICK(SMOD) : PICK(MOD);
        return 0;
    case 0x60:
    case 0x70:
    case 0xc0:
        if (!x && (raw->imm < 0 || (unsigned)raw->imm >= width)) {
            *why = "shifts by an invalid amount";
            return -EINVAL;
        }
        d->op = op == 0x60 ? PICK(LSH) : op == 0x70 ? PICK(RSH) : PICK(ARSH);
        return 0;
    case 0x80:
        if (x || raw->imm) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        d->op = is64 ? OP_NEG64 : OP_NEG32;
        return 0;
    case 0xb0:
        if (off == 0) {
            d->op = PICK(MOV);
            return 0;
        }
        if (!x || (off != 8 && off != 16 && !(is64 && off == 32))) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        if (off == 32)
            d->op = OP_MOVSX64_32;
        else if (is64)
            d->op = off == 8 ? OP_MOVSX64_8 : OP_MOVSX64_16;
        else
            d->op = off == 8 ? OP_MOVSX32_8 : OP_MOVSX32_16;
        return 0;
    case 0xd0: {
        /* BPF_END: in the ALU class, convert to little (source 0) or big (source 1)
         * endian; in ALU64 with source 0, swap unconditionally (v4 bswap). */
        int swap;
        if ((raw->regs >> 4) || off || (raw->imm != 16 && raw->imm != 32 && raw->imm != 64) ||
            (is64 && x)) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        swap = is64 || !x;
#else
        swap = is64 || x;
#endif
        if (raw->imm == 16)
            d->op = swap ? OP_SWAP16 : OP_TRUNC16;
        else if (raw->imm == 32)
            d->op = swap ? OP_SWAP32 : OP_TRUNC32;
        else
            d->op = swap ? OP_SWAP64 : OP_NOP;
        return 0;
    }
    default:
        *why = "unknown opcode";
        return -EINVAL;
    }
#undef PICK
}

static int decode_jmp(const struct raw_insn *raw, struct bpfvm_insn *d, const char **why)
{
    int is64 = (raw->code & 0x07) == CLS_JMP;
    int x = (raw->code & SRC_X) != 0;
    uint8_t op = raw->code & 0xf0;
    uint8_t src = raw->regs >> 4, dst = raw->regs & 0x0f;

    d->off = raw->off;
    switch (op) {
    case 0x00: /* ja; in JMP32, gotol with the offset in imm */
        if (x || raw->regs || (is64 ? raw->imm != 0 : raw->off != 0)) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        d->op = OP_JA;
        d->off = is64 ? raw->off : raw->imm;
        return 0;
    case 0x80:
        if (!is64 || x || raw->off || dst) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        if (src == 0) {
            if (raw->imm < 0 || raw->imm >= BPFVM_MAX_HELPERS) {
                *why = "calls an unknown helper";
                return -EINVAL;
            }
            d->op = OP_CALL;
            d->imm = (uint64_t)raw->imm;
            return 0;
        }
        if (src == PSEUDO_CALL) {
            d->op = OP_CALL_LOCAL;
            d->off = raw->imm;
            return 0;
        }
        if (src == 2) {
            /* a kfunc: the kernel resolves it against its BTF; refused when a run reaches
             * it, so that an object using one still loads */
            d->op = OP_KFUNC;
            return 0;
        }
        *why = "uses reserved fields";
        return -EINVAL;
    case 0x90:
        if (!is64 || x || raw->regs || raw->off || raw->imm) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        d->op = OP_EXIT;
        return 0;
    default:
        break;
    }
    if (x ? raw->imm != 0 : src != 0) {
        *why = "uses reserved fields";
        return -EINVAL;
    }
    d->imm = is64 ? (uint64_t)(int64_t)raw->imm : (uint64_t)(uint32_t)raw->imm;
#define PICKJ(NAME) (uint16_t)((is64 ? OP_##NAME##64_K : OP_##NAME##32_K) + x)
    switch (op) {
    case 0x10: d->op = PICKJ(JEQ); return 0;
    case 0x20: d->op = PICKJ(JGT); return 0;
    case 0x30: d->op = PICKJ(JGE); return 0;
    case 0x40: d->op = PICKJ(JSET); return 0;
    case 0x50: d->op = PICKJ(JNE); return 0;
    case 0x60: d->op = PICKJ(JSGT); return 0;
    case 0x70: d->op = PICKJ(JSGE); return 0;
    case 0xa0: d->op = PICKJ(JLT); return 0;
    case 0xb0: d->op = PICKJ(JLE); return 0;
    case 0xc0: d->op = PICKJ(JSLT); return 0;
    case 0xd0: d->op = PICKJ(JSLE); return 0;
    default:
        *why = "unknown opcode";
        return -EINVAL;
    }
#undef PICKJ
}

static int decode_mem(const struct raw_insn *raw, struct bpfvm_insn *d, const char **why)
{
    uint8_t cls = raw->code & 0x07, mode = raw->code & 0xe0, size = raw->code & 0x18;
    static const uint16_t ldx[4] = {OP_LDX_W, OP_LDX_H, OP_LDX_B, OP_LDX_DW};
    static const uint16_t ldxsx[4] = {OP_LDXSX_W, OP_LDXSX_H, OP_LDXSX_B, OP_BAD};
    static const uint16_t st[4] = {OP_ST_W, OP_ST_H, OP_ST_B, OP_ST_DW};
    static const uint16_t stx[4] = {OP_STX_W, OP_STX_H, OP_STX_B, OP_STX_DW};

    d->off = raw->off;
    d->imm = (uint64_t)(int64_t)raw->imm;
    if (cls == CLS_LDX) {
        if (raw->imm) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        d->op = mode == MODE_MEM ? ldx[size >> 3] : mode == MODE_MEMSX ? ldxsx[size >> 3] : OP_BAD;
    } else if (cls == CLS_ST) {
        if (raw->regs >> 4) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        d->op = mode == MODE_MEM ? st[size >> 3] : OP_BAD;
    } else if (mode == MODE_MEM) {
        if (raw->imm) {
            *why = "uses reserved fields";
            return -EINVAL;
        }
        d->op = stx[size >> 3];
    } else if (mode == MODE_ATOMIC && (size == SIZE_W || size == SIZE_DW)) {
        switch (raw->imm) {
        case 0x00: case 0x40: case 0x50: case 0xa0:
        case 0x01: case 0x41: case 0x51: case 0xa1:
        case ATOMIC_XCHG: case ATOMIC_CMPXCHG:
            d->op = size == SIZE_W ? OP_ATOMIC_W : OP_ATOMIC_DW;
            break;
        default:
            *why = "is an unknown atomic operation";
            return -EINVAL;
        }
    } else {
        d->op = OP_BAD;
    }
    if (d->op == OP_BAD) {
        *why = "unknown opcode";
        return -EINVAL;
    }
    return 0;
}

/* Which register an instruction writes, or -1: the kernel's "frame pointer is read only". */
static int written_reg(const struct raw_insn *raw, const struct bpfvm_insn *d)
{
    uint8_t cls = raw->code & 0x07;
    if (cls == CLS_ALU || cls == CLS_ALU64 || cls == CLS_LDX || cls == CLS_LD)
        return raw->regs & 0x0f;
    if ((d->op == OP_ATOMIC_W || d->op == OP_ATOMIC_DW) && (raw->imm & ATOMIC_FETCH) &&
        raw->imm != ATOMIC_CMPXCHG)
        return raw->regs >> 4;
    return -1;
}

/*
 * The verifier refuses at load (EACCES, "write into map forbidden") a store into a
 * BPF_F_RDONLY_PROG map's value and map_update/delete_elem on such a map. Without a
 * verifier, this follows registers through straight-line code only: a register holds
 * "value (or pointer) of read-only map m" from its ld_imm64, through moves and constant
 * adds, and forgets it at every jump target, call and unknown write. What it misses is
 * refused at run time (the value is not writable there). mark[i]: 1 second half of an
 * ld_imm64, 2 a jump target.
 */
static int check_rdonly_prog(const struct bpfvm *vm, const struct raw_insn *raw,
                             const unsigned char *mark, struct bpfvm_report *rep)
{
    int value[11], ptr[11]; /* map index + 1, or 0 */

    memset(value, 0, sizeof(value));
    memset(ptr, 0, sizeof(ptr));
    for (uint32_t i = 0; i < vm->insn_cnt; i++) {
        const struct bpfvm_insn *d = &vm->insns[i];
        uint8_t cls = raw[i].code & 0x07;
        int store = 0;

        if (mark[i] == 1)
            continue;
        if (mark[i] == 2) {
            memset(value, 0, sizeof(value));
            memset(ptr, 0, sizeof(ptr));
        }
        if (d->op == OP_LDDW) {
            uint8_t src = raw[i].regs >> 4;
            int m = src ? find_map(vm, src, raw[i].imm) : -1;
            int ro = m >= 0 && (vm->maps[m].map_flags & BPFVM_F_RDONLY_PROG);
            int isval = src == PSEUDO_MAP_VALUE || src == PSEUDO_MAP_IDX_VALUE;
            value[d->dst] = ro && isval ? m + 1 : 0;
            ptr[d->dst] = ro && !isval ? m + 1 : 0;
            continue;
        }
        switch (cls) {
        case CLS_ST:
        case CLS_STX:
            store = 1;
            break;
        case CLS_ALU64:
            if (d->op == OP_MOV64_X) {
                value[d->dst] = value[d->src];
                ptr[d->dst] = ptr[d->src];
            } else if (d->op != OP_ADD64_K && d->op != OP_SUB64_K) {
                value[d->dst] = ptr[d->dst] = 0;
            }
            continue;
        case CLS_ALU:
        case CLS_LDX:
            value[d->dst] = ptr[d->dst] = 0;
            continue;
        default:
            break;
        }
        if (store && value[d->dst]) {
            report_set(rep, (int32_t)i, raw[i].code,
                       "write into map forbidden: map %d is BPF_F_RDONLY_PROG",
                       value[d->dst] - 1);
            return -EACCES;
        }
        if (store) {
            if (d->op == OP_ATOMIC_W || d->op == OP_ATOMIC_DW) {
                if (raw[i].imm == ATOMIC_CMPXCHG)
                    value[0] = ptr[0] = 0;
                else if (raw[i].imm & ATOMIC_FETCH)
                    value[d->src] = ptr[d->src] = 0;
            }
            continue;
        }
        if (d->op == OP_CALL && (d->imm == BPFVM_FUNC_map_update_elem ||
                                 d->imm == BPFVM_FUNC_map_delete_elem) && ptr[1]) {
            report_set(rep, (int32_t)i, raw[i].code,
                       "write into map forbidden: map %d is BPF_F_RDONLY_PROG", ptr[1] - 1);
            return -EACCES;
        }
        if (d->op == OP_CALL || d->op == OP_CALL_LOCAL || d->op == OP_LD_PKT ||
            d->op == OP_KFUNC) {
            for (int r = 0; r <= 5; r++)
                value[r] = ptr[r] = 0;
        }
        if (d->op == OP_EXIT || d->op == OP_JA) {
            /* what follows is reached by a jump, if at all */
            memset(value, 0, sizeof(value));
            memset(ptr, 0, sizeof(ptr));
        }
    }
    return 0;
}

static int decode_all(struct bpfvm *vm, const struct raw_insn *raw, struct bpfvm_report *rep)
{
    uint32_t n = vm->insn_cnt;
    unsigned char *second = calloc(n ? n : 1, 1); /* second halves of ld_imm64 */
    int err = 0;

    if (!second)
        return -ENOMEM;
    for (uint32_t i = 0; i < n && !err; i++) {
        const struct raw_insn *r = &raw[i];
        struct bpfvm_insn *d = &vm->insns[i];
        const char *why = NULL;
        uint8_t cls = r->code & 0x07;

        if (second[i])
            continue;
        d->dst = r->regs & 0x0f;
        d->src = r->regs >> 4;
        d->off = 0;
        d->imm = 0;
        d->op = OP_BAD;
        if (d->dst > 10 || d->src > 10) {
            report_set(rep, (int32_t)i, r->code, "invalid register r%u",
                       (unsigned)(d->dst > 10 ? d->dst : d->src));
            err = -EINVAL;
            goto out;
        }
        switch (cls) {
        case CLS_LD:
            if ((r->code & 0xe0) == MODE_ABS || (r->code & 0xe0) == MODE_IND) {
                /* legacy packet loads; check_ld_abs(): dst r0, no offset, no source
                 * register for BPF_ABS, no 8-byte form */
                if ((r->code & 0x18) == SIZE_DW || d->dst || r->off ||
                    ((r->code & 0xe0) == MODE_ABS && d->src)) {
                    why = "uses reserved fields";
                    err = -EINVAL;
                    break;
                }
                d->op = OP_LD_PKT;
                d->off = (r->code & 0x18) == SIZE_B ? 1 : (r->code & 0x18) == SIZE_H ? 2 : 4;
                d->imm = (uint64_t)(int64_t)r->imm;
                if ((r->code & 0xe0) == MODE_ABS)
                    d->src = 11; /* no index register: r[11] is always 0 */
                break;
            }
            if (r->code != (CLS_LD | MODE_IMM | SIZE_DW)) {
                why = "unknown opcode";
                err = -EINVAL;
                break;
            }
            d->op = OP_LDDW;
            err = decode_lddw(vm, i, r, d, rep);
            if (err)
                goto out;
            second[i + 1] = 1;
            vm->insns[i + 1] = (struct bpfvm_insn){.op = OP_BAD};
            break;
        case CLS_ALU:
        case CLS_ALU64:
            err = decode_alu(r, d, &why);
            break;
        case CLS_JMP:
        case CLS_JMP32:
            err = decode_jmp(r, d, &why);
            break;
        default:
            err = decode_mem(r, d, &why);
            break;
        }
        if (!err && written_reg(r, d) == 10) {
            why = "writes the read-only frame pointer r10";
            err = -EACCES;
        }
        if (err) {
            report_set(rep, (int32_t)i, r->code, "%s (code 0x%02x)",
                       why ? why : "is invalid", (unsigned)r->code);
            goto out;
        }
    }
    /* Control flow: every jump and call lands on an instruction (not the second half of
     * an ld_imm64), and only exit and ja may be last: nothing falls off the end. */
    for (uint32_t i = 0; i < n; i++) {
        const struct bpfvm_insn *d = &vm->insns[i];
        int64_t target = 0;
        int jumps = d->op == OP_JA || d->op == OP_CALL_LOCAL ||
                    (d->op >= OP_JEQ64_K && d->op <= OP_JSET32_X);
        uint32_t next = i + (d->op == OP_LDDW ? 2u : 1u);

        if (second[i] == 1)
            continue;
        if (jumps)
            target = (int64_t)i + d->off + 1;
        if (jumps && (target < 0 || target >= n || second[target] == 1)) {
            report_set(rep, (int32_t)i, raw[i].code, "jump to %lld, outside the program (%u insns)%s",
                       (long long)target, n,
                       target >= 0 && target < n ? " or into an ld_imm64" : "");
            err = -EINVAL;
            goto out;
        }
        if (d->op != OP_EXIT && d->op != OP_JA && next >= n) {
            report_set(rep, (int32_t)i, raw[i].code, "falls off the end of the program");
            err = -EINVAL;
            goto out;
        }
        if (jumps)
            second[target] = 2;
    }
    err = check_rdonly_prog(vm, raw, second, rep);
out:
    free(second);
    return err;
}

int bpfvm_load(struct bpfvm **out, const void *insns, uint32_t insn_cnt,
               const struct bpfvm_map *maps, uint32_t map_cnt, struct bpfvm_report *report)
{
    struct bpfvm_report dummy;
    struct bpfvm *vm;
    struct raw_insn *raw;
    int err;

    if (!report)
        report = &dummy;
    memset(report, 0, sizeof(*report));
    report->insn = -1;
    *out = NULL;
    if (insn_cnt == 0 || insn_cnt > (1u << 20) || !insns || (map_cnt && !maps) || map_cnt > 4096) {
        report_set(report, -1, 0, "a program needs 1 to 1048576 instructions and at most 4096 maps");
        return -EINVAL;
    }
    vm = calloc(1, sizeof(*vm));
    raw = malloc((size_t)insn_cnt * sizeof(*raw));
    if (!vm || !raw)
        goto nomem;
    memcpy(raw, insns, (size_t)insn_cnt * sizeof(*raw));
    vm->insn_cnt = insn_cnt;
    vm->insns = calloc(insn_cnt, sizeof(*vm->insns));
    vm->codes = malloc(insn_cnt);
    vm->maps = calloc(map_cnt ? map_cnt : 1, sizeof(*vm->maps));
    vm->stack = aligned_alloc(64, BPFVM_STACK_SIZE * BPFVM_MAX_FRAMES);
    if (!vm->insns || !vm->codes || !vm->maps || !vm->stack)
        goto nomem;
    if (map_cnt)
        memcpy(vm->maps, maps, map_cnt * sizeof(*maps));
    vm->map_cnt = map_cnt;
    for (uint32_t i = 0; i < map_cnt; i++) {
        const struct bpfvm_map *m = &maps[i];
        if (m->base && (m->elem_size < m->value_size || !m->max_entries ||
                        m->elem_size > UINT64_MAX / m->max_entries)) {
            report_set(report, -1, 0, "map %u: elem_size %llu cannot hold value_size %u", i,
                       (unsigned long long)m->elem_size, m->value_size);
            free(raw);
            bpfvm_free(vm);
            return -EINVAL;
        }
    }
    vm->stack_hi = (uint64_t)(uintptr_t)vm->stack + BPFVM_STACK_SIZE * BPFVM_MAX_FRAMES;
    vm->prandom_state = 0x9e3779b97f4a7c15ull;
    vm->helpers[BPFVM_FUNC_map_lookup_elem] = bpfvm_map_lookup_elem;
    vm->helpers[BPFVM_FUNC_map_update_elem] = bpfvm_map_update_elem;
    vm->helpers[BPFVM_FUNC_map_delete_elem] = bpfvm_map_delete_elem;
    vm->helpers[BPFVM_FUNC_ktime_get_ns] = bpfvm_ktime_get_ns;
    vm->helpers[BPFVM_FUNC_trace_printk] = bpfvm_trace_printk;
    vm->helpers[BPFVM_FUNC_get_prandom_u32] = bpfvm_get_prandom_u32;
    vm->helpers[BPFVM_FUNC_get_smp_processor_id] = bpfvm_get_smp_processor_id;
    vm->helpers[BPFVM_FUNC_get_current_pid_tgid] = bpfvm_get_current_pid_tgid;
    vm->helpers[BPFVM_FUNC_get_current_uid_gid] = bpfvm_get_current_uid_gid;
    vm->helpers[BPFVM_FUNC_ktime_get_boot_ns] = bpfvm_ktime_get_boot_ns;
    vm->helpers[BPFVM_FUNC_skb_load_bytes] = bpfvm_skb_load_bytes;
    for (uint32_t i = 0; i < insn_cnt; i++)
        vm->codes[i] = raw[i].code;
    err = decode_all(vm, raw, report);
    free(raw);
    if (err) {
        bpfvm_free(vm);
        return err;
    }
    *out = vm;
    return 0;
nomem:
    free(raw);
    bpfvm_free(vm);
    report_set(report, -1, 0, "out of memory");
    return -ENOMEM;
}

void bpfvm_free(struct bpfvm *vm)
{
    if (!vm)
        return;
    free(vm->insns);
    free(vm->codes);
    free(vm->maps);
    free(vm->stack);
    free(vm->areas);
    free(vm->trace);
    free(vm);
}

int bpfvm_set_helper(struct bpfvm *vm, uint32_t id, bpfvm_helper_fn fn)
{
    if (id >= BPFVM_MAX_HELPERS)
        return -EINVAL;
    vm->helpers[id] = fn;
    return 0;
}

void bpfvm_set_user(struct bpfvm *vm, void *user) { vm->user = user; }
void *bpfvm_user(struct bpfvm *vm) { return vm->user; }
void bpfvm_set_seed(struct bpfvm *vm, uint64_t seed) { vm->prandom_state = seed; }

/* -------------------------------------------------------------------------------- */
/* Memory checks */

enum {
    WHY_OUTSIDE,
    WHY_CROSSING,
    WHY_PADDING,
    WHY_READONLY,
    WHY_WRITEONLY,
    WHY_FROZEN,
    WHY_CONVERTED, /* not a fault: a context load whose value is in vm->conv */
    WHY_PARTIAL_PTR,
    WHY_PAST_CTX,
    WHY_CTX_FIELD,
};

static const char *const fault_why[] = {
    [WHY_OUTSIDE] = "outside any region",
    [WHY_CROSSING] = "crossing the end of a region",
    [WHY_PADDING] = "outside the value of a map element",
    [WHY_READONLY] = "into a read-only region",
    [WHY_WRITEONLY] = "from a region the program may not read",
    [WHY_FROZEN] = ("into a frozen map (the emulated backend seals frozen maps against "
                    "every write, programs' too)"),
    [WHY_CONVERTED] = "of a context field",
    [WHY_PARTIAL_PTR] = "of part of a packet pointer field of the context",
    [WHY_PAST_CTX] = "past the end of the context given to the test run",
    [WHY_CTX_FIELD] = "of a __sk_buff field a socket filter may not touch",
};

/* sk_filter_is_valid_access(): a socket filter reads len .. hash, napi_id and gso_size,
 * and writes only cb[0..4]. */
static int skb_field_ok(uint64_t o, uint64_t size, int write)
{
    if (write)
        return o >= 48 && o + size <= 68;
    return o + size <= 72 || (o >= 84 && o + size <= 88) || (o >= 176 && o + size <= 180);
}

/* The slow path of vm_mem(): the caller's regions, then the maps' values. */
static void *area_mem(struct bpfvm *vm, uint64_t addr, uint64_t size, int write, int *why)
{
    for (uint32_t i = 0; i < vm->area_cnt; i++) {
        const struct bpfvm_area *a = &vm->areas[i];
        uint64_t o = addr - a->base, in_elem = o;
        if (o >= a->len)
            continue;
        if (a->len - o < size) {
            *why = WHY_CROSSING;
            return NULL;
        }
        if (a->elem_size && a->len != a->elem_size) {
            /* 32-bit division where it fits: a 64-bit one costs tens of cycles */
            in_elem = a->len <= UINT32_MAX ? (uint32_t)o % (uint32_t)a->elem_size
                                           : o % a->elem_size;
        }
        if (a->elem_size && in_elem + size > a->value_size) {
            *why = WHY_PADDING;
            return NULL;
        }
        if (a->flags & BPFVM_PAST_CTX) {
            *why = WHY_PAST_CTX;
            return NULL;
        }
        if (!(a->flags & (write ? BPFVM_WRITE : BPFVM_READ))) {
            *why = !write ? WHY_WRITEONLY : a->frozen ? WHY_FROZEN : WHY_READONLY;
            return NULL;
        }
        if (a->kind == BPFVM_REGION_SKB && !skb_field_ok(o, size, write)) {
            *why = WHY_CTX_FIELD;
            return NULL;
        }
        if (a->kind == BPFVM_REGION_XDP_MD && o < 12) {
            /* xdp_md's data, data_end, data_meta: the kernel rewrites these 4-byte
             * loads into loads of the 64-bit pointers (xdp_convert_ctx_access()) and
             * refuses any other access to them. */
            if (size != 4 || o % 4) {
                *why = WHY_PARTIAL_PTR;
                return NULL;
            }
            vm->conv = o == 0 ? a->data : o == 4 ? a->data_end : a->data_meta;
            *why = WHY_CONVERTED;
            return NULL;
        }
        if (a->kind == BPFVM_REGION_PLAIN && (!a->elem_size || a->len == a->elem_size)) {
            /* a flat area: the next access probably hits it again (vm_mem's cache) */
            vm->hot_base = a->base;
            vm->hot_len = a->elem_size ? a->value_size : a->len;
            vm->hot_flags = a->flags;
        }
        return (void *)(uintptr_t)addr;
    }
    *why = WHY_OUTSIDE;
    return NULL;
}

static inline void *vm_mem(struct bpfvm *vm, uint64_t addr, uint64_t size, int write, int *why)
{
    uint64_t o;
    /* The live stack frames first: the common case. */
    if (addr - vm->stack_lo < vm->stack_hi - vm->stack_lo && vm->stack_hi - addr >= size)
        return (void *)(uintptr_t)addr;
    /* then the flat area of the last access that went through area_mem() */
    o = addr - vm->hot_base;
    if (o < vm->hot_len && vm->hot_len - o >= size &&
        (vm->hot_flags & (write ? BPFVM_WRITE : BPFVM_READ)))
        return (void *)(uintptr_t)addr;
    return area_mem(vm, addr, size, write, why);
}

void *bpfvm_access(struct bpfvm *vm, uint64_t addr, uint64_t size, int write)
{
    int why;
    if (size == 0)
        return NULL;
    /* a context field the kernel converts is no memory a helper may touch */
    return vm_mem(vm, addr, size, write, &why);
}

struct bpfvm_map *bpfvm_map_of(struct bpfvm *vm, uint64_t map_ptr)
{
    uint64_t first = (uint64_t)(uintptr_t)vm->maps;
    uint64_t o = map_ptr - first;
    if (o >= (uint64_t)vm->map_cnt * sizeof(*vm->maps) || o % sizeof(*vm->maps))
        return NULL;
    return &vm->maps[o / sizeof(*vm->maps)];
}

static int setup_areas(struct bpfvm *vm, const struct bpfvm_region *regions, uint32_t n,
                       struct bpfvm_report *rep)
{
    uint32_t need = n + vm->map_cnt;
    vm->area_cnt = 0;
    vm->hot_len = 0;
    if (n && !regions)
        return -EINVAL;
    if (need > vm->area_cap) {
        struct bpfvm_area *a = realloc(vm->areas, need * sizeof(*a));
        if (!a)
            return -ENOMEM;
        vm->areas = a;
        vm->area_cap = need;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct bpfvm_region *r = &regions[i];
        if (r->len && (!r->base || r->base + r->len < r->base || (r->flags & ~7u))) {
            report_set(rep, -1, 0, "region %u is invalid", i);
            return -EINVAL;
        }
        if (r->kind > BPFVM_REGION_SKB ||
            (r->kind == BPFVM_REGION_XDP_MD && (r->len < 12 || r->data > r->data_end)) ||
            (r->kind == BPFVM_REGION_SKB &&
             (r->len < 192 || r->data < 14 || r->data > r->data_end))) {
            report_set(rep, -1, 0, "region %u is invalid", i);
            return -EINVAL;
        }
        vm->areas[vm->area_cnt++] = (struct bpfvm_area){
            .base = r->base, .len = r->len, .flags = r->flags, .kind = r->kind, .map = -1,
            .data = r->data, .data_end = r->data_end,
            .data_meta = r->data_meta && r->data_meta <= r->data ? r->data_meta : r->data};
    }
    for (uint32_t i = 0; i < vm->map_cnt; i++) {
        const struct bpfvm_map *m = &vm->maps[i];
        if (!m->base)
            continue;
        vm->areas[vm->area_cnt++] = (struct bpfvm_area){
            .base = (uint64_t)(uintptr_t)m->base,
            .len = m->elem_size * m->max_entries,
            .elem_size = m->elem_size,
            .value_size = m->value_size,
            .flags = BPFVM_READ |
                     (m->map_flags & BPFVM_F_RDONLY_PROG || m->frozen ? 0 : BPFVM_WRITE),
            .frozen = m->frozen != 0,
            .map = (int32_t)i};
    }
    return 0;
}

/* -------------------------------------------------------------------------------- */
/* The run loop */

struct frame {
    const struct bpfvm_insn *ret;
    uint64_t saved[5]; /* r6..r10 */
};

#define INSN_AT(pc) (int32_t)((pc) - vm->insns), vm->codes[(pc) - vm->insns]

static int fault(struct bpfvm *vm, struct bpfvm_report *rep, const struct bpfvm_insn *pc,
                 uint64_t addr, uint64_t size, int write, int why)
{
    report_set(rep, INSN_AT(pc), "%u-byte %s 0x%llx %s", (unsigned)size,
               write ? "store to" : "load from", (unsigned long long)addr, fault_why[why]);
    return why == WHY_FROZEN ? -EPERM : why == WHY_PAST_CTX ? -EINVAL : -EACCES;
}

static const char *helper_name(uint64_t id)
{
    switch (id) {
    case BPFVM_FUNC_map_lookup_elem: return "map_lookup_elem";
    case BPFVM_FUNC_map_update_elem: return "map_update_elem";
    case BPFVM_FUNC_map_delete_elem: return "map_delete_elem";
    case BPFVM_FUNC_ktime_get_ns: return "ktime_get_ns";
    case BPFVM_FUNC_trace_printk: return "trace_printk";
    case BPFVM_FUNC_get_prandom_u32: return "get_prandom_u32";
    case BPFVM_FUNC_get_smp_processor_id: return "get_smp_processor_id";
    case BPFVM_FUNC_get_current_pid_tgid: return "get_current_pid_tgid";
    case BPFVM_FUNC_get_current_uid_gid: return "get_current_uid_gid";
    case BPFVM_FUNC_ktime_get_boot_ns: return "ktime_get_boot_ns";
    case BPFVM_FUNC_skb_load_bytes: return "skb_load_bytes";
    default: return "helper";
    }
}

static int run_once(struct bpfvm *vm, uint64_t arg, uint64_t budget, uint64_t *retval,
                    struct bpfvm_report *report);

int bpfvm_run(struct bpfvm *vm, uint64_t arg, const struct bpfvm_region *regions,
              uint32_t region_cnt, uint64_t budget, uint32_t repeat, uint64_t *retval,
              struct bpfvm_report *report)
{
    struct bpfvm_report dummy;
    uint64_t executed = 0;
    int err;

    if (!report)
        report = &dummy;
    memset(report, 0, sizeof(*report));
    report->insn = -1;
    err = setup_areas(vm, regions, region_cnt, report);
    if (err)
        return err;
    if (repeat == 0)
        repeat = 1;
    do {
        err = run_once(vm, arg, budget, retval, report);
        executed += report->executed;
    } while (!err && --repeat > 0);
    report->executed = executed;
    return err;
}

/* The socket buffer of the run (an area of kind BPFVM_REGION_SKB), or NULL. */
const struct bpfvm_area *bpfvm_skb_area(struct bpfvm *vm)
{
    for (uint32_t i = 0; i < vm->area_cnt; i++)
        if (vm->areas[i].kind == BPFVM_REGION_SKB)
            return &vm->areas[i];
    return NULL;
}

/* bpf_skb_load_helper_*(): k >= 0 from the network header (skb->data), SKF_NET_OFF + k
 * likewise, SKF_LL_OFF + k from the MAC header (14 bytes before). 1 with *v set, 0 out of
 * bounds, -EINVAL without a socket buffer. */
static int skb_load(struct bpfvm *vm, int32_t k, uint32_t size, uint64_t *v)
{
    const struct bpfvm_area *a = bpfvm_skb_area(vm);
    const unsigned char *p;
    int64_t start, off;

    if (!a)
        return -EINVAL;
    if (k >= 0) {
        start = (int64_t)a->data;
        off = k;
    } else if (k >= SKF_NET_OFF) {
        start = (int64_t)a->data;
        off = (int64_t)k - SKF_NET_OFF;
    } else if (k >= SKF_LL_OFF) {
        start = (int64_t)a->data - 14;
        off = (int64_t)k - SKF_LL_OFF;
    } else {
        return 0;
    }
    if (off < 0 || (uint64_t)(start + off) + size > a->data_end)
        return 0;
    p = (const unsigned char *)(uintptr_t)(start + off);
    *v = size == 1 ? p[0] : size == 2 ? (uint64_t)p[0] << 8 | p[1]
                                      : (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
                                            (uint64_t)p[2] << 8 | p[3];
    return 1;
}

static int run_once(struct bpfvm *vm, uint64_t arg, uint64_t budget, uint64_t *retval,
                    struct bpfvm_report *report)
{
    struct frame frames[BPFVM_MAX_FRAMES];
    uint64_t r[12] = {0}; /* r[11]: a zero for BPF_ABS loads, never written */
    uint64_t left = budget;
    const struct bpfvm_insn *pc = vm->insns;
    unsigned depth = 0;
    int err = 0, why = 0;
    void *p;
    /* Zeroed frames make runs replay (the kernel's verifier refuses reads of unwritten
     * stack; here they read 0). Deeper frames are zeroed when a call enters them. */
    vm->stack_lo = vm->stack_hi - BPFVM_STACK_SIZE;
    memset((void *)(uintptr_t)vm->stack_lo, 0, BPFVM_STACK_SIZE);
    r[1] = arg;
    r[10] = vm->stack_hi;

#define DST r[pc->dst]
#define SRC r[pc->src]
#define IMM pc->imm
#define DST32 ((uint32_t)r[pc->dst])

#if defined(__GNUC__) && !defined(BPFVM_SWITCH)
#define VM_LABEL(name) &&do_##name,
    static const void *const labels[OP_COUNT] = {VM_OPS(VM_LABEL)};
#define OP(name) do_##name:
#define DISPATCH()                    \
    do {                              \
        if (__builtin_expect(left == 0, 0)) \
            goto out_budget;          \
        left--;                       \
        goto *labels[pc->op];         \
    } while (0)
    DISPATCH();
#else
#define OP(name) case OP_##name:
#define DISPATCH() continue
    for (;;) {
        if (left == 0)
            goto out_budget;
        left--;
        switch (pc->op) {
#endif
#define NEXT()  \
    do {        \
        pc++;   \
        DISPATCH(); \
    } while (0)
#define JUMP() \
    do { \
        pc += pc->off + 1; \
        DISPATCH(); \
    } while (0)

    /* ALU: 64-bit on the whole register; 32-bit on the low halves, zero-extended. */
#define ALU_BOTH(NAME, EXPR64, EXPR32) \
    OP(NAME##64_K) { const uint64_t s = IMM; DST = (EXPR64); NEXT(); } \
    OP(NAME##64_X) { const uint64_t s = SRC; DST = (EXPR64); NEXT(); } \
    OP(NAME##32_K) { const uint32_t s = (uint32_t)IMM; DST = (uint32_t)(EXPR32); NEXT(); } \
    OP(NAME##32_X) { const uint32_t s = (uint32_t)SRC; DST = (uint32_t)(EXPR32); NEXT(); }

    ALU_BOTH(ADD, DST + s, DST32 + s)
    ALU_BOTH(SUB, DST - s, DST32 - s)
    ALU_BOTH(MUL, DST * s, DST32 * s)
    ALU_BOTH(OR, DST | s, DST32 | s)
    ALU_BOTH(AND, DST & s, DST32 & s)
    ALU_BOTH(XOR, DST ^ s, DST32 ^ s)
    ALU_BOTH(LSH, DST << (s & 63), DST32 << (s & 31))
    ALU_BOTH(RSH, DST >> (s & 63), DST32 >> (s & 31))
    ALU_BOTH(ARSH, (uint64_t)((int64_t)DST >> (s & 63)),
             (uint32_t)((int32_t)DST32 >> (s & 31)))
    ALU_BOTH(MOV, s, s)
    /* Division by zero gives 0, modulo by zero leaves dst (its low half in 32-bit). */
    ALU_BOTH(DIV, s ? DST / s : 0, s ? DST32 / s : 0)
    ALU_BOTH(MOD, s ? DST % s : DST, s ? DST32 % s : DST32)
    /* Signed: the same for zero; INT_MIN / -1 wraps to INT_MIN and INT_MIN % -1 is 0,
     * as the kernel patches it, where C would trap. */
    ALU_BOTH(SDIV,
             !s ? 0 : s == UINT64_MAX ? 0 - DST : (uint64_t)((int64_t)DST / (int64_t)s),
             !s ? 0u : s == UINT32_MAX ? 0u - DST32 : (uint32_t)((int32_t)DST32 / (int32_t)s))
    ALU_BOTH(SMOD,
             !s ? DST : s == UINT64_MAX ? 0 : (uint64_t)((int64_t)DST % (int64_t)s),
             !s ? DST32 : s == UINT32_MAX ? 0u : (uint32_t)((int32_t)DST32 % (int32_t)s))
    OP(NEG64) { DST = 0 - DST; NEXT(); }
    OP(NEG32) { DST = (uint32_t)(0u - DST32); NEXT(); }
    OP(MOVSX64_8) { DST = (uint64_t)(int64_t)(int8_t)SRC; NEXT(); }
    OP(MOVSX64_16) { DST = (uint64_t)(int64_t)(int16_t)SRC; NEXT(); }
    OP(MOVSX64_32) { DST = (uint64_t)(int64_t)(int32_t)SRC; NEXT(); }
    OP(MOVSX32_8) { DST = (uint32_t)(int32_t)(int8_t)SRC; NEXT(); }
    OP(MOVSX32_16) { DST = (uint32_t)(int32_t)(int16_t)SRC; NEXT(); }
    OP(NOP) { NEXT(); }
    OP(TRUNC16) { DST = (uint16_t)DST; NEXT(); }
    OP(TRUNC32) { DST = (uint32_t)DST; NEXT(); }
    OP(SWAP16) { DST = __builtin_bswap16((uint16_t)DST); NEXT(); }
    OP(SWAP32) { DST = __builtin_bswap32((uint32_t)DST); NEXT(); }
    OP(SWAP64) { DST = __builtin_bswap64(DST); NEXT(); }

    /* Jumps: K forms hold the immediate already sign-extended (64) or truncated (32). */
#define JCOND(NAME, T, CMP) \
    OP(NAME##_K) { if ((T)DST CMP (T)IMM) JUMP(); NEXT(); } \
    OP(NAME##_X) { if ((T)DST CMP (T)SRC) JUMP(); NEXT(); }
#define JBOTH(NAME, T, CMP) JCOND(NAME##64, T##64_t, CMP) JCOND(NAME##32, T##32_t, CMP)
    JBOTH(JEQ, uint, ==)
    JBOTH(JNE, uint, !=)
    JBOTH(JGT, uint, >)
    JBOTH(JGE, uint, >=)
    JBOTH(JLT, uint, <)
    JBOTH(JLE, uint, <=)
    JBOTH(JSGT, int, >)
    JBOTH(JSGE, int, >=)
    JBOTH(JSLT, int, <)
    JBOTH(JSLE, int, <=)
    OP(JSET64_K) { if (DST & IMM) JUMP(); NEXT(); }
    OP(JSET64_X) { if (DST & SRC) JUMP(); NEXT(); }
    OP(JSET32_K) { if (DST32 & (uint32_t)IMM) JUMP(); NEXT(); }
    OP(JSET32_X) { if (DST32 & (uint32_t)SRC) JUMP(); NEXT(); }
    OP(JA) { JUMP(); }

    OP(CALL) {
        bpfvm_helper_fn fn = vm->helpers[IMM];
        if (!fn) {
            /* a helper id the kernel may know (check_helper_call() refuses ids past
             * __BPF_FUNC_MAX_ID at load, as bpfvm_load refuses ids past 255) that this
             * runtime does not implement */
            report_set(report, INSN_AT(pc), "call to helper #%u, which the emulated backend "
                       "does not implement", (unsigned)IMM);
            err = -EINVAL;
            goto out;
        }
        vm->helper_why = NULL;
        err = fn(vm, &r[1], &r[0]);
        if (err) {
            report_set(report, INSN_AT(pc), "helper #%u (%s) failed with %d%s%s",
                       (unsigned)IMM, helper_name(IMM), err, vm->helper_why ? ": " : "",
                       vm->helper_why ? vm->helper_why : "");
            goto out;
        }
        NEXT();
    }
    OP(CALL_LOCAL) {
        /* bpf-to-bpf call: a new frame of 512 bytes with its own r10; r6-r9 come back. */
        if (depth + 1 >= BPFVM_MAX_FRAMES) {
            report_set(report, INSN_AT(pc),
                       "call to insn %d over the limit of %d frames",
                       (int)(pc - vm->insns) + pc->off + 1, BPFVM_MAX_FRAMES);
            err = -E2BIG;
            goto out;
        }
        frames[depth].ret = pc + 1;
        memcpy(frames[depth].saved, &r[6], sizeof(frames[depth].saved));
        depth++;
        r[10] = vm->stack_hi - (uint64_t)BPFVM_STACK_SIZE * depth;
        vm->stack_lo = r[10] - BPFVM_STACK_SIZE;
        memset((void *)(uintptr_t)vm->stack_lo, 0, BPFVM_STACK_SIZE);
        JUMP();
    }
    OP(KFUNC) {
        report_set(report, INSN_AT(pc), "call to a kernel function (kfunc), which the "
                   "emulated backend does not have");
        err = -EINVAL;
        goto out;
    }
    OP(EXIT) {
        if (depth == 0)
            goto out_done;
        depth--;
        memcpy(&r[6], frames[depth].saved, sizeof(frames[depth].saved));
        vm->stack_lo = r[10] - BPFVM_STACK_SIZE; /* r10 restored: the caller's frame */
        pc = frames[depth].ret;
        DISPATCH();
    }
    OP(LDDW) { DST = IMM; pc += 2; DISPATCH(); }
    OP(LD_PKT) {
        /* BPF_ABS/BPF_IND: a big-endian load from the socket buffer's packet; out of
         * bounds, the program ends returning 0 (bpf_skb_load_helper) */
        uint64_t v;
        int rc = skb_load(vm, (int32_t)((uint32_t)SRC + (uint32_t)IMM), (uint32_t)pc->off, &v);
        if (rc < 0) {
            report_set(report, INSN_AT(pc), "a legacy packet load (BPF_ABS/BPF_IND) needs "
                       "a socket buffer: only socket filters have one here");
            err = rc;
            goto out;
        }
        if (rc == 0) {
            r[0] = 0;
            goto out_done_frames;
        }
        r[0] = v;
        NEXT();
    }

    /* Loads and stores: through memcpy, so unaligned addresses are fine (as on x86). */
#define LOADOP(NAME, T, CAST) \
    OP(NAME) { \
        const uint64_t a = SRC + (uint64_t)(int64_t)pc->off; \
        T v; \
        if (!(p = vm_mem(vm, a, sizeof(T), 0, &why))) { \
            if (why == WHY_CONVERTED && pc->op == OP_LDX_W) { \
                DST = vm->conv; \
                NEXT(); \
            } \
            err = fault(vm, report, pc, a, sizeof(T), 0, why == WHY_CONVERTED ? \
                        WHY_PARTIAL_PTR : why); \
            goto out; \
        } \
        memcpy(&v, p, sizeof(T)); \
        DST = CAST v; \
        NEXT(); \
    }
#define STOREOP(NAME, T, VAL) \
    OP(NAME) { \
        const uint64_t a = DST + (uint64_t)(int64_t)pc->off; \
        const T v = (T)(VAL); \
        if (!(p = vm_mem(vm, a, sizeof(T), 1, &why))) { \
            err = fault(vm, report, pc, a, sizeof(T), 1, why); \
            goto out; \
        } \
        memcpy(p, &v, sizeof(T)); \
        NEXT(); \
    }
    LOADOP(LDX_B, uint8_t, (uint64_t))
    LOADOP(LDX_H, uint16_t, (uint64_t))
    LOADOP(LDX_W, uint32_t, (uint64_t))
    LOADOP(LDX_DW, uint64_t, (uint64_t))
    LOADOP(LDXSX_B, int8_t, (uint64_t)(int64_t))
    LOADOP(LDXSX_H, int16_t, (uint64_t)(int64_t))
    LOADOP(LDXSX_W, int32_t, (uint64_t)(int64_t))
    STOREOP(ST_B, uint8_t, IMM)
    STOREOP(ST_H, uint16_t, IMM)
    STOREOP(ST_W, uint32_t, IMM)
    STOREOP(ST_DW, uint64_t, IMM)
    STOREOP(STX_B, uint8_t, SRC)
    STOREOP(STX_H, uint16_t, SRC)
    STOREOP(STX_W, uint32_t, SRC)
    STOREOP(STX_DW, uint64_t, SRC)

    /* Atomics: real atomic instructions, since map values are shared with other
     * processes; aligned only, as the verifier demands. */
#define ATOMICOP(NAME, T) \
    OP(NAME) { \
        const uint64_t a = DST + (uint64_t)(int64_t)pc->off; \
        T *q, old, v = (T)SRC; \
        if (!(p = vm_mem(vm, a, sizeof(T), 1, &why)) || !vm_mem(vm, a, sizeof(T), 0, &why)) { \
            if (why == WHY_CONVERTED) \
                why = WHY_READONLY; \
            err = fault(vm, report, pc, a, sizeof(T), 1, why); \
            goto out; \
        } \
        if (a % sizeof(T)) { \
            report_set(report, INSN_AT(pc), \
                       "misaligned %u-byte atomic at 0x%llx", (unsigned)sizeof(T), \
                       (unsigned long long)a); \
            err = -EACCES; \
            goto out; \
        } \
        q = p; \
        switch (IMM & ~(uint64_t)ATOMIC_FETCH) { \
        case 0x00: old = __atomic_fetch_add(q, v, __ATOMIC_SEQ_CST); break; \
        case 0x40: old = __atomic_fetch_or(q, v, __ATOMIC_SEQ_CST); break; \
        case 0x50: old = __atomic_fetch_and(q, v, __ATOMIC_SEQ_CST); break; \
        case 0xa0: old = __atomic_fetch_xor(q, v, __ATOMIC_SEQ_CST); break; \
        case 0xe0: old = __atomic_exchange_n(q, v, __ATOMIC_SEQ_CST); break; \
        default: /* cmpxchg: compare with r0, r0 gets the old value */ \
            old = (T)r[0]; \
            __atomic_compare_exchange_n(q, &old, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
            r[0] = old; \
            NEXT(); \
        } \
        if (IMM & ATOMIC_FETCH) \
            SRC = old; \
        NEXT(); \
    }
    ATOMICOP(ATOMIC_W, uint32_t)
    ATOMICOP(ATOMIC_DW, uint64_t)

    OP(BAD) {
        /* unreachable: load refuses every path here */
        report_set(report, INSN_AT(pc), "unknown opcode");
        err = -EINVAL;
        goto out;
    }
#if !(defined(__GNUC__) && !defined(BPFVM_SWITCH))
        default:
            goto out_bad;
        }
    }
out_bad:
    report_set(report, INSN_AT(pc), "unknown opcode");
    err = -EINVAL;
    goto out;
#endif

out_budget:
    report_set(report, INSN_AT(pc),
               "the instruction budget of %llu is used up", (unsigned long long)budget);
    err = -E2BIG;
    goto out;
out_done_frames:
out_done:
    *retval = r[0];
out:
    report->executed = budget - left;
    vm->stack_lo = vm->stack_hi - BPFVM_STACK_SIZE;
    return err;
}
