/*
 * bpfmap C core: BPF_MAP_TYPE_ARRAY, emulated in shared memory or driven
 * through the real bpf() syscall, behind one set of functions.
 *
 * Every function returns 0 (or a non-negative result) or -errno, and checks
 * its arguments in the same order as the kernel (kernel/bpf/syscall.c,
 * kernel/bpf/arraymap.c), so that the first failing check gives the same
 * errno on both backends.
 *
 * Emulated memory: a sealable memfd laid out like the kernel's vmalloc area:
 * page 0 ends with our header (the kernel puts struct bpf_array there), values
 * start on page 1 at a stride of round_up(value_size, 8). Freezing a map is
 * F_ADD_SEALS(F_SEAL_WRITE | F_SEAL_SEAL), so the kernel itself counts every
 * writable shared mapping, in every process, across fork, partial munmap and
 * SIGKILL, exactly as it counts bpf_map's writecnt. Because of that, bpfmap
 * never holds a writable mapping itself: updates go through pwrite(), lookups
 * read a private read-only mapping (MAP_PRIVATE mappings are not counted and,
 * never written, they see the shared page cache).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "bpfmap.h"

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define ARRAY_CREATE_FLAG_MASK                                                 \
    (BPFMAP_F_NUMA_NODE | BPFMAP_F_MMAPABLE | BPFMAP_F_RDONLY |                \
     BPFMAP_F_WRONLY | BPFMAP_F_RDONLY_PROG | BPFMAP_F_WRONLY_PROG |           \
     BPFMAP_F_PRESERVE_ELEMS | BPFMAP_F_INNER_MAP)

#define BPF_FS_MAGIC_NUMBER 0xcafe4a11ULL

#define HEADER_MAGIC 0x3170616d66706266ULL /* "fbpfmap1" */
#define HEADER_VERSION 1

/* Sits on the last bytes of page 0, where the kernel keeps struct bpf_array. */
struct bpfmap_header {
    uint64_t magic;
    uint32_t version;
    uint32_t map_type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t map_flags;
    uint64_t page_size;
    char name[16];
};

static uint64_t page_align(uint64_t n, uint64_t page) { return (n + page - 1) & ~(page - 1); }

static int can_read(const struct bpfmap *m) { return m->access != O_WRONLY; }
static int can_write(const struct bpfmap *m) { return m->access != O_RDONLY; }
static int is_kernel(const struct bpfmap *m) { return m->backend == BPFMAP_BACKEND_KERNEL; }

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    long ret = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
    return ret < 0 ? -errno : ret;
}

static uint64_t ptr_to_u64(const void *p) { return (uint64_t)(uintptr_t)p; }

static uint64_t emu_file_size(const struct bpfmap *m)
{
    return m->page_size + page_align((uint64_t)m->max_entries * m->elem_size, m->page_size);
}

static uint64_t value_offset(const struct bpfmap *m, uint32_t key)
{
    return m->page_size + (uint64_t)key * m->elem_size;
}

