// `bpfmap bench`'s program side: each XDP program touches a map value ACCESSES times, so a
// BPF_PROG_TEST_RUN with `repeat`, minus the empty program's time, gives ns per access.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define ACCESSES 100

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   __u64 flags) = (void *)BPF_FUNC_map_update_elem;

__u64 counter; /* .bss: a global variable, read from Python through the mapping */

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
    __uint(map_flags, BPF_F_MMAPABLE);
} slots SEC(".maps");

SEC("xdp")
int empty(struct xdp_md *ctx)
{
    return XDP_PASS;
}

SEC("xdp")
int global_increment(struct xdp_md *ctx)
{
    for (int i = 0; i < ACCESSES; i++)
        *(volatile __u64 *)&counter += 1;
    return XDP_PASS;
}

SEC("xdp")
int lookup_increment(struct xdp_md *ctx)
{
    __u32 key = 0;

    for (int i = 0; i < ACCESSES; i++) {
        __u64 *slot = bpf_map_lookup_elem(&slots, &key);

        if (slot)
            *(volatile __u64 *)slot += 1;
    }
    return XDP_PASS;
}

SEC("xdp")
int update_helper(struct xdp_md *ctx)
{
    __u32 key = 0;

    for (__u64 i = 0; i < ACCESSES; i++)
        bpf_map_update_elem(&slots, &key, &i, BPF_ANY);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
