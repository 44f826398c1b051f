/*
 * libFuzzer harness for the bpfmap C core, emulated backend.
 *
 * Each input is decoded into one map creation (fuzzed map type, key and value
 * size, max_entries, flags, name bytes and name length), then a sequence of
 * calls on it with fuzzed keys, flags, batch tokens and counts, mmap offsets
 * and lengths, plus descriptors opened from it (dup, O_RDONLY, O_WRONLY) and
 * memfds with a fuzzed header, size and seals adopted with bpfmap_open_fd().
 * The harness keeps the API's contract (every buffer holds what *count or
 * value_size says), so any out-of-bounds access, UB or crash is the core's.
 * Every input must release every descriptor: a leak aborts.
 *
 *     clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc fuzz/fuzz_core.c csrc/*.c
 *
 * See fuzz/run.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "bpfmap.h"
#include "layout.h"

#define MAX_BUF (1u << 20) /* value and batch buffers: at most 1 MiB */
#define MAX_OPS 64

struct input {
    const uint8_t *p;
    size_t left;
};

static uint64_t take(struct input *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        v <<= 8;
        if (in->left) {
            v |= *in->p++;
            in->left--;
        }
    }
    return v;
}

static uint8_t u8(struct input *in) { return (uint8_t)take(in, 1); }
static uint32_t u32(struct input *in) { return (uint32_t)take(in, 4); }
static uint64_t u64(struct input *in) { return take(in, 8); }

/* A key: mostly near the map's range, sometimes anything. */
static uint32_t key(struct input *in, const struct bpfmap *m)
{
    uint8_t how = u8(in);
    uint32_t n = m->max_entries;
    switch (how & 7) {
    case 0: return 0;
    case 1: return n - 1;
    case 2: return n;
    case 3: return n + 1;
    case 4: return u32(in);
    default: return n ? u32(in) % (n + 2) : u32(in);
    }
}

static uint64_t flags64(struct input *in)
{
    uint8_t how = u8(in);
    if (how < 160)
        return 0;
    if (how < 224)
        return how & 7;
    return u64(in);
}

static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    return fd;
}

