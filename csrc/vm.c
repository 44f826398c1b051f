/*
 * The eBPF interpreter, running (loading is csrc/vm_load.c): an interpreter for the eBPF
 * instruction set as the kernel defines it
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
            bpfvm_report_set(rep, -1, 0, "region %u is invalid", i);
            return -EINVAL;
        }
        if (r->kind > BPFVM_REGION_SKB ||
            (r->kind == BPFVM_REGION_XDP_MD && (r->len < 12 || r->data > r->data_end)) ||
            (r->kind == BPFVM_REGION_SKB &&
             (r->len < 192 || r->data < 14 || r->data > r->data_end))) {
            bpfvm_report_set(rep, -1, 0, "region %u is invalid", i);
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
    bpfvm_report_set(rep, INSN_AT(pc), "%u-byte %s 0x%llx %s", (unsigned)size,
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
            bpfvm_report_set(report, INSN_AT(pc), "call to helper #%u, which the emulated backend "
                             "does not implement", (unsigned)IMM);
            err = -EINVAL;
            goto out;
        }
        vm->helper_why = NULL;
        err = fn(vm, &r[1], &r[0]);
        if (err) {
            bpfvm_report_set(report, INSN_AT(pc), "helper #%u (%s) failed with %d%s%s",
                             (unsigned)IMM, helper_name(IMM), err, vm->helper_why ? ": " : "",
                             vm->helper_why ? vm->helper_why : "");
            goto out;
        }
        NEXT();
    }
    OP(CALL_LOCAL) {
        /* bpf-to-bpf call: a new frame of 512 bytes with its own r10; r6-r9 come back. */
        if (depth + 1 >= BPFVM_MAX_FRAMES) {
            bpfvm_report_set(report, INSN_AT(pc),
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
        bpfvm_report_set(report, INSN_AT(pc), "call to a kernel function (kfunc), which the "
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
            bpfvm_report_set(report, INSN_AT(pc), "a legacy packet load (BPF_ABS/BPF_IND) needs "
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
            bpfvm_report_set(report, INSN_AT(pc), \
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
        bpfvm_report_set(report, INSN_AT(pc), "unknown opcode");
        err = -EINVAL;
        goto out;
    }
#if !(defined(__GNUC__) && !defined(BPFVM_SWITCH))
        default:
            goto out_bad;
        }
    }
out_bad:
    bpfvm_report_set(report, INSN_AT(pc), "unknown opcode");
    err = -EINVAL;
    goto out;
#endif

out_budget:
    bpfvm_report_set(report, INSN_AT(pc),
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
