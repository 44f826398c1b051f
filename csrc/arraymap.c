/*
 * The emulated array's element and batch operations: what kernel/bpf/syscall.c
 * checks for every map type (flags, the handle's access, frozen), then what
 * kernel/bpf/arraymap.c does, in the kernel's order. Values live in the memfd
 * (layout.h): reads copy from the handle's private read-only view, writes go
 * through pwrite() so that freeze (F_SEAL_WRITE) refuses them exactly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "backend.h"

static const unsigned char *value_ptr(const struct bpfmap *m, uint32_t key)
{
    return m->view + layout_value_offset(m->page_size, m->elem_size, key);
}

static uint64_t value_file_offset(const struct bpfmap *m, uint32_t key)
{
    return layout_value_offset(m->page_size, m->elem_size, key);
}

/* ------------------------------------------------------ element access */

int array_lookup(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags)
{
    /* map_lookup_elem(): flags before the fd, then perms, then the key. */
    if (flags & ~(uint64_t)BPF_F_LOCK)
        return -EINVAL;
    if (!handle_can_read(m))
        return -EPERM;
    if (flags & BPF_F_LOCK)
        return -EINVAL; /* no bpf_spin_lock in an emulated value */
    if (key >= m->max_entries)
        return -ENOENT;
    memcpy(value, value_ptr(m, key), m->value_size);
    return 0;
}

/*
 * Emulated write paths check "frozen" only when they are about to fail or
 * when pwrite() itself refuses: the kernel's perm check (EPERM for a frozen
 * map) comes first, so any other errno must give way to it.
 */
static int write_result(const struct bpfmap *m, int err)
{
    if (err && err != -EPERM && emu_frozen(m) > 0)
        return -EPERM;
    return err;
}

int array_update(const struct bpfmap *m, uint32_t key, const void *value, uint64_t flags)
{
    int err;
    /* map_update_elem() then array_map_update_elem(). */
    if (!handle_can_write(m))
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
        err = emu_pwrite_all(m->fd, value, m->value_size, value_file_offset(m, key));
    return write_result(m, err);
}

int array_delete(const struct bpfmap *m, uint32_t key)
{
    (void)key;
    if (!handle_can_write(m))
        return -EPERM;
    return write_result(m, -EINVAL); /* array_map_delete_elem() */
}

int array_lookup_and_delete(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags)
{
    (void)key;
    (void)value;
    /* map_lookup_and_delete_elem(): needs read and write permission. */
    if (flags & ~(uint64_t)BPF_F_LOCK)
        return -EINVAL;
    if (!handle_can_read(m) || !handle_can_write(m) || emu_frozen(m) > 0)
        return -EPERM;
    if (flags & BPF_F_LOCK)
        return -EINVAL;
    return -BPFMAP_ENOTSUPP; /* arrays have no lookup_and_delete */
}

int array_get_next_key(const struct bpfmap *m, const uint32_t *key, uint32_t *next_key)
{
    if (!handle_can_read(m))
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

/* generic_map_{lookup,update}_batch(): elem_flags may be BPF_F_LOCK alone, and that only
 * for a value with a bpf_spin_lock. */
static int generic_batch_elem_flags(uint64_t elem_flags)
{
    if (elem_flags & ~(uint64_t)BPF_F_LOCK)
        return -EINVAL;
    if (elem_flags & BPF_F_LOCK)
        return -EINVAL; /* no bpf_spin_lock in an emulated value */
    return 0;
}

/* generic_map_lookup_batch() over array_map_get_next_key(). */
int array_lookup_batch(const struct bpfmap *m, const uint32_t *in_batch, uint32_t *out_batch,
                       uint32_t *keys, void *values, uint32_t *count, uint64_t elem_flags,
                       uint64_t flags)
{
    uint32_t max_count, start, n, i;
    int err;
    (void)flags; /* never read by the generic batch ops */
    if (!handle_can_read(m))
        return -EPERM;
    err = generic_batch_elem_flags(elem_flags);
    if (err)
        return err;
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
        memcpy(values, value_ptr(m, start), (size_t)n * m->value_size);
    } else {
        for (i = 0; i < n; i++)
            memcpy((char *)values + (size_t)i * m->value_size, value_ptr(m, start + i),
                   m->value_size);
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
int array_update_batch(const struct bpfmap *m, const uint32_t *keys, const void *values,
                       uint32_t *count, uint64_t elem_flags, uint64_t flags)
{
    uint32_t max_count, i, run;
    int err, one_by_one = 0;
    (void)flags;
    if (!handle_can_write(m) || emu_frozen(m) > 0)
        return -EPERM; /* bpf_map_do_batch() */
    err = generic_batch_elem_flags(elem_flags);
    if (err)
        return err;
    max_count = *count;
    if (!max_count)
        return 0;
    *count = 0;
    /* In key order: one pwrite per run of consecutive keys when values are
     * unpadded; the first out-of-range key ends the batch with E2BIG. */
    for (i = 0; i < max_count; i += run) {
        if (keys[i] >= m->max_entries)
            return -E2BIG;
        run = m->value_size == m->elem_size && !one_by_one
                  ? consecutive_keys(keys + i, max_count - i, m->max_entries)
                  : 1;
        err = emu_pwrite_all(m->fd, (const char *)values + (size_t)i * m->value_size,
                             (size_t)run * m->value_size, value_file_offset(m, keys[i]));
        /* A run past RLIMIT_FSIZE (refused whole by emu_pwrite_all, before any
         * byte) goes again element by element: the batch then stops at the
         * first element that does not fit, as the kernel's would. */
        if (err == -EFBIG && run > 1) {
            one_by_one = 1;
            run = 0; /* the loop's i += run: again from the same element */
            continue;
        }
        if (err)
            return err;
        *count = i + run;
    }
    return 0;
}

int array_delete_batch(const struct bpfmap *m, const uint32_t *keys, uint32_t *count,
                       uint64_t elem_flags, uint64_t flags)
{
    (void)keys;
    (void)count;
    (void)elem_flags;
    (void)flags;
    if (!handle_can_write(m) || emu_frozen(m) > 0)
        return -EPERM;
    return -BPFMAP_ENOTSUPP; /* array_map_ops has no map_delete_batch */
}