/* Emulated maps: frozen == sealed against writes. */
static int emu_frozen(const struct bpfmap *m)
{
    int seals = fcntl(m->fd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    return (seals & F_SEAL_WRITE) != 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    int err = emu_fsize_check(off + len); /* whole or nothing, never SIGXFSZ */
    if (err)
        return err;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* A new open file description of the same memfd with another access mode. */
static int reopen_fd(int fd, int mode)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int nfd = open(path, mode | O_CLOEXEC);
    return nfd < 0 ? -errno : nfd;
}

/* The kernel's isalnum(): lib/ctype.c also counts Latin-1 letters. */
static int kernel_isalnum(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c >= 192 && c != 215 && c != 247;
}

/* bpf_obj_name_cpy(): alnum, '_' and '.', NUL-terminated within 16 bytes. */
static int obj_name_cpy(char dst[16], const char src[16])
{
    int i;
    memset(dst, 0, 16);
    for (i = 0; i < 16 && src[i]; i++) {
        unsigned char c = (unsigned char)src[i];
        if (!kernel_isalnum(c) && c != '_' && c != '.')
            return -EINVAL;
        dst[i] = src[i];
    }
    return i == 16 ? -EINVAL : 0;
}

/* ---------------------------------------------------------------- open */

static int emu_read_header(int fd, int access, struct bpfmap_header *h, uint64_t page)
{
    int rfd = fd, err = 0;
    if (access == O_WRONLY) {
        rfd = reopen_fd(fd, O_RDONLY);
        if (rfd < 0)
            return rfd;
    }
    ssize_t n = pread(rfd, h, sizeof(*h), (off_t)(page - sizeof(*h)));
    if (n < 0)
        err = -errno;
    else if ((size_t)n != sizeof(*h))
        err = -EINVAL;
    if (rfd != fd)
        close(rfd);
    return err;
}

static int emu_create_check(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                            uint32_t max_entries, uint32_t map_flags);

static int emu_open(struct bpfmap *m)
{
    struct bpfmap_header h;
    struct stat st;
    int seals, err = emu_read_header(m->fd, m->access, &h, m->page_size);
    if (err)
        return err;
    /* The header is in memory any writer of the map can rewrite: every field
     * must be one emu_create() could have written, or the map would show as
     * another type, with impossible flags or a name bpftool would print raw. */
    if (h.magic != HEADER_MAGIC || h.version != HEADER_VERSION ||
        h.page_size != m->page_size || h.key_size != 4 || h.value_size == 0 ||
        h.value_size > INT_MAX || h.max_entries == 0 || h.map_type != BPF_MAP_TYPE_ARRAY)
        return -EINVAL;
    if (emu_create_check(h.map_type, h.key_size, h.value_size, h.max_entries, h.map_flags) ||
        (h.map_flags & (BPFMAP_F_RDONLY | BPFMAP_F_WRONLY)))
        return -EINVAL;
    if (obj_name_cpy(m->name, h.name))
        return -EINVAL;
    m->map_type = h.map_type;
    m->key_size = h.key_size;
    m->value_size = h.value_size;
    m->max_entries = h.max_entries;
    m->map_flags = h.map_flags;
    m->elem_size = ((uint64_t)h.value_size + 7) & ~7ULL;
    /* Only a file that can never change size (bpfmap seals its own): a
     * descriptor from elsewhere could otherwise be truncated under our view,
     * and the next lookup would die of SIGBUS. Seals are never removed, so
     * the size checked below stays true. */
    seals = fcntl(m->fd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return -EINVAL;
    if (fstat(m->fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size != emu_file_size(m))
        return -EINVAL;
    m->id = (uint32_t)st.st_ino; /* unique among live maps, like the kernel's idr */
    if (can_read(m)) {
        /* Private and read-only: never counted as a writer, never written,
         * so it keeps seeing the shared pages. */
        void *p = mmap(NULL, emu_file_size(m), PROT_READ, MAP_PRIVATE | MAP_NORESERVE, m->fd, 0);
        if (p == MAP_FAILED)
            return -errno;
        m->view = p;
        m->view_len = emu_file_size(m);
    }
    return 0;
}

static int kernel_info(int fd, struct bpf_map_info *info)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    memset(info, 0, sizeof(*info));
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof(*info);
    attr.info.info = ptr_to_u64(info);
    long r = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
    return r < 0 ? (int)r : 0;
}

/* BPF_OBJ_GET_INFO_BY_FD answers for programs, links and BTF too (a kprobe
 * program's type 2 reads as BPF_MAP_TYPE_ARRAY), so first ask what the fd is,
 * as bpftool's get_fd_type() does. Anything but a map gets the EINVAL that
 * __bpf_map_get() gives a map command on it. */
static int kernel_fd_is_map(int fd)
{
    static const char want[] = "anon_inode:bpf-map";
    char path[64], link[sizeof(want) + 1];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof(link));
    if (n < 0)
        return -errno;
    return (size_t)n == sizeof(want) - 1 && !memcmp(link, want, sizeof(want) - 1) ? 0 : -EINVAL;
}

static int kernel_open(struct bpfmap *m)
{
    struct bpf_map_info info;
    int err = kernel_fd_is_map(m->fd);
    if (err)
        return err;
    err = kernel_info(m->fd, &info);
    if (err)
        return err;
    if (info.type != BPF_MAP_TYPE_ARRAY)
        return -EINVAL;
    m->map_type = info.type;
    m->id = info.id;
    m->key_size = info.key_size;
    m->value_size = info.value_size;
    m->max_entries = info.max_entries;
    m->map_flags = info.map_flags;
    m->elem_size = ((uint64_t)info.value_size + 7) & ~7ULL;
    memcpy(m->name, info.name, sizeof(m->name));
    m->name[15] = 0;
    return 0;
}

static void handle_init(struct bpfmap *m, int fd)
{
    memset(m, 0, sizeof(*m));
    m->fd = fd;
    m->ro_fd = -1;
    m->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
}

int bpfmap_open_fd(struct bpfmap *m, int fd)
{
    int fl, err;
    handle_init(m, -1);
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    m->fd = fd;
    m->access = fl & O_ACCMODE;
    if (fcntl(fd, F_GET_SEALS) >= 0) {
        m->backend = BPFMAP_BACKEND_EMULATED;
        err = emu_open(m);
    } else {
        m->backend = BPFMAP_BACKEND_KERNEL;
        err = kernel_open(m);
    }
    if (err) {
        m->fd = -1; /* the caller still owns fd on failure */
        bpfmap_release(m);
    }
    return err;
}

void bpfmap_release(struct bpfmap *m)
{
    if (m->view)
        munmap(m->view, m->view_len);
    if (m->fd >= 0)
        close(m->fd);
    if (m->ro_fd >= 0)
        close(m->ro_fd);
    m->view = NULL;
    m->fd = -1;
    m->ro_fd = -1;
}

/* -------------------------------------------------------------- create */

static int kernel_create(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                         uint32_t max_entries, uint32_t map_flags, const char name[16])
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = map_type;
    attr.key_size = key_size;
    attr.value_size = value_size;
    attr.max_entries = max_entries;
    attr.map_flags = map_flags;
    memcpy(attr.map_name, name, sizeof(attr.map_name));
    return (int)sys_bpf(BPF_MAP_CREATE, &attr);
}

