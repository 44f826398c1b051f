// The interpreter's corpus: C that clang turns into every instruction class the default CPU
// has (ALU and ALU64, JMP and JMP32 through comparisons of 32-bit values, loads and stores
// of every width, byte swaps, atomic adds), bpf-to-bpf calls with stack pointers passed down,
// bounded loops, packet parsing, and the array-map helpers. tests/test_vm_programs.py runs
// every program on both backends and compares retval, data, ctx and every map byte.
// Build: tools/bpf-objects.sh (clang -O2 -g -target bpf).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define noinline __attribute__((noinline))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   __u64 flags) = (void *)BPF_FUNC_map_update_elem;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_delete_elem;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to,
                                  __u32 len) = (void *)BPF_FUNC_skb_load_bytes;
/* BPF_ABS loads, as classic BPF filters do them */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size,
                                ...) = (void *)BPF_FUNC_trace_printk;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)BPF_FUNC_get_smp_processor_id;

struct args {
    __u64 a;
    __u64 b;
    __s64 c;
    __u32 d;
    __s32 e;
};

struct results {
    __u64 v[24];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, struct results);
} results SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 3);
    __type(key, __u32);
    __type(value, __u32[3]); /* value_size 12: an 8-byte stride leaves 4 bytes of padding */
} odd SEC(".maps");

const volatile __u32 scale = 3;
__u64 calls_made;
__s64 sum_args;
__u32 packets_seen;
__u8 last_mac[6];
__u64 hits[4] = { 1, 2, 3, 4 };

static noinline __u64 mix(__u64 x, __u64 y)
{
    return (x * 0x9e3779b97f4a7c15ULL) ^ (y >> 7) ^ (y << 13);
}

static noinline __s64 fill(__u64 *slots, int n, __s64 seed)
{
    __s64 acc = seed;
    for (int i = 0; i < n && i < 16; i++) {
        slots[i] = mix(acc, i);
        acc += (__s64)(slots[i] / 3) - (__s64)(slots[i] % 7);
    }
    calls_made++;
    return acc;
}

static noinline __u64 depth3(__u64 x);
static noinline __u64 depth2(__u64 x) { return depth3(x + 1) * 2; }
static noinline __u64 depth1(__u64 x) { return depth2(x ^ 0x55) + 1; }
static noinline __u64 depth3(__u64 x)
{
    __u64 local[4] = { x, x + 1, x + 2, x + 3 };
    calls_made++;
    return local[x & 3] + local[(x >> 2) & 3];
}

SEC("syscall")
int arith(struct args *ctx)
{
    __u32 key = 0;
    struct results *r = bpf_map_lookup_elem(&results, &key);
    __u64 a = ctx->a, b = ctx->b;
    __s64 c = ctx->c;
    __u32 d = ctx->d;
    __s32 e = ctx->e;

    if (!r)
        return 1;
    r->v[0] = a + b;
    r->v[1] = a - b;
    r->v[2] = a * b;
    r->v[3] = b ? a / b : 0;
    r->v[4] = b ? a % b : 0;
    r->v[5] = a << (b & 63);
    r->v[6] = a >> (b & 63);
    r->v[7] = c >> (b & 63);
    r->v[8] = (__u32)a + (__u32)b;
    r->v[9] = d ? (__u32)a / d : 7;
    r->v[10] = d ? (__u32)a % d : 7;
    r->v[11] = (__u32)a << (d & 31);
    r->v[12] = (__s32)e >> (d & 31);
    r->v[13] = __builtin_bswap64(a);
    r->v[14] = __builtin_bswap32(d);
    r->v[15] = __builtin_bswap16((__u16)d);
    r->v[16] = (c < 0) + ((__s32)e < (__s32)d) * 2 + (d > (__u32)a) * 4 + (a > b) * 8;
    r->v[17] = (__s8)a + (__s16)b + (__s32)c;
    r->v[18] = ~a & (b | c) ^ d;
    r->v[19] = -c;
    r->v[20] = a * scale;
    r->v[21] = (a & 0xffff) == 0x1234 ? 1 : (b & 1) ? 2 : 3;
    ctx->a = r->v[2] ^ r->v[13];
    ctx->e = (__s32)(r->v[16] + r->v[17]);
    return (int)(r->v[0] ^ r->v[5] ^ r->v[12]);
}

