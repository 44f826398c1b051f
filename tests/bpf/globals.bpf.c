// Global data of every kind, for bpfmap's object tests: .rodata knobs, .bss counters, .data
// initial values, custom sections, arrays, structs, nested structs, enums and unions, and
// an explicit mmapable array map, used by XDP, raw tracepoint and syscall programs.
// Build: tools/bpf-objects.sh (clang -O2 -g -target bpf).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   __u64 flags) = (void *)BPF_FUNC_map_update_elem;

struct config {
    __u32 scale;
    __s16 offset;
    __u8 tag[4];
};

struct stats {
    struct config seen;
    __u64 packets;
    __s32 last_len;
};

enum mode { MODE_OFF = 0, MODE_COUNT = 1, MODE_SCALE = 5 };

union word {
    __u32 value;
    __u8 bytes[4];
};

/* .rodata: set from Python before load, frozen after. */
const volatile __u64 knob = 7;
const volatile struct config cfg = { .scale = 3, .offset = -2, .tag = { 'b', 'p', 'f', 0 } };
const volatile enum mode run_mode = MODE_COUNT;
const volatile __u32 target_tgid;    /* only this process's ... */
const volatile __u64 target_syscall; /* ... calls of this system call count */

/* .bss: zero at load, counted by the programs. */
__u64 counter;
__u32 hist[8];
struct stats stats;
__s64 signed_total;

/* .data: initial values. */
int initialized = 42;
union word word = { .value = 0x01020304 };
__u16 small[3] = { 1, 2, 3 };

/* Custom data sections. */
__u32 custom_data SEC(".data.custom") = 9;
const volatile __u32 custom_ro SEC(".rodata.custom") = 11;

/* An explicit mmapable array. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
    __uint(map_flags, BPF_F_MMAPABLE);
} counts SEC(".maps");

static __attribute__((noinline)) __u64 scaled(__u64 v)
{
    return v * cfg.scale + cfg.offset;
}

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
    __u32 len = ctx->data_end - ctx->data;
    __u32 key = len & 3;
    __u64 *slot;

    counter += knob;
    hist[len & 7]++;
    stats.packets++;
    stats.last_len = len;
    signed_total -= len;
    if (run_mode == MODE_SCALE)
        counter += scaled(len);
    slot = bpf_map_lookup_elem(&counts, &key);
    if (slot)
        __sync_fetch_and_add(slot, 1);
    return initialized == 42 ? XDP_PASS : XDP_DROP;
}

SEC("raw_tp/sys_enter")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    if (bpf_get_current_pid_tgid() >> 32 != target_tgid || ctx->args[1] != target_syscall)
        return 0;
    __sync_fetch_and_add(&counter, 1);
    return 0;
}

SEC("syscall")
int set_values(void *ctx)
{
    __u32 key = 2;
    __u64 value = knob + custom_ro + custom_data;

    bpf_map_update_elem(&counts, &key, &value, BPF_ANY);
    word.bytes[0] = 0xff;
    small[2] = 77;
    return (int)value;
}

char LICENSE[] SEC("license") = "GPL";
