// A map type the emulated backend does not have: on the kernel BpfObject.maps gives its fd.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} seen SEC(".maps");

__u32 last;

SEC("xdp")
int remember(struct xdp_md *ctx)
{
    last = ctx->data_end - ctx->data;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