/* map_create() and array_map_alloc_check(), in their order. */
static int emu_create_check(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                            uint32_t max_entries, uint32_t map_flags)
{
    /* map_create() strips BPF_F_TOKEN_FD (1 << 16) before every flag check
     * and looks at map_token_fd (0 here) only after map_alloc_check(). */
    const uint32_t token_fd_flag = 1U << 16;
    int token_flag = (map_flags & token_fd_flag) != 0;
    map_flags &= ~token_fd_flag;
    if ((map_flags & BPFMAP_F_RDONLY) && (map_flags & BPFMAP_F_WRONLY))
        return -EINVAL; /* bpf_get_file_flag() */
    if (map_type != BPF_MAP_TYPE_ARRAY)
        return -EINVAL; /* the emulation knows arrays only */
    if (max_entries == 0 || key_size != 4 || value_size == 0 ||
        (map_flags & ~ARRAY_CREATE_FLAG_MASK) ||
        ((map_flags & BPFMAP_F_RDONLY_PROG) && (map_flags & BPFMAP_F_WRONLY_PROG)))
        return -EINVAL;
    if (map_flags & BPFMAP_F_PRESERVE_ELEMS)
        return -EINVAL; /* perf event arrays only */
    if (value_size > INT_MAX)
        return -E2BIG;
    if (token_flag) /* bpf_token_get_from_fd(0): no such fd, or not a token */
        return fcntl(0, F_GETFD) < 0 ? -EBADF : -EINVAL;
    return 0;
}

/* __vmalloc_node_range() refuses more pages than the machine has. */
static int emu_too_big(uint64_t bytes, uint64_t page)
{
    struct sysinfo si;
    if (sysinfo(&si) < 0)
        return 0;
    uint64_t total = (uint64_t)si.totalram * si.mem_unit;
    return page_align(bytes, page) / page > total / page;
}

