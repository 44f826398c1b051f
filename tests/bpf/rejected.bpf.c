// A program the verifier refuses: it writes a .rodata variable, and libbpf creates .rodata
// with BPF_F_RDONLY_PROG ("write into map forbidden", EACCES at load).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

const volatile __u64 limit = 10;

SEC("xdp")
int writes_rodata(struct xdp_md *ctx)
{
    *(volatile __u64 *)&limit = 11;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
