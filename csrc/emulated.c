/*
 * The emulated backend: BPF_MAP_TYPE_ARRAY in shared memory, no privileges.
 *
 * A map is a sealable memfd laid out like the kernel's vmalloc area (layout.h).
 * Freezing a map is F_ADD_SEALS(F_SEAL_WRITE | F_SEAL_SEAL), so the kernel
 * itself counts every writable shared mapping, in every process, across fork,
 * partial munmap and SIGKILL, exactly as it counts bpf_map's writecnt. Because
 * of that, bpfmap never holds a writable mapping itself: updates go through
 * pwrite(), lookups read a private read-only mapping (MAP_PRIVATE mappings are
 * not counted and, never written, they see the shared page cache).
 *
 * This file holds the map's life (create, open, freeze, info, mmap); the
 * element and batch operations are arraymap.c's. Every check comes in the
 * kernel's order (kernel/bpf/syscall.c, then kernel/bpf/arraymap.c), so the
 * first failing check gives the same errno as the kernel backend.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "backend.h"

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

/* Emulated maps: frozen == sealed against writes. */
int emu_frozen(const struct bpfmap *m)
{
    int seals = fcntl(m->fd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    return (seals & F_SEAL_WRITE) != 0;
}

int emu_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
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

int emu_reopen_fd(int fd, int mode)
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

/* A memfd that can be sealed is ours to judge; anything else is not. */
static int emu_owns_fd(int fd)
{
    return fcntl(fd, F_GET_SEALS) >= 0;
}

static int emu_read_header(int fd, int access, struct bpfmap_header *h, uint64_t page)
{
    int rfd = fd, err = 0;
    if (access == O_WRONLY) {
        rfd = emu_reopen_fd(fd, O_RDONLY);
        if (rfd < 0)
            return rfd;
    }
    ssize_t n = pread(rfd, h, sizeof(*h), (off_t)layout_header_offset(page));
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
    uint64_t file_size;
    char name[16];
    int seals, err = emu_read_header(m->fd, m->access, &h, m->page_size);
    if (err)
        return err;
    /* The header is in memory any writer of the map can rewrite: every field
     * must be one emu_create() could have written, or the map would show as
     * another type, with impossible flags or a name bpftool would print raw. */
    if (h.magic != BPFMAP_HEADER_MAGIC || h.version != BPFMAP_HEADER_VERSION ||
        h.page_size != m->page_size || h.key_size != 4 || h.value_size == 0 ||
        h.value_size > INT_MAX || h.max_entries == 0 || h.map_type != BPF_MAP_TYPE_ARRAY)
        return -EINVAL;
    if (emu_create_check(h.map_type, h.key_size, h.value_size, h.max_entries, h.map_flags) ||
        (h.map_flags & (BPFMAP_F_RDONLY | BPFMAP_F_WRONLY)))
        return -EINVAL;
    if (obj_name_cpy(name, h.name))
        return -EINVAL;
    handle_set_geometry(m, h.map_type, h.key_size, h.value_size, h.max_entries, h.map_flags,
                        name);
    file_size = layout_file_size(m->value_size, m->max_entries, m->page_size);
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
    if ((uint64_t)st.st_size != file_size)
        return -EINVAL;
    m->id = (uint32_t)st.st_ino; /* unique among live maps, like the kernel's idr */
    if (handle_can_read(m)) {
        /* Private and read-only: never counted as a writer, never written,
         * so it keeps seeing the shared pages. */
        void *p = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, m->fd, 0);
        if (p == MAP_FAILED)
            return -errno;
        m->view = p;
        m->view_len = file_size;
    }
    return 0;
}

/* -------------------------------------------------------------- create */

/* map_create() and array_map_alloc_check(), in their order. */
static int emu_create_check(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                            uint32_t max_entries, uint32_t map_flags)
{
    /* map_create() strips BPF_F_TOKEN_FD before every flag check and looks at
     * map_token_fd (0 here) only after map_alloc_check(). */
    int token_flag = (map_flags & BPFMAP_F_TOKEN_FD) != 0;
    map_flags &= ~(uint32_t)BPFMAP_F_TOKEN_FD;
    if ((map_flags & BPFMAP_F_RDONLY) && (map_flags & BPFMAP_F_WRONLY))
        return -EINVAL; /* bpf_get_file_flag() */
    if (map_type != BPF_MAP_TYPE_ARRAY)
        return -EINVAL; /* the emulation knows arrays only */
    if (max_entries == 0 || key_size != 4 || value_size == 0 ||
        (map_flags & ~(uint32_t)ARRAY_CREATE_FLAG_MASK) ||
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
    return layout_page_align(bytes, page) / page > total / page;
}

/* memfd_create() of a sealable, non-executable file, sized and sealed against
 * size changes, with the header written: the map's memory, read-write. */
static int emu_make_file(const struct bpfmap_header *h, uint64_t size)
{
    char memfd_name[32];
    int fd, err, sealed_exec = 1;
    snprintf(memfd_name, sizeof(memfd_name), "bpfmap:%s", h->name);
    fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL) { /* kernels before 6.3 */
        sealed_exec = 0;
        fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    }
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0)
        err = -errno;
    else
        err = emu_charge(fd, size); /* the whole array, now: see emu_charge.c */
    if (!err)
        err = emu_pwrite_all(fd, h, sizeof(*h), layout_header_offset(h->page_size));
    if (!err && fcntl(fd, F_ADD_SEALS,
                      F_SEAL_GROW | F_SEAL_SHRINK | (sealed_exec ? F_SEAL_EXEC : 0)) < 0)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