/* A memfd with a fuzzed header, size and seals, adopted with bpfmap_open_fd(). */
static void fuzz_open_crafted(struct input *in)
{
    long page = sysconf(_SC_PAGESIZE);
    uint8_t header[sizeof(struct bpfmap_header)];
    uint8_t shape = u8(in);
    uint64_t size = (uint64_t)page * (shape & 3) + ((shape & 4) ? u8(in) : 0);
    int seals = (shape & 8) ? 0 : F_SEAL_GROW | F_SEAL_SHRINK;
    struct bpfmap m;
    int fd = memfd_create("crafted", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return;
    for (unsigned i = 0; i < sizeof(header); i++)
        header[i] = u8(in);
    if (shape & 16) { /* a valid header with a few fields fuzzed */
        struct bpfmap good;
        if (bpfmap_create(&good, BPFMAP_BACKEND_EMULATED, 2, 4, 1 + (shape >> 5), 1 + u8(in),
                          BPFMAP_F_MMAPABLE, "", 0) == 0) {
            uint8_t orig[sizeof(header)];
            if (pread(good.fd, orig, sizeof(orig), (off_t)layout_header_offset((uint64_t)page)) ==
                (ssize_t)sizeof(orig)) {
                for (unsigned i = 0; i < sizeof(orig); i++) /* keep most bytes */
                    header[i] = (header[i] & 0xc0) == 0xc0 ? (uint8_t)(header[i] << 2) : orig[i];
                size = layout_file_size(good.value_size, good.max_entries, good.page_size) +
                       ((shape & 4) ? 8 : 0);
            }
            bpfmap_release(&good);
        }
    }
    if (size > (64u << 20))
        size = 64u << 20;
    if (ftruncate(fd, (off_t)size) == 0 && size >= (uint64_t)page)
        (void)!pwrite(fd, header, sizeof(header), (off_t)layout_header_offset((uint64_t)page));
    if (seals)
        fcntl(fd, F_ADD_SEALS, seals);
    if (bpfmap_open_fd(&m, fd) == 0) {
        /* Adopted: the geometry must fit the file, and reads must work. */
        uint8_t *v = m.value_size <= MAX_BUF ? malloc(m.value_size) : NULL;
        if (v) {
            if (bpfmap_lookup(&m, m.max_entries - 1, v, 0) != 0)
                abort();
            bpfmap_update(&m, m.max_entries - 1, v, 0);
            free(v);
        }
        bpfmap_release(&m); /* closes fd */
    } else {
        if (fcntl(fd, F_GETFD) < 0) /* "the caller still owns fd on failure" */
            abort();
        close(fd);
    }
}

static void fuzz_mmap(struct input *in, struct bpfmap *m)
{
    int writable = u8(in) & 1, shared = u8(in) & 1, fd;
    uint64_t offset = (u8(in) & 1) ? u64(in) : (uint64_t)(u8(in) & 3) * m->page_size;
    uint64_t length = (u8(in) & 1) ? u64(in) : (uint64_t)(u8(in) & 3) * m->page_size + u8(in);
    uint64_t file_offset;
    if (bpfmap_mmap_check(m, writable, shared, offset, length, &fd, &file_offset) != 0)
        return;
    /* Accepted: the range lies inside the file's values; map it and touch both ends. */
    if (!shared || file_offset < m->page_size || length > bpfmap_mmap_window(m) ||
        file_offset - m->page_size + length > bpfmap_mmap_window(m))
        abort();
    uint8_t *p = mmap(NULL, length, PROT_READ | (writable ? PROT_WRITE : 0),
                      shared ? MAP_SHARED : MAP_PRIVATE, fd, (off_t)file_offset);
    if (p == MAP_FAILED) {
        if (!(writable && errno == EPERM)) /* a freeze in between is the only excuse */
            abort();
        return;
    }
    volatile uint8_t sink = p[0];
    sink ^= p[length - 1];
    if (writable) {
        p[0] = sink;
        p[length - 1] = sink;
    }
    munmap(p, length);
}

static void fuzz_ops(struct input *in, struct bpfmap *m)
{
    uint32_t vs = m->value_size;
    int values_ok = vs && vs <= MAX_BUF;
    uint8_t *value = values_ok ? calloc(vs, 1) : NULL;
    for (int op = 0; op < MAX_OPS && in->left; op++) {
        uint8_t which = u8(in);
        switch (which % 14) {
        case 0:
            if (value)
                bpfmap_lookup(m, key(in, m), value, flags64(in));
            break;
        case 1:
            if (value) {
                for (uint32_t i = 0; i < vs && i < 16; i++)
                    value[i] = u8(in);
                bpfmap_update(m, key(in, m), value, flags64(in));
            }
            break;
        case 2:
            bpfmap_delete(m, key(in, m));
            break;
        case 3:
            if (value)
                bpfmap_lookup_and_delete(m, key(in, m), value, flags64(in));
            break;
        case 4: {
            uint32_t k = key(in, m), next = 0;
            bpfmap_get_next_key(m, (u8(in) & 1) ? &k : NULL, &next);
            break;
        }
        case 5:
        case 6: { /* lookup_batch: count within what the buffers hold */
            uint32_t cap = vs ? MAX_BUF / vs : 0, count = u32(in), in_b = key(in, m), out_b = 0;
            int with_values = u8(in) & 1;
            if (count > cap)
                count = cap ? count % (cap + 1) : 0;
            if (count > 65536)
                count = 65536;
            uint32_t *keys = malloc(((size_t)count + 1) * sizeof(*keys));
            void *vals = with_values && count ? malloc((size_t)count * vs) : NULL;
            uint32_t cnt = count;
            int rc = bpfmap_lookup_batch(m, (u8(in) & 1) ? &in_b : NULL, &out_b, keys,
                                         with_values ? vals : NULL, &cnt, flags64(in),
                                         flags64(in));
            if (cnt > count)
                abort(); /* never more than asked */
            if ((rc == 0 || rc == -ENOENT) && cnt && keys[cnt - 1] != out_b)
                abort();
            free(keys);
            free(vals);
            break;
        }
        case 7:
        case 8: { /* update_batch */
            uint32_t cap = vs ? MAX_BUF / vs : 0, count = u8(in);
            if (count > cap)
                count = cap;
            uint32_t *keys = malloc(((size_t)count + 1) * sizeof(*keys));
            uint8_t *vals = calloc((size_t)count * vs + 1, 1);
            uint32_t start = key(in, m);
            int run = u8(in) & 1;
            for (uint32_t i = 0; i < count; i++)
                keys[i] = run ? start + i : key(in, m);
            for (size_t i = 0; i < (size_t)count * vs && i < 64; i++)
                vals[i] = u8(in);
            uint32_t cnt = count;
            bpfmap_update_batch(m, keys, vals, &cnt, flags64(in), flags64(in));
            if (cnt > count)
                abort();
            free(keys);
            free(vals);
            break;
        }
        case 9: {
            uint32_t keys[4] = {key(in, m), key(in, m), 0, 0}, cnt = u8(in) & 3;
            bpfmap_delete_batch(m, keys, &cnt, flags64(in), flags64(in));
            break;
        }
        case 10:
            if ((u8(in) & 7) == 0)
                bpfmap_freeze(m);
            bpfmap_frozen(m);
            break;
        case 11: {
            struct bpfmap_info info;
            bpfmap_info(m, &info);
            break;
        }
        case 12:
            fuzz_mmap(in, m);
            break;
        case 13: { /* another handle on the same map: dup, O_RDONLY or O_WRONLY */
            static const int modes[3] = {-1, O_RDONLY, O_WRONLY};
            int mode = modes[u8(in) % 3], fd;
            char path[64];
            struct bpfmap other;
            if (mode < 0) {
                fd = dup(m->fd);
            } else {
                snprintf(path, sizeof(path), "/proc/self/fd/%d", m->fd);
                fd = open(path, mode | O_CLOEXEC);
            }
            if (fd < 0)
                break;
            if (bpfmap_open_fd(&other, fd) == 0) {
                if (other.max_entries != m->max_entries || other.value_size != m->value_size)
                    abort();
                fuzz_ops(in, &other); /* recursion ends with the input */
                bpfmap_release(&other);
            } else {
                close(fd);
            }
            break;
        }
        }
    }
    free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int baseline = lowest_free_fd(); /* a leak during this input would take it */
    struct input in = {data, size};
    struct bpfmap m;
    char name[24];
    uint8_t what = u8(&in);

    if (what == 0xff) {
        fuzz_open_crafted(&in);
    } else if (what == 0xfe) {
        char path[4200];
        size_t n = in.left < sizeof(path) - 1 ? in.left : sizeof(path) - 1;
        memcpy(path, in.p, n);
        path[n] = 0;
        bpfmap_on_bpffs(path);
    } else {
        uint32_t map_type = (what & 1) ? u32(&in) : 2;
        uint32_t key_size = (what & 2) ? u32(&in) : 4;
        uint32_t value_size = (what & 4) ? u32(&in) : 1 + u8(&in);
        uint32_t max_entries = (what & 8) ? u32(&in) : 1 + (u32(&in) & 0x7ff);
        uint32_t flags = (what & 16) ? u32(&in) : (u8(&in) & 1 ? BPFMAP_F_MMAPABLE : 0) |
                                                   (u8(&in) & 3) << 3; /* RDONLY / WRONLY */
        uint32_t name_len = u8(&in) % (sizeof(name) + 1);
        for (unsigned i = 0; i < sizeof(name); i++)
            name[i] = (char)(i < name_len ? u8(&in) : 0);
        /* An emulated create allocates the whole array, as the kernel's does:
         * keep real allocations small (arrays bigger than the machine still
         * reach the ENOMEM path, which allocates nothing). */
        uint64_t bytes = (((uint64_t)value_size + 7) & ~7ULL) * max_entries;
        struct sysinfo si;
        if (bytes > (64u << 20) && sysinfo(&si) == 0 &&
            bytes <= (uint64_t)si.totalram * si.mem_unit)
            return 0;
        if (bpfmap_create(&m, BPFMAP_BACKEND_EMULATED, map_type, key_size, value_size,
                          max_entries, flags, name, name_len) == 0) {
            fuzz_ops(&in, &m);
            bpfmap_release(&m);
        }
    }
    if (lowest_free_fd() != baseline) {
        fprintf(stderr, "descriptor leak: lowest free fd %d, was %d\n", lowest_free_fd(), baseline);
        abort();
    }
    return 0;
}
