/*
 * The kernel backend: every operation is the real bpf() syscall on a map fd,
 * so the kernel itself makes every check and returns every errno. Nothing here
 * second-guesses it; the functions only marshal union bpf_attr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "backend.h"

#define BPF_FS_MAGIC_NUMBER 0xcafe4a11ULL

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    long ret = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
    return ret < 0 ? -errno : ret;
}

static uint64_t ptr_to_u64(const void *p) { return (uint64_t)(uintptr_t)p; }

/* BPF_OBJ_GET_INFO_BY_FD into our struct bpfmap_info (and the btf_id, if asked):
 * the one place that copies struct bpf_map_info. */
static int kernel_map_info(int fd, struct bpfmap_info *info, uint32_t *btf_id)
{
    struct bpf_map_info ki;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    memset(&ki, 0, sizeof(ki));
    memset(info, 0, sizeof(*info));
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof(ki);
    attr.info.info = ptr_to_u64(&ki);
    long r = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
    if (r < 0)
        return (int)r;
    info->type = ki.type;
    info->id = ki.id;
    info->key_size = ki.key_size;
    info->value_size = ki.value_size;
    info->max_entries = ki.max_entries;
    info->map_flags = ki.map_flags;
    memcpy(info->name, ki.name, sizeof(info->name));
    if (btf_id)
        *btf_id = ki.btf_id;
    return 0;
}

/* ---------------------------------------------------------------- open */

/* A descriptor that is not a sealable memfd is left to the kernel to judge. */
static int kernel_owns_fd(int fd)
{
    (void)fd;
    return 1;
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
    struct bpfmap_info info;
    int err = kernel_fd_is_map(m->fd);
    if (err)
        return err;
    err = kernel_map_info(m->fd, &info, NULL);
    if (err)
        return err;
    if (info.type != BPF_MAP_TYPE_ARRAY)
        return -EINVAL;
    handle_set_geometry(m, info.type, info.key_size, info.value_size, info.max_entries,
                        info.map_flags, info.name);
    m->id = info.id;
    return 0;
}

int kernel_map_create(uint32_t map_type, uint32_t key_size, uint32_t value_size,
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

static int kernel_create(struct bpfmap *m, uint32_t map_type, uint32_t key_size,
                         uint32_t value_size, uint32_t max_entries, uint32_t map_flags,
                         const char name[16])
{
    int fd = kernel_map_create(map_type, key_size, value_size, max_entries, map_flags, name);
    if (fd < 0)
        return fd;
    int err = bpfmap_open_fd(m, fd);
    if (err)
        close(fd); /* bpfmap_open_fd() leaves fd to its caller on failure */
    return err;
}

/* ------------------------------------------------------ element access */

/* The kernel's element commands share one attr layout. Only the fields up to
 * flags are passed (as libbpf does): the kernel zero-fills the rest of its own
 * union, so the command sees the same attr, and neither side clears or copies
 * the other 100-odd bytes (about 14 ns of a 270 ns lookup, measured). */
static int kernel_elem(const struct bpfmap *m, int cmd, const void *key, const void *value,
                       uint64_t flags)
{
    union bpf_attr attr;
    const size_t size = offsetof(union bpf_attr, flags) + sizeof(attr.flags);
    memset(&attr, 0, size);
    attr.map_fd = (uint32_t)m->fd;
    attr.key = ptr_to_u64(key);
    attr.value = ptr_to_u64(value); /* next_key for GET_NEXT_KEY: the same field */
    attr.flags = flags;
    long ret = syscall(__NR_bpf, cmd, &attr, size);
    return ret < 0 ? -errno : (int)ret;
}

static int kernel_lookup(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags)
{
    return kernel_elem(m, BPF_MAP_LOOKUP_ELEM, &key, value, flags);
}

static int kernel_update(const struct bpfmap *m, uint32_t key, const void *value, uint64_t flags)
{
    return kernel_elem(m, BPF_MAP_UPDATE_ELEM, &key, value, flags);
}

static int kernel_delete(const struct bpfmap *m, uint32_t key)
{
    return kernel_elem(m, BPF_MAP_DELETE_ELEM, &key, NULL, 0);
}

static int kernel_lookup_and_delete(const struct bpfmap *m, uint32_t key, void *value,
                                    uint64_t flags)
{
    return kernel_elem(m, BPF_MAP_LOOKUP_AND_DELETE_ELEM, &key, value, flags);
}

static int kernel_get_next_key(const struct bpfmap *m, const uint32_t *key, uint32_t *next_key)
{
    return kernel_elem(m, BPF_MAP_GET_NEXT_KEY, key, next_key, 0);
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

static int kernel_lookup_batch(const struct bpfmap *m, const uint32_t *in_batch,
                               uint32_t *out_batch, uint32_t *keys, void *values,
                               uint32_t *count, uint64_t elem_flags, uint64_t flags)
{
    return kernel_batch(m, BPF_MAP_LOOKUP_BATCH, in_batch, out_batch, keys, values, count,
                        elem_flags, flags);
}

static int kernel_update_batch(const struct bpfmap *m, const uint32_t *keys, const void *values,
                               uint32_t *count, uint64_t elem_flags, uint64_t flags)
{
    return kernel_batch(m, BPF_MAP_UPDATE_BATCH, NULL, NULL, keys, values, count, elem_flags,
                        flags);
}

static int kernel_delete_batch(const struct bpfmap *m, const uint32_t *keys, uint32_t *count,
                               uint64_t elem_flags, uint64_t flags)
{
    return kernel_batch(m, BPF_MAP_DELETE_BATCH, NULL, NULL, keys, NULL, count, elem_flags,
                        flags);
}

/* ------------------------------------------------------- freeze, info */

static int kernel_freeze(const struct bpfmap *m)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)m->fd;
    return (int)sys_bpf(BPF_MAP_FREEZE, &attr);
}

/* The kernel reports frozen only in fdinfo ("frozen: 1"). */
static int kernel_frozen(const struct bpfmap *m)
{
    char path[64], line[256];
    int frozen = -ENOENT;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", m->fd);
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

static int kernel_info(const struct bpfmap *m, struct bpfmap_info *info)
{
    return kernel_map_info(m->fd, info, NULL);
}

/* The kernel checks a mapping itself, at mmap() time: map the fd from offset. */
static int kernel_mmap_check(struct bpfmap *m, int writable, int shared, uint64_t offset,
                             uint64_t length, int *fd, uint64_t *file_offset)
{
    (void)m;
    (void)writable;
    (void)shared;
    (void)offset;
    (void)length;
    (void)fd;
    (void)file_offset;
    return 0;
}

const struct bpfmap_ops bpfmap_kernel_ops = {
    .backend = BPFMAP_BACKEND_KERNEL,
    .owns_fd = kernel_owns_fd,
    .open = kernel_open,
    .create = kernel_create,
    .lookup = kernel_lookup,
    .update = kernel_update,
    .delete_elem = kernel_delete,
    .lookup_and_delete = kernel_lookup_and_delete,
    .get_next_key = kernel_get_next_key,
    .lookup_batch = kernel_lookup_batch,
    .update_batch = kernel_update_batch,
    .delete_batch = kernel_delete_batch,
    .freeze = kernel_freeze,
    .frozen = kernel_frozen,
    .info = kernel_info,
    .mmap_check = kernel_mmap_check,
};

/* ------------------------------------ kernel objects, by path and by id */

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
    return kernel_map_info(fd, info, btf_id);
}

int bpfmap_kernel_available(void)
{
    static const char name[16] = "bpfmap_probe";
    int fd = kernel_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1, BPFMAP_F_MMAPABLE, name);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}
