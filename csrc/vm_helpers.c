/*
 * The default helpers of the eBPF interpreter: array-map lookup, update and delete as
 * kernel/bpf/arraymap.c does them, and the plain helpers of kernel/bpf/helpers.c and
 * kernel/trace/bpf_trace.c. A helper's errors that the kernel returns to the program
 * (-E2BIG, -EEXIST, ...) land in r0; what the kernel's verifier would have refused at
 * load (a bad pointer, a write to a BPF_F_RDONLY_PROG map) stops the run instead.
 */
#define _GNU_SOURCE
#include "vm.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BPF_NOEXIST 1
#define BPF_EXIST 2
#define BPF_F_LOCK 4

static uint64_t neg(int err) { return (uint64_t)(int64_t)err; }

/* The array map behind r1 and the element index behind the key pointer r2. */
static int array_elem(struct bpfvm *vm, const uint64_t *args, int write,
                      struct bpfvm_map **map, uint32_t *index)
{
    const void *key;

    *map = bpfvm_map_of(vm, args[0]);
    if (!*map) {
        vm->helper_why = "r1 is not a map pointer";
        return -EINVAL;
    }
    if ((*map)->map_type != BPFVM_MAP_TYPE_ARRAY || !(*map)->base) {
        vm->helper_why = "only array maps with memory are supported";
        return -EOPNOTSUPP;
    }
    /* record_func_map(): "write into map forbidden" for update/delete on such a map */
    if (write && ((*map)->map_flags & BPFVM_F_RDONLY_PROG)) {
        vm->helper_why = "write into a BPF_F_RDONLY_PROG map";
        return -EACCES;
    }
    if (write && (*map)->frozen) {
        vm->helper_why = "write into a frozen map (the emulated backend seals frozen maps "
                         "against every write, programs' too)";
        return -EPERM;
    }
    key = bpfvm_access(vm, args[1], 4, 0);
    if (!key || (*map)->key_size != 4) {
        vm->helper_why = "r2 does not point at a readable 4-byte key";
        return -EACCES;
    }
    memcpy(index, key, 4);
    return 0;
}

/* array_map_lookup_elem(): the element's address, NULL past max_entries. */
int bpfvm_map_lookup_elem(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    struct bpfvm_map *map;
    uint32_t index;
    int err = array_elem(vm, args, 0, &map, &index);

    if (err)
        return err;
    *ret = index < map->max_entries
               ? (uint64_t)(uintptr_t)map->base + map->elem_size * index
               : 0;
    return 0;
}

/* array_map_update_elem(): flags, then the index, then BPF_NOEXIST; the value copied. */
int bpfvm_map_update_elem(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    struct bpfvm_map *map;
    uint32_t index;
    const void *value;
    uint64_t flags = args[3];
    int err = array_elem(vm, args, 1, &map, &index);

    if (err)
        return err;
    value = bpfvm_access(vm, args[2], map->value_size, 0);
    if (!value) {
        vm->helper_why = "r3 does not point at a readable value";
        return -EACCES;
    }
    if ((flags & ~(uint64_t)BPF_F_LOCK) > BPF_EXIST)
        *ret = neg(-EINVAL);
    else if (index >= map->max_entries)
        *ret = neg(-E2BIG);
    else if (flags & BPF_NOEXIST)
        *ret = neg(-EEXIST);
    else if (flags & BPF_F_LOCK) /* no bpf_spin_lock in our values */
        *ret = neg(-EINVAL);
    else {
        memmove(map->base + map->elem_size * index, value, map->value_size);
        *ret = 0;
    }
    return 0;
}

/* array_map_delete_elem(): array elements cannot be deleted. */
int bpfvm_map_delete_elem(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    struct bpfvm_map *map;
    uint32_t index;
    int err = array_elem(vm, args, 1, &map, &index);

    if (err)
        return err;
    *ret = neg(-EINVAL);
    return 0;
}

int bpfvm_ktime_get_ns(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    struct timespec ts;
    (void)vm;
    (void)args;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *ret = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return 0;
}

/* splitmix64: deterministic from the seed, so a run replays. */
int bpfvm_get_prandom_u32(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    uint64_t z = (vm->prandom_state += 0x9e3779b97f4a7c15ull);
    (void)args;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    *ret = (uint32_t)((z ^ (z >> 31)) >> 32);
    return 0;
}

/* bpf_skb_load_bytes(skb, offset, to, len): from the packet (after the MAC header) into
 * the program's memory; out of bounds (or offset > INT_MAX) zero-fills and gives -EFAULT. */
int bpfvm_skb_load_bytes(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    const struct bpfvm_area *a = bpfvm_skb_area(vm);
    uint32_t off = (uint32_t)args[1], len = (uint32_t)args[3];
    unsigned char *to;

    if (!a || args[0] != a->base) {
        vm->helper_why = "r1 is not the socket buffer of a socket filter";
        return -EINVAL;
    }
    to = len ? bpfvm_access(vm, args[2], len, 1) : NULL;
    if (!to) {
        vm->helper_why = "r3/r4 do not describe writable memory";
        return -EACCES;
    }
    if (off > INT32_MAX || (uint64_t)off + len > a->data_end - a->data) {
        memset(to, 0, len);
        *ret = neg(-EFAULT);
        return 0;
    }
    memcpy(to, (const void *)(uintptr_t)(a->data + off), len);
    *ret = 0;
    return 0;
}

/* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME, which counts suspend too. */
int bpfvm_ktime_get_boot_ns(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    struct timespec ts;
    (void)vm;
    (void)args;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    *ret = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return 0;
}

