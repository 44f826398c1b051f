/*
 * The eBPF interpreter, loading: the structural checks of the kernel's verifier and the
 * decoding of every instruction into an internal opcode that needs no checks at run time
 * (csrc/vm.c runs them). bpfvm_load() refuses what the verifier refuses by structure
 * alone: unknown opcodes, reserved fields, bad registers, writes to r10, jumps outside the
 * program or into the second half of an ld_imm64, falling off the end, division by a zero
 * immediate, out-of-range shift immediates, unresolvable map references, and stores into a
 * BPF_F_RDONLY_PROG map that straight-line code shows.
 */
#include "vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------------------------- */
/* Reports */

void bpfvm_report_set(struct bpfvm_report *rep, int32_t insn, uint32_t code,
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
        bpfvm_report_set(rep, (int32_t)i, raw->code, "ld_imm64 is missing its second half");
        return -EINVAL;
    }
    if (hi->code || hi->regs || hi->off || raw->off) {
        bpfvm_report_set(rep, (int32_t)i, raw->code, "ld_imm64 uses reserved fields");
        return -EINVAL;
    }
    if (src == 0) {
        d->imm = (uint64_t)(uint32_t)raw->imm | (uint64_t)(uint32_t)hi->imm << 32;
        return 0;
    }
    if (src != PSEUDO_MAP_FD && src != PSEUDO_MAP_VALUE && src != PSEUDO_MAP_IDX &&
        src != PSEUDO_MAP_IDX_VALUE) {
        bpfvm_report_set(rep, (int32_t)i, raw->code, "ld_imm64 with unsupported src_reg %u",
                         (unsigned)src);
        return -EINVAL;
    }
    m = find_map(vm, src, raw->imm);
    if (m < 0) {
        bpfvm_report_set(rep, (int32_t)i, raw->code,
                         "ld_imm64 refers to map %s %d, not in the map table",
                         src >= PSEUDO_MAP_IDX ? "index" : "fd", (int)raw->imm);
        return -EBADF;
    }
    if (src == PSEUDO_MAP_FD || src == PSEUDO_MAP_IDX) {
        if (hi->imm) {
            bpfvm_report_set(rep, (int32_t)i, raw->code,
                             "ld_imm64 map pointer with a non-zero offset");
            return -EINVAL;
        }
        d->imm = (uint64_t)(uintptr_t)&vm->maps[m];
        return 0;
    }
    {
        const struct bpfvm_map *map = &vm->maps[m];
        uint32_t off = (uint32_t)hi->imm;
        if (!map->base || map->map_type != BPFVM_MAP_TYPE_ARRAY || map->max_entries != 1) {
            bpfvm_report_set(rep, (int32_t)i, raw->code,
                             "ld_imm64 map value of map %d: only one-element arrays have one", m);
            return -EINVAL;
        }
        if (off >= map->value_size) {
            bpfvm_report_set(rep, (int32_t)i, raw->code,
                             "ld_imm64 map value offset %u past value_size %u", off,
                             map->value_size);
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
            bpfvm_report_set(rep, (int32_t)i, raw[i].code,
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
            bpfvm_report_set(rep, (int32_t)i, raw[i].code,
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
            bpfvm_report_set(rep, (int32_t)i, r->code, "invalid register r%u",
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
            bpfvm_report_set(rep, (int32_t)i, r->code, "%s (code 0x%02x)",
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
            bpfvm_report_set(rep, (int32_t)i, raw[i].code,
                             "jump to %lld, outside the program (%u insns)%s", (long long)target,
                             n, target >= 0 && target < n ? " or into an ld_imm64" : "");
            err = -EINVAL;
            goto out;
        }
        if (d->op != OP_EXIT && d->op != OP_JA && next >= n) {
            bpfvm_report_set(rep, (int32_t)i, raw[i].code, "falls off the end of the program");
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
        bpfvm_report_set(report, -1, 0,
                         "a program needs 1 to 1048576 instructions and at most 4096 maps");
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
            bpfvm_report_set(report, -1, 0, "map %u: elem_size %llu cannot hold value_size %u", i,
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
    bpfvm_report_set(report, -1, 0, "out of memory");
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
