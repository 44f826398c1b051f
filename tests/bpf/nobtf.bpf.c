// Built without -g: no BTF, so its global data has no types (bpfmap refuses it clearly).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

__u64 hits;

SEC("xdp")
int count(struct xdp_md *ctx)
{
    hits++;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