static int emu_create(struct bpfmap *m, uint32_t map_type, uint32_t key_size,
                      uint32_t value_size, uint32_t max_entries, uint32_t map_flags,
                      const char name[16])
{
    struct bpfmap_header h;
    uint64_t size;
    int err, fd;

    err = emu_create_check(map_type, key_size, value_size, max_entries, map_flags);
    if (err)
        return err;
    size = layout_file_size(value_size, max_entries, m->page_size);
    if (emu_too_big(size, m->page_size))
        return -ENOMEM;
    err = emu_fsize_check(size); /* ftruncate() past RLIMIT_FSIZE would raise SIGXFSZ */
    if (err)
        return err;
    memset(&h, 0, sizeof(h));
    if (obj_name_cpy(h.name, name))
        return -EINVAL; /* the kernel checks the name after allocating */
    h.magic = BPFMAP_HEADER_MAGIC;
    h.version = BPFMAP_HEADER_VERSION;
    h.map_type = map_type;
    h.key_size = key_size;
    h.value_size = value_size;
    h.max_entries = max_entries;
    /* bpf_map_flags_retain_permanent(): RDONLY/WRONLY belong to the fd. */
    h.map_flags = map_flags & ~(uint32_t)(BPFMAP_F_RDONLY | BPFMAP_F_WRONLY);
    h.page_size = m->page_size;

    fd = emu_make_file(&h, size);
    if (fd < 0)
        return fd;
    m->fd = fd;
    m->access = O_RDWR;
    if (map_flags & (BPFMAP_F_RDONLY | BPFMAP_F_WRONLY)) {
        /* Re-open before the chmod below, which forbids a write re-open. */
        int mode = (map_flags & BPFMAP_F_RDONLY) ? O_RDONLY : O_WRONLY;
        int nfd = emu_reopen_fd(fd, mode);
        if (nfd < 0)
            return nfd;
        close(fd);
        m->fd = fd = nfd;
        m->access = mode;
    }
    /* Owner-only, and read-only for re-opens: a read-only handle cannot be
     * upgraded through /proc/self/fd by another user. */
    if (fchmod(fd, 0400) < 0)
        return -errno;
    return emu_open(m);
}

/* -------------------------------------------------------------- freeze */

static int emu_freeze(const struct bpfmap *m)
{
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

static int emu_info(const struct bpfmap *m, struct bpfmap_info *info)
{
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

/* A read-only mapping comes from an O_RDONLY description, so it is not
 * counted as a writer and mprotect() cannot upgrade it: one per handle. */
static int emu_ro_fd(struct bpfmap *m)
{
    if (__atomic_load_n(&m->ro_fd, __ATOMIC_ACQUIRE) < 0) {
        int ro = emu_reopen_fd(m->fd, O_RDONLY), unset = -1;
        if (ro < 0)
            return ro;
        /* cffi releases the GIL: threads mapping at once race here, and
         * only one descriptor may be kept (the others would leak). */
        if (!__atomic_compare_exchange_n(&m->ro_fd, &unset, ro, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            close(ro);
    }
    return __atomic_load_n(&m->ro_fd, __ATOMIC_ACQUIRE);
}

/*
 * Decide, before mapping, what do_mmap() + bpf_map_mmap() + array_map_mmap()
 * would refuse, in their order; then hand back the descriptor and file offset
 * to map.
 */
static int emu_mmap_check(struct bpfmap *m, int writable, int shared, uint64_t offset,
                          uint64_t length, int *fd, uint64_t *file_offset)
{
    uint64_t window = bpfmap_mmap_window(m);
    /* do_mmap(): the VFS checks. */
    if (offset & (m->page_size - 1))
        return -EINVAL;
    if (!length)
        return -EINVAL;
    /* do_mmap(): __get_unmapped_area() runs before the file checks, so a
     * length with no room in the address space (> TASK_SIZE) is ENOMEM.
     * Lengths within the window always fit; larger ones are probed. */
    if (length > window) {
        void *probe = mmap(NULL, length, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (probe == MAP_FAILED)
            return -errno;
        munmap(probe, length);
    }
    if (shared && writable && !handle_can_write(m))
        return -EACCES;
    if (!handle_can_read(m))
        return -EACCES;
    /* An O_RDONLY fd loses VM_SHARED; bpf_map_mmap() then refuses it. */
    if (!shared || !handle_can_write(m))
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
    if (offset > window || layout_page_align(length, m->page_size) > window - offset)
        return -EINVAL;
    if (!writable) {
        int ro = emu_ro_fd(m);
        if (ro < 0)
            return ro;
        *fd = ro;
    }
    *file_offset = layout_value_offset(m->page_size, m->elem_size, 0) + offset; /* value 0's */
    return 0;
}

const struct bpfmap_ops bpfmap_emulated_ops = {
    .backend = BPFMAP_BACKEND_EMULATED,
    .owns_fd = emu_owns_fd,
    .open = emu_open,
    .create = emu_create,
    .lookup = array_lookup,
    .update = array_update,
    .delete_elem = array_delete,
    .lookup_and_delete = array_lookup_and_delete,
    .get_next_key = array_get_next_key,
    .lookup_batch = array_lookup_batch,
    .update_batch = array_update_batch,
    .delete_batch = array_delete_batch,
    .freeze = emu_freeze,
    .frozen = emu_frozen,
    .info = emu_info,
    .mmap_check = emu_mmap_check,
};