static int emu_create(struct bpfmap *m, uint32_t map_type, uint32_t key_size,
                      uint32_t value_size, uint32_t max_entries, uint32_t map_flags,
                      const char name[16])
{
    struct bpfmap_header h;
    char checked_name[16], memfd_name[32];
    uint64_t elem_size, size;
    int err, fd, sealed_exec = 1;

    err = emu_create_check(map_type, key_size, value_size, max_entries, map_flags);
    if (err)
        return err;
    elem_size = ((uint64_t)value_size + 7) & ~7ULL;
    size = m->page_size + page_align((uint64_t)max_entries * elem_size, m->page_size);
    if (emu_too_big(size, m->page_size))
        return -ENOMEM;
    err = emu_fsize_check(size); /* ftruncate() past RLIMIT_FSIZE would raise SIGXFSZ */
    if (err)
        return err;
    if (obj_name_cpy(checked_name, name))
        return -EINVAL; /* the kernel checks the name after allocating */

    snprintf(memfd_name, sizeof(memfd_name), "bpfmap:%s", checked_name);
    fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL) { /* kernels before 6.3 */
        sealed_exec = 0;
        fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    }
    if (fd < 0)
        return -errno;
    m->fd = fd;

    memset(&h, 0, sizeof(h));
    h.magic = HEADER_MAGIC;
    h.version = HEADER_VERSION;
    h.map_type = map_type;
    h.key_size = key_size;
    h.value_size = value_size;
    h.max_entries = max_entries;
    /* bpf_map_flags_retain_permanent(): RDONLY/WRONLY belong to the fd. */
    h.map_flags = map_flags & ~(BPFMAP_F_RDONLY | BPFMAP_F_WRONLY);
    h.page_size = m->page_size;
    memcpy(h.name, checked_name, sizeof(h.name));

    if (ftruncate(fd, (off_t)size) < 0)
        return -errno;
    err = emu_charge(fd, size); /* the whole array, now: see emu_charge.c */
    if (err)
        return err;
    err = pwrite_all(fd, &h, sizeof(h), m->page_size - sizeof(h));
    if (err)
        return err;
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | (sealed_exec ? F_SEAL_EXEC : 0)) < 0)
        return -errno;
    m->access = O_RDWR;
    if (map_flags & (BPFMAP_F_RDONLY | BPFMAP_F_WRONLY)) {
        /* Re-open before the chmod below, which forbids a write re-open. */
        int nfd = reopen_fd(fd, (map_flags & BPFMAP_F_RDONLY) ? O_RDONLY : O_WRONLY);
        if (nfd < 0)
            return nfd;
        close(fd);
        m->fd = fd = nfd;
        m->access = (map_flags & BPFMAP_F_RDONLY) ? O_RDONLY : O_WRONLY;
    }
    /* Owner-only, and read-only for re-opens: a read-only handle cannot be
     * upgraded through /proc/self/fd by another user. */
    if (fchmod(fd, 0400) < 0)
        return -errno;
    return emu_open(m);
}

int bpfmap_create(struct bpfmap *m, int backend, uint32_t map_type, uint32_t key_size,
                  uint32_t value_size, uint32_t max_entries, uint32_t map_flags,
                  const char *name, uint32_t name_len)
{
    char attr_name[16];
    int err;

    /* Like the kernel's char map_name[16]: longer names lose their NUL. */
    memset(attr_name, 0, sizeof(attr_name));
    memcpy(attr_name, name, name_len < 16 ? name_len : 16);
    handle_init(m, -1);

    if (backend == BPFMAP_BACKEND_KERNEL) {
        int fd = kernel_create(map_type, key_size, value_size, max_entries, map_flags, attr_name);
        if (fd < 0)
            return fd;
        err = bpfmap_open_fd(m, fd);
        if (err)
            close(fd);
        return err;
    }
    if (backend != BPFMAP_BACKEND_EMULATED)
        return -EINVAL;
    m->backend = BPFMAP_BACKEND_EMULATED;
    err = emu_create(m, map_type, key_size, value_size, max_entries, map_flags, attr_name);
    if (err)
        bpfmap_release(m);
    return err;
}

/* ------------------------------------------------------ element access */

/* The kernel's element commands share one attr layout. */
static int kernel_elem(const struct bpfmap *m, int cmd, const void *key, const void *value,
                       uint64_t flags)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)m->fd;
    attr.key = ptr_to_u64(key);
    attr.value = ptr_to_u64(value); /* next_key for GET_NEXT_KEY: the same field */
    attr.flags = flags;
    return (int)sys_bpf(cmd, &attr);
}

int bpfmap_lookup(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags)
{
    if (is_kernel(m))
        return kernel_elem(m, BPF_MAP_LOOKUP_ELEM, &key, value, flags);
    /* map_lookup_elem(): flags before the fd, then perms, then the key. */
    if (flags & ~(uint64_t)BPF_F_LOCK)
        return -EINVAL;
    if (!can_read(m))
        return -EPERM;
    if (flags & BPF_F_LOCK)
        return -EINVAL; /* no bpf_spin_lock in an emulated value */
    if (key >= m->max_entries)
        return -ENOENT;
    memcpy(value, m->view + value_offset(m, key), m->value_size);
    return 0;
}