/* The kernel's test run executes in the calling task: its tgid (a process id) in the
 * high half, its pid (a thread id) in the low half. */
int bpfvm_get_current_pid_tgid(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    (void)vm;
    (void)args;
    *ret = (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)gettid();
    return 0;
}

/* current_uid_gid(): the real gid in the high half, the real uid in the low half. */
int bpfvm_get_current_uid_gid(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    (void)vm;
    (void)args;
    *ret = (uint64_t)getgid() << 32 | getuid();
    return 0;
}

int bpfvm_get_smp_processor_id(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    int cpu = sched_getcpu();
    (void)vm;
    (void)args;
    *ret = cpu < 0 ? 0 : (uint64_t)cpu;
    return 0;
}

/* -------------------------------------------------------------------------------- */
/* trace_printk, captured */

static void trace_append(struct bpfvm *vm, const char *s, size_t n)
{
    if (vm->trace_len + n + 1 > vm->trace_cap) {
        uint64_t cap = vm->trace_cap ? vm->trace_cap : 256;
        char *t;
        while (cap < vm->trace_len + n + 1)
            cap *= 2;
        if (cap > BPFVM_TRACE_MAX)
            return; /* full: the line is dropped, like an overrun trace buffer */
        t = realloc(vm->trace, cap);
        if (!t)
            return;
        vm->trace = t;
        vm->trace_cap = cap;
    }
    memcpy(vm->trace + vm->trace_len, s, n);
    vm->trace_len += n;
    vm->trace[vm->trace_len] = 0;
}

const char *bpfvm_trace_output(struct bpfvm *vm, uint64_t *len)
{
    *len = vm->trace_len;
    return vm->trace ? vm->trace : "";
}

void bpfvm_trace_clear(struct bpfvm *vm) { vm->trace_len = 0; }

/* A %s argument: the string the program points at, up to its NUL or the end of what it
 * may read; unreadable memory gives an empty string, as a failed
 * strncpy_from_kernel_nofault() does. */
static size_t read_str(struct bpfvm *vm, uint64_t addr, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        const char *c = bpfvm_access(vm, addr + n, 1, 0);
        if (!c || !*c)
            break;
        out[n++] = *c;
    }
    out[n] = 0;
    return n;
}

/*
 * bpf_trace_printk(fmt, fmt_size, a1, a2, a3) with bpf_bprintf_prepare()'s rules: fmt
 * NUL-terminated within fmt_size, printable, at most three arguments, and only %d %i
 * %u %x %X (with l or ll), %c, %s, %p, %px and %%. Returns the length written.
 */
int bpfvm_trace_printk(struct bpfvm *vm, const uint64_t *args, uint64_t *ret)
{
    const char *fmt;
    uint64_t size = args[1];
    char out[1024], piece[160];
    size_t o = 0;
    unsigned argi = 0;

    fmt = size ? bpfvm_access(vm, args[0], size, 0) : NULL;
    if (!fmt) {
        vm->helper_why = "r1/r2 do not describe readable memory";
        return -EACCES;
    }
    if (fmt[size - 1] != 0) {
        *ret = neg(-EINVAL);
        return 0;
    }
    for (const char *f = fmt; *f; f++) {
        size_t n;
        if ((unsigned char)*f >= 0x80 || (*f < 0x20 && *f != '\n' && *f != '\t')) {
            *ret = neg(-EINVAL);
            return 0;
        }
        if (*f != '%') {
            if (o + 1 < sizeof(out))
                out[o++] = *f;
            continue;
        }
        f++;
        if (*f == '%') {
            if (o + 1 < sizeof(out))
                out[o++] = '%';
            continue;
        }
        if (argi >= 3) {
            *ret = neg(-EINVAL);
            return 0;
        }
        {
            uint64_t a = args[2 + argi++];
            int longs = 0;
            if (*f == 's') {
                n = read_str(vm, a, piece, sizeof(piece));
            } else if (*f == 'c') {
                piece[0] = (char)a;
                n = 1;
            } else if (*f == 'p') {
                if (f[1] == 'x')
                    f++;
                else if (f[1] && strchr("KBiIku", f[1])) {
                    *ret = neg(-EINVAL); /* %pK, %pI4, %pks, ...: not captured here */
                    return 0;
                }
                n = (size_t)snprintf(piece, sizeof(piece), "0x%016" PRIx64, a);
            } else {
                while (*f == 'l' && longs < 2) {
                    longs++;
                    f++;
                }
                if (longs == 0)
                    a = (uint32_t)a; /* int-sized */
                switch (*f) {
                case 'd':
                case 'i':
                    n = (size_t)snprintf(piece, sizeof(piece), "%" PRId64,
                                         longs ? (int64_t)a : (int64_t)(int32_t)a);
                    break;
                case 'u':
                    n = (size_t)snprintf(piece, sizeof(piece), "%" PRIu64, a);
                    break;
                case 'x':
                    n = (size_t)snprintf(piece, sizeof(piece), "%" PRIx64, a);
                    break;
                case 'X':
                    n = (size_t)snprintf(piece, sizeof(piece), "%" PRIX64, a);
                    break;
                default:
                    *ret = neg(-EINVAL);
                    return 0;
                }
            }
            if (n >= sizeof(piece))
                n = sizeof(piece) - 1;
            if (o + n < sizeof(out)) {
                memcpy(out + o, piece, n);
                o += n;
            }
        }
    }
    trace_append(vm, out, o);
    *ret = o;
    return 0;
}
