// The demo's program: what every libbpf tutorial's first tool does, for bpfmap to drive from
// Python. A .rodata knob picks the process; .bss counters are read live through the mapping.
// Built with clang -O2 -g -target bpf (tools/bpf-objects.sh); the object ships with bpfmap.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;

#define MAX_SYSCALLS 512

/* .rodata: set before load; 0 counts every process. */
const volatile __u32 target_tgid;

/* .bss: counted by the programs, read (and reset) from Python. */
__u64 syscalls[MAX_SYSCALLS]; /* per system call number */
__u64 total;
__u64 packets;
__u64 bytes;

SEC("raw_tp/sys_enter")
int count_syscalls(struct bpf_raw_tracepoint_args *ctx)
{
    __u64 nr = ctx->args[1];

    if (target_tgid && bpf_get_current_pid_tgid() >> 32 != target_tgid)
        return 0;
    if (nr < MAX_SYSCALLS)
        __sync_fetch_and_add(&syscalls[nr], 1);
    __sync_fetch_and_add(&total, 1);
    return 0;
}

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
    packets++;
    bytes += ctx->data_end - ctx->data;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