/*
 * Emulated write paths check "frozen" only when they are about to fail or
 * when pwrite() itself refuses: the kernel's perm check (EPERM for a frozen
 * map) comes first, so any other errno must give way to it.
 */
static int emu_write_result(const struct bpfmap *m, int err)
{
    if (err && err != -EPERM && emu_frozen(m) > 0)
        return -EPERM;
    return err;
}

int bpfmap_update(const struct bpfmap *m, uint32_t key, const void *value, uint64_t flags)
{
    int err;
    if (is_kernel(m))
        return kernel_elem(m, BPF_MAP_UPDATE_ELEM, &key, value, flags);
    /* map_update_elem() then array_map_update_elem(). */
    if (!can_write(m))
        return -EPERM;
    if (flags & BPF_F_LOCK)
        err = -EINVAL;
    else if ((flags & ~(uint64_t)BPF_F_LOCK) > BPF_EXIST)
        err = -EINVAL;
    else if (key >= m->max_entries)
        err = -E2BIG;
    else if (flags & BPF_NOEXIST)
        err = -EEXIST; /* every element of an array always exists */
    else
        err = pwrite_all(m->fd, value, m->value_size, value_offset(m, key));
    return emu_write_result(m, err);
}

int bpfmap_delete(const struct bpfmap *m, uint32_t key)
{
    if (is_kernel(m))
        return kernel_elem(m, BPF_MAP_DELETE_ELEM, &key, NULL, 0);
    if (!can_write(m))
        return -EPERM;
    return emu_write_result(m, -EINVAL); /* array_map_delete_elem() */
}

int bpfmap_lookup_and_delete(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags)
{
    if (is_kernel(m))
        return kernel_elem(m, BPF_MAP_LOOKUP_AND_DELETE_ELEM, &key, value, flags);
    /* map_lookup_and_delete_elem(): needs read and write permission. */
    if (flags & ~(uint64_t)BPF_F_LOCK)
        return -EINVAL;
    if (!can_read(m) || !can_write(m) || emu_frozen(m) > 0)
        return -EPERM;
    if (flags & BPF_F_LOCK)
        return -EINVAL;
    return -BPFMAP_ENOTSUPP; /* arrays have no lookup_and_delete */
}

int bpfmap_get_next_key(const struct bpfmap *m, const uint32_t *key, uint32_t *next_key)
{
    if (is_kernel(m))
        return kernel_elem(m, BPF_MAP_GET_NEXT_KEY, key, next_key, 0);
    if (!can_read(m))
        return -EPERM;
    /* array_map_get_next_key(): no key or out of range restarts at 0. */
    if (!key || *key >= m->max_entries) {
        *next_key = 0;
        return 0;
    }
    if (*key == m->max_entries - 1)
        return -ENOENT;
    *next_key = *key + 1;
    return 0;
}

/* ------------------------------------------------------------- batches */

static int kernel_batch(const struct bpfmap *m, int cmd, const uint32_t *in_batch,
                        uint32_t *out_batch, const uint32_t *keys, const void *values,
                        uint32_t *count, uint64_t elem_flags, uint64_t flags)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.batch.map_fd = (uint32_t)m->fd;
    attr.batch.in_batch = ptr_to_u64(in_batch);
    attr.batch.out_batch = ptr_to_u64(out_batch);
    attr.batch.keys = ptr_to_u64(keys);
    attr.batch.values = ptr_to_u64(values);
    attr.batch.count = *count;
    attr.batch.elem_flags = elem_flags;
    attr.batch.flags = flags;
    long r = sys_bpf(cmd, &attr);
    *count = attr.batch.count;
    return (int)r;
}

