// Kconfig externs: libbpf fills the .kconfig section at load from the running kernel's config
// and version; bpfmap's emulated backend must give the same bytes.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __kconfig __attribute__((section(".kconfig")))
#define __weak __attribute__((weak))

enum libbpf_tristate { TRI_NO = 0, TRI_YES = 1, TRI_MODULE = 2 };

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig;
extern int CONFIG_HZ __kconfig;
extern unsigned long long CONFIG_NR_CPUS __kconfig;
extern char CONFIG_DEFAULT_HOSTNAME[8] __kconfig;
extern int CONFIG_BPFMAP_SURELY_MISSING __kconfig __weak;

__u64 seen;

SEC("syscall")
int read_config(void *ctx)
{
    seen = LINUX_KERNEL_VERSION + CONFIG_BPF_SYSCALL + CONFIG_BPF_JIT + CONFIG_HZ +
           CONFIG_NR_CPUS + CONFIG_DEFAULT_HOSTNAME[0] + CONFIG_BPFMAP_SURELY_MISSING;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
