/*
 * bpfmap C core: BPF_MAP_TYPE_ARRAY, emulated in shared memory or driven
 * through the real bpf() syscall, behind one set of functions.
 *
 * Every function returns 0 (or a non-negative result) or -errno, and checks
 * its arguments in the same order as the kernel (kernel/bpf/syscall.c,
 * kernel/bpf/arraymap.c), so that the first failing check gives the same
 * errno on both backends.
 *
 * This file holds the public functions: what is the same for every backend
 * (the handle, the name attribute, choosing the backend), then one call
 * through the handle's ops table (backend.h). The backends: emulated.c and
 * arraymap.c (a sealed memfd; the design is explained at the top of
 * emulated.c), kernel.c (bpf()). The value layout is layout.h's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"

/* Tried in this order by bpfmap_open_fd(); indexed by BPFMAP_BACKEND_*. */
static const struct bpfmap_ops *const backends[] = {
    [BPFMAP_BACKEND_EMULATED] = &bpfmap_emulated_ops,
    [BPFMAP_BACKEND_KERNEL] = &bpfmap_kernel_ops,
};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

static void handle_init(struct bpfmap *m, int fd)
{
    memset(m, 0, sizeof(*m));
    m->fd = fd;
    m->ro_fd = -1;
    m->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
}

static void handle_set_ops(struct bpfmap *m, const struct bpfmap_ops *ops)
{
    m->ops = ops;
    m->backend = ops->backend;
}

void handle_set_geometry(struct bpfmap *m, uint32_t map_type, uint32_t key_size,
                         uint32_t value_size, uint32_t max_entries, uint32_t map_flags,
                         const char name[16])
{
    m->map_type = map_type;
    m->key_size = key_size;
    m->value_size = value_size;
    m->max_entries = max_entries;
    m->map_flags = map_flags;
    m->elem_size = layout_elem_size(value_size);
    memcpy(m->name, name, sizeof(m->name));
    m->name[15] = 0;
}

/* ---------------------------------------------------------------- open */

int bpfmap_open_fd(struct bpfmap *m, int fd)
{
    size_t i;
    int fl, err = -EINVAL;
    handle_init(m, -1);
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    m->fd = fd;
    m->access = fl & O_ACCMODE;
    for (i = 0; i < N_BACKENDS; i++) {
        int owns = backends[i]->owns_fd(fd);
        if (owns < 0) {
            err = owns;
            break;
        }
        if (owns) {
            handle_set_ops(m, backends[i]);
            err = m->ops->open(m);
            break;
        }
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
    if (backend < 0 || (size_t)backend >= N_BACKENDS)
        return -EINVAL;
    handle_set_ops(m, backends[backend]);
    err = m->ops->create(m, map_type, key_size, value_size, max_entries, map_flags, attr_name);
    if (err)
        bpfmap_release(m);
    return err;
}

/* ---------------------------------------------- operations, dispatched */

int bpfmap_lookup(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags)
{
    return m->ops->lookup(m, key, value, flags);
}

int bpfmap_update(const struct bpfmap *m, uint32_t key, const void *value, uint64_t flags)
{
    return m->ops->update(m, key, value, flags);
}

int bpfmap_delete(const struct bpfmap *m, uint32_t key)
{
    return m->ops->delete_elem(m, key);
}

int bpfmap_lookup_and_delete(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags)
{
    return m->ops->lookup_and_delete(m, key, value, flags);
}

int bpfmap_get_next_key(const struct bpfmap *m, const uint32_t *key, uint32_t *next_key)
{
    return m->ops->get_next_key(m, key, next_key);
}

int bpfmap_lookup_batch(const struct bpfmap *m, const uint32_t *in_batch, uint32_t *out_batch,
                        uint32_t *keys, void *values, uint32_t *count,
                        uint64_t elem_flags, uint64_t flags)
{
    return m->ops->lookup_batch(m, in_batch, out_batch, keys, values, count, elem_flags, flags);
}

int bpfmap_update_batch(const struct bpfmap *m, const uint32_t *keys, const void *values,
                        uint32_t *count, uint64_t elem_flags, uint64_t flags)
{
    return m->ops->update_batch(m, keys, values, count, elem_flags, flags);
}

int bpfmap_delete_batch(const struct bpfmap *m, const uint32_t *keys, uint32_t *count,
                        uint64_t elem_flags, uint64_t flags)
{
    return m->ops->delete_batch(m, keys, count, elem_flags, flags);
}

int bpfmap_freeze(const struct bpfmap *m)
{
    return m->ops->freeze(m);
}

int bpfmap_frozen(const struct bpfmap *m)
{
    return m->ops->frozen(m);
}

int bpfmap_info(const struct bpfmap *m, struct bpfmap_info *info)
{
    memset(info, 0, sizeof(*info));
    return m->ops->info(m, info);
}

/* ---------------------------------------------------------------- mmap */

uint64_t bpfmap_mmap_window(const struct bpfmap *m)
{
    return layout_values_size(m->value_size, m->max_entries, m->page_size);
}

int bpfmap_mmap_check(struct bpfmap *m, int writable, int shared, uint64_t offset,
                      uint64_t length, int *fd, uint64_t *file_offset)
{
    *fd = m->fd;
    *file_offset = offset;
    return m->ops->mmap_check(m, writable, shared, offset, length, fd, file_offset);
}

/* -------------------------------------------------------------- layout */

uint64_t bpfmap_elem_size(uint32_t value_size) { return layout_elem_size(value_size); }

uint64_t bpfmap_values_size(uint32_t value_size, uint32_t max_entries, uint64_t page_size)
{
    return layout_values_size(value_size, max_entries, page_size);
}

/* The cost of a call through cffi that does nothing: the benchmarks' baseline. */
int bpfmap_noop(void) { return 0; }