/* generic_map_lookup_batch() over array_map_get_next_key(). */
int bpfmap_lookup_batch(const struct bpfmap *m, const uint32_t *in_batch, uint32_t *out_batch,
                        uint32_t *keys, void *values, uint32_t *count,
                        uint64_t elem_flags, uint64_t flags)
{
    uint32_t max_count, start, n, i;
    if (is_kernel(m))
        return kernel_batch(m, BPF_MAP_LOOKUP_BATCH, in_batch, out_batch, keys, values, count,
                            elem_flags, flags);
    (void)flags; /* never read by the generic batch ops */
    if (!can_read(m))
        return -EPERM;
    if (elem_flags & ~(uint64_t)BPF_F_LOCK)
        return -EINVAL;
    if (elem_flags & BPF_F_LOCK)
        return -EINVAL;
    max_count = *count;
    if (!max_count)
        return 0;
    *count = 0;
    start = (!in_batch || *in_batch >= m->max_entries) ? 0 : *in_batch + 1;
    if (in_batch && *in_batch == m->max_entries - 1)
        return -ENOENT; /* get_next_key() fails on the first step */
    n = m->max_entries - start;
    if (n > max_count)
        n = max_count;
    /* values == NULL: the caller copies the values itself, straight from the
     * view, keys [start, start + n) (Python builds its bytearray in one copy). */
    if (!values) {
        /* nothing to copy here */
    } else if (m->value_size == m->elem_size) {
        memcpy(values, m->view + value_offset(m, start), (size_t)n * m->value_size);
    } else {
        for (i = 0; i < n; i++)
            memcpy((char *)values + (size_t)i * m->value_size,
                   m->view + value_offset(m, start + i), m->value_size);
    }
    for (i = 0; i < n; i++)
        keys[i] = start + i;
    *count = n;
    *out_batch = start + n - 1;
    return n < max_count ? -ENOENT : 0;
}

/*
 * How many keys from k[0] on (at most avail) are consecutive and below max:
 * one pwrite() covers them. k[0] < max is the caller's. Blocks of 64 keys are
 * checked without early exit, so the compiler vectorizes the common case.
 */
static uint32_t consecutive_keys(const uint32_t *k, uint32_t avail, uint32_t max)
{
    uint32_t run = 1, j, first = k[0];
    /* A whole block is consecutive and, ending below max, in range. */
    while (avail - run >= 64 && (uint64_t)first + run + 63 < max) {
        const uint32_t *b = k + run;
        uint32_t expect = first + run, bad = 0;
        for (j = 0; j < 64; j++)
            bad |= b[j] ^ (expect + j);
        if (bad)
            break;
        run += 64;
    }
    while (run < avail && k[run] == first + run && k[run] < max)
        run++;
    return run;
}

/* generic_map_update_batch(): stops at the first failing element, no rollback. */
int bpfmap_update_batch(const struct bpfmap *m, const uint32_t *keys, const void *values,
                        uint32_t *count, uint64_t elem_flags, uint64_t flags)
{
    uint32_t max_count, i, run;
    int err;
    if (is_kernel(m))
        return kernel_batch(m, BPF_MAP_UPDATE_BATCH, NULL, NULL, keys, values, count,
                            elem_flags, flags);
    (void)flags;
    if (!can_write(m) || emu_frozen(m) > 0)
        return -EPERM; /* bpf_map_do_batch() */
    if (elem_flags & ~(uint64_t)BPF_F_LOCK)
        return -EINVAL;
    if (elem_flags & BPF_F_LOCK)
        return -EINVAL;
    max_count = *count;
    if (!max_count)
        return 0;
    *count = 0;
    /* In key order: one pwrite per run of consecutive keys when values are
     * unpadded; the first out-of-range key ends the batch with E2BIG. */
    for (i = 0; i < max_count; i += run) {
        if (keys[i] >= m->max_entries)
            return -E2BIG;
        run = m->value_size == m->elem_size
                  ? consecutive_keys(keys + i, max_count - i, m->max_entries)
                  : 1;
        /* A run past RLIMIT_FSIZE goes element by element: the batch stops at
         * the first element that does not fit, as the kernel's would. */
        if (run > 1 && emu_fsize_check(value_offset(m, keys[i]) + (uint64_t)run * m->value_size))
            run = 1;
        err = pwrite_all(m->fd, (const char *)values + (size_t)i * m->value_size,
                         (size_t)run * m->value_size, value_offset(m, keys[i]));
        if (err)
            return err;
        *count = i + run;
    }
    return 0;
}