SEC("syscall")
int calls(struct args *ctx)
{
    __u64 slots[16] = {};
    __u32 key = 1;
    struct results *r = bpf_map_lookup_elem(&results, &key);
    __s64 acc;

    if (!r)
        return 1;
    acc = fill(slots, (int)(ctx->d & 15) + 1, ctx->c);
    r->v[0] = (__u64)acc;
    r->v[1] = depth1(ctx->a);
    for (int i = 0; i < 16; i++)
        r->v[2 + (i & 7)] += slots[i & 15] & 0xff;
    return (int)(acc >> 3);
}

SEC("syscall")
int maps(void *ctx)
{
    __u32 key, val[3] = { 7, 8, 9 };
    long rc = 0;
    __u32 *p;

#define UPDATE(k, flags)                                                           \
    key = k;                                                                       \
    rc = rc * 8 + (bpf_map_update_elem(&odd, &key, val, flags) & 7);               \
    val[0] += 3;
    UPDATE(0, BPF_ANY)
    UPDATE(1, BPF_NOEXIST)
    UPDATE(2, BPF_EXIST)
    UPDATE(3, BPF_ANY)
    UPDATE(4, BPF_ANY)
    key = 2;
    rc = rc * 8 + (bpf_map_delete_elem(&odd, &key) & 7);
    p = bpf_map_lookup_elem(&odd, &key);
    if (p) {
        p[1] ^= 0xdead;
        __sync_fetch_and_add(&p[2], 5);
    }
    key = 9;
    if (bpf_map_lookup_elem(&odd, &key))
        rc = -1;
#pragma clang loop unroll(full)
    for (int i = 0; i < 4; i++)
        __sync_fetch_and_add(&hits[i], i * 10);
    rc += (bpf_ktime_get_ns() > 0) + (bpf_get_smp_processor_id() < 65536);
    return (int)rc;
}

SEC("xdp")
int parse(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    unsigned char *p = data;
    __u16 proto;
    __u32 sum = 0;

    if (p + 14 > (unsigned char *)end)
        return XDP_ABORTED;
    for (int i = 0; i < 6; i++) {
        unsigned char t = p[i];
        last_mac[i] = p[6 + i];
        p[i] = p[6 + i];
        p[6 + i] = t;
    }
    proto = (__u16)(p[12] << 8 | p[13]);
    for (int i = 14; i < 78; i++) {
        if (p + i + 1 > (unsigned char *)end)
            break;
        sum += p[i] * (i & 7);
    }
    __sync_fetch_and_add(&packets_seen, 1);
    if (proto == 0x0800)
        return XDP_TX;
    return sum & 1 ? XDP_PASS : XDP_DROP;
}

SEC("socket")
int filter(struct __sk_buff *skb)
{
    __u8 head[4] = {};
    __u32 verdict;

    skb->cb[0] = skb->len;
    if (skb->protocol != __builtin_bswap16(0x0800))
        return skb->pkt_type == 3 ? 0 : (int)skb->cb[0];
    if (load_byte(skb, 0) >> 4 != 4)  /* IPv4 version */
        return 1;
    verdict = (__u32)load_half(skb, 2) + (__u32)load_word(skb, 12);
    if (bpf_skb_load_bytes(skb, 16, head, sizeof(head)) < 0)
        return 2;
    return (int)((verdict + head[0] + head[3]) & 0xffff);
}

SEC("syscall")
int printk(struct args *ctx)
{
    static const char fmt[] = "a=%llu d=%u e=%d\n";
    long n = bpf_trace_printk(fmt, sizeof(fmt), ctx->a, ctx->d, ctx->e);
    const char *msg = "literal %s\n"; /* a string literal: .rodata.str1.1 */

    n += bpf_trace_printk(msg, 12, "x");
    return (int)n;
}

SEC("raw_tp/sys_enter")
int args(struct bpf_raw_tracepoint_args *ctx)
{
    sum_args += (__s64)ctx->args[0] - (__s64)ctx->args[1];
    return (int)(ctx->args[1] & 0xff);
}

char LICENSE[] SEC("license") = "GPL";
