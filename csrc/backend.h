/*
 * Inside the C core: a backend is a table of operations, like the kernel's
 * struct bpf_map_ops. bpfmap.c holds the public functions, which do what is
 * the same for every backend and then dispatch through m->ops; emulated.c
 * (memfd, with arraymap.c) and kernel.c (the real bpf()) each fill one table.
 * Adding a backend means adding a file and one line in bpfmap.c's list.
 */
#ifndef BPFMAP_BACKEND_H
#define BPFMAP_BACKEND_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>

#include "bpfmap.h"
#include "layout.h"

struct bpfmap_ops {
    int backend; /* BPFMAP_BACKEND_*, what struct bpfmap reports */
    /* Whether fd is one of this backend's maps (1), not (0), or -errno. */
    int (*owns_fd)(int fd);
    /* Fill m's geometry from m->fd (m->access already set). */
    int (*open)(struct bpfmap *m);
    /* Create a map into m (zeroed by handle_init); name is the kernel's char[16]. */
    int (*create)(struct bpfmap *m, uint32_t map_type, uint32_t key_size, uint32_t value_size,
                  uint32_t max_entries, uint32_t map_flags, const char name[16]);
    int (*lookup)(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags);
    int (*update)(const struct bpfmap *m, uint32_t key, const void *value, uint64_t flags);
    int (*delete_elem)(const struct bpfmap *m, uint32_t key);
    int (*lookup_and_delete)(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags);
    int (*get_next_key)(const struct bpfmap *m, const uint32_t *key, uint32_t *next_key);
    int (*lookup_batch)(const struct bpfmap *m, const uint32_t *in_batch, uint32_t *out_batch,
                        uint32_t *keys, void *values, uint32_t *count, uint64_t elem_flags,
                        uint64_t flags);
    int (*update_batch)(const struct bpfmap *m, const uint32_t *keys, const void *values,
                        uint32_t *count, uint64_t elem_flags, uint64_t flags);
    int (*delete_batch)(const struct bpfmap *m, const uint32_t *keys, uint32_t *count,
                        uint64_t elem_flags, uint64_t flags);
    int (*freeze)(const struct bpfmap *m);
    int (*frozen)(const struct bpfmap *m);
    int (*info)(const struct bpfmap *m, struct bpfmap_info *info);
    /* *fd and *file_offset hold m->fd and offset on entry. */
    int (*mmap_check)(struct bpfmap *m, int writable, int shared, uint64_t offset,
                      uint64_t length, int *fd, uint64_t *file_offset);
};

extern const struct bpfmap_ops bpfmap_emulated_ops;
extern const struct bpfmap_ops bpfmap_kernel_ops;

static inline int handle_can_read(const struct bpfmap *m) { return m->access != O_WRONLY; }
static inline int handle_can_write(const struct bpfmap *m) { return m->access != O_RDONLY; }

/* Fill m's geometry (everything but fd, access, backend, ops and views). */
void handle_set_geometry(struct bpfmap *m, uint32_t map_type, uint32_t key_size,
                         uint32_t value_size, uint32_t max_entries, uint32_t map_flags,
                         const char name[16]);

/* kernel.c: BPF_MAP_CREATE of an array with these attributes: a new fd or -errno. */
int kernel_map_create(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                      uint32_t max_entries, uint32_t map_flags, const char name[16]);

/* emulated.c: a new open file description of the same memfd with another access mode. */
int emu_reopen_fd(int fd, int mode);
/* emulated.c: pwrite() of all len bytes (EINTR retried), 0 or -errno. */
int emu_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* emulated.c: 1 if frozen (sealed against writes), 0 if not, or -errno. */
int emu_frozen(const struct bpfmap *m);

/* arraymap.c: the emulated array's element and batch operations. */
int array_lookup(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags);
int array_update(const struct bpfmap *m, uint32_t key, const void *value, uint64_t flags);
int array_delete(const struct bpfmap *m, uint32_t key);
int array_lookup_and_delete(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags);
int array_get_next_key(const struct bpfmap *m, const uint32_t *key, uint32_t *next_key);
int array_lookup_batch(const struct bpfmap *m, const uint32_t *in_batch, uint32_t *out_batch,
                       uint32_t *keys, void *values, uint32_t *count, uint64_t elem_flags,
                       uint64_t flags);
int array_update_batch(const struct bpfmap *m, const uint32_t *keys, const void *values,
                       uint32_t *count, uint64_t elem_flags, uint64_t flags);
int array_delete_batch(const struct bpfmap *m, const uint32_t *keys, uint32_t *count,
                       uint64_t elem_flags, uint64_t flags);

#endif