int bpfmap_delete_batch(const struct bpfmap *m, const uint32_t *keys, uint32_t *count,
                        uint64_t elem_flags, uint64_t flags)
{
    if (is_kernel(m))
        return kernel_batch(m, BPF_MAP_DELETE_BATCH, NULL, NULL, keys, NULL, count,
                            elem_flags, flags);
    if (!can_write(m) || emu_frozen(m) > 0)
        return -EPERM;
    return -BPFMAP_ENOTSUPP; /* array_map_ops has no map_delete_batch */
}

/* -------------------------------------------------------------- freeze */

int bpfmap_freeze(const struct bpfmap *m)
{
    if (is_kernel(m)) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.map_fd = (uint32_t)m->fd;
        return (int)sys_bpf(BPF_MAP_FREEZE, &attr);
    }
    /*
     * map_freeze(): no write permission (a read-only fd, or already frozen)
     * -> EPERM, then writable mappings -> EBUSY. memfd_add_seals() checks in
     * that very order and atomically: the fd mode, then F_SEAL_SEAL (set by a
     * previous freeze), then every VM_SHARED|VM_MAYWRITE mapping of the file.
     */
    if (fcntl(m->fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return -errno;
    return 0;
}

static int kernel_frozen(int fd)
{
    char path[64], line[256];
    int frozen = -ENOENT;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        unsigned int v;
        if (sscanf(line, "frozen: %u", &v) == 1)
            frozen = v != 0;
    }
    fclose(f);
    return frozen;
}

int bpfmap_frozen(const struct bpfmap *m)
{
    return is_kernel(m) ? kernel_frozen(m->fd) : emu_frozen(m);
}

int bpfmap_info(const struct bpfmap *m, struct bpfmap_info *info)
{
    memset(info, 0, sizeof(*info));
    if (is_kernel(m)) {
        struct bpf_map_info ki;
        int err = kernel_info(m->fd, &ki);
        if (err)
            return err;
        info->type = ki.type;
        info->id = ki.id;
        info->key_size = ki.key_size;
        info->value_size = ki.value_size;
        info->max_entries = ki.max_entries;
        info->map_flags = ki.map_flags;
        memcpy(info->name, ki.name, sizeof(info->name));
        return 0;
    }
    info->type = m->map_type;
    info->id = m->id;
    info->key_size = m->key_size;
    info->value_size = m->value_size;
    info->max_entries = m->max_entries;
    info->map_flags = m->map_flags;
    memcpy(info->name, m->name, sizeof(info->name));
    return 0;
}

/* ---------------------------------------------------------------- mmap */

uint64_t bpfmap_mmap_window(const struct bpfmap *m)
{
    return page_align((uint64_t)m->max_entries * m->elem_size, m->page_size);
}

/*
 * Decide, before mapping, what do_mmap() + bpf_map_mmap() + array_map_mmap()
 * would refuse, in their order; then hand back the descriptor and file offset
 * to map. Kernel maps are checked by the kernel itself at mmap() time.
 */
int bpfmap_mmap_check(struct bpfmap *m, int writable, int shared, uint64_t offset,
                      uint64_t length, int *fd, uint64_t *file_offset)
{
    *fd = m->fd;
    *file_offset = offset;
    if (is_kernel(m))
        return 0;
    /* do_mmap(): the VFS checks. */
    if (offset & (m->page_size - 1))
        return -EINVAL;
    if (!length)
        return -EINVAL;
    /* do_mmap(): __get_unmapped_area() runs before the file checks, so a
     * length with no room in the address space (> TASK_SIZE) is ENOMEM.
     * Lengths within the window always fit; larger ones are probed. */
    if (length > bpfmap_mmap_window(m)) {
        void *probe = mmap(NULL, length, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (probe == MAP_FAILED)
            return -errno;
        munmap(probe, length);
    }
    if (shared && writable && !can_write(m))
        return -EACCES;
    if (!can_read(m))
        return -EACCES;
    /* An O_RDONLY fd loses VM_SHARED; bpf_map_mmap() then refuses it. */
    if (!shared || !can_write(m))
        return -EINVAL;
    if (writable) {
        int frozen = emu_frozen(m);
        if (frozen < 0)
            return frozen;
        if (frozen)
            return -EPERM;
        if (m->map_flags & BPFMAP_F_RDONLY_PROG)
            return -EACCES;
    }
    if (!(m->map_flags & BPFMAP_F_MMAPABLE))
        return -EINVAL;
    if (offset > bpfmap_mmap_window(m) ||
        page_align(length, m->page_size) > bpfmap_mmap_window(m) - offset)
        return -EINVAL;
    if (!writable) {
        /* A read-only mapping comes from an O_RDONLY description, so it is
         * not counted as a writer and mprotect() cannot upgrade it. */
        if (__atomic_load_n(&m->ro_fd, __ATOMIC_ACQUIRE) < 0) {
            int ro = reopen_fd(m->fd, O_RDONLY), unset = -1;
            if (ro < 0)
                return ro;
            /* cffi releases the GIL: threads mapping at once race here, and
             * only one descriptor may be kept (the others would leak). */
            if (!__atomic_compare_exchange_n(&m->ro_fd, &unset, ro, 0, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE))
                close(ro);
        }
        *fd = __atomic_load_n(&m->ro_fd, __ATOMIC_ACQUIRE);
    }
    *file_offset = m->page_size + offset;
    return 0;
}

/* ------------------------------------------------------------- pinning */

/* BPF_OBJ_PIN: the kernel decides (EPERM outside bpffs, EEXIST, ...). */
int bpfmap_obj_pin(int fd, const char *path)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.pathname = ptr_to_u64(path);
    attr.bpf_fd = (uint32_t)fd;
    long r = sys_bpf(BPF_OBJ_PIN, &attr);
    return r < 0 ? (int)r : 0;
}

/* BPF_OBJ_GET: a new fd, read-only or write-only with BPF_F_RDONLY/WRONLY. */
int bpfmap_obj_get(const char *path, uint32_t file_flags)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.pathname = ptr_to_u64(path);
    attr.file_flags = file_flags;
    return (int)sys_bpf(BPF_OBJ_GET, &attr);
}

/* 1 if path (or, for a path that does not exist yet, its directory) is on bpffs. */
int bpfmap_on_bpffs(const char *path)
{
    struct statfs st;
    if (statfs(path, &st) < 0) {
        char dir[4096];
        char *slash;
        if (errno != ENOENT || strlen(path) >= sizeof(dir))
            return -errno;
        strcpy(dir, path);
        slash = strrchr(dir, '/');
        if (!slash)
            strcpy(dir, ".");
        else if (slash == dir)
            dir[1] = 0;
        else
            *slash = 0;
        if (statfs(dir, &st) < 0)
            return -errno;
    }
    return (uint64_t)st.f_type == BPF_FS_MAGIC_NUMBER;
}

/* BPF_MAP_GET_NEXT_ID: the first kernel map id above start_id (-ENOENT past the last). */
int bpfmap_map_get_next_id(uint32_t start_id, uint32_t *next_id)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.start_id = start_id;
    long r = sys_bpf(BPF_MAP_GET_NEXT_ID, &attr);
    if (r < 0)
        return (int)r;
    *next_id = attr.next_id;
    return 0;
}

/* BPF_MAP_GET_FD_BY_ID: a new descriptor of a kernel map of any type (or -errno). */
int bpfmap_map_get_fd_by_id(uint32_t id, uint32_t open_flags)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_id = id;
    attr.open_flags = open_flags;
    return (int)sys_bpf(BPF_MAP_GET_FD_BY_ID, &attr);
}

/* BPF_OBJ_GET_INFO_BY_FD of a kernel map of any type, and its btf_id. */
int bpfmap_map_fd_info(int fd, struct bpfmap_info *info, uint32_t *btf_id)
{
    struct bpf_map_info ki;
    int err = kernel_info(fd, &ki);
    memset(info, 0, sizeof(*info));
    if (err)
        return err;
    info->type = ki.type;
    info->id = ki.id;
    info->key_size = ki.key_size;
    info->value_size = ki.value_size;
    info->max_entries = ki.max_entries;
    info->map_flags = ki.map_flags;
    memcpy(info->name, ki.name, sizeof(info->name));
    *btf_id = ki.btf_id;
    return 0;
}

/* ---------------------------------------------------------------- misc */

int bpfmap_kernel_available(void)
{
    static const char name[16] = "bpfmap_probe";
    int fd = kernel_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1, BPFMAP_F_MMAPABLE, name);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

int bpfmap_noop(void) { return 0; }
