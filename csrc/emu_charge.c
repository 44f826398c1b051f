/*
 * Emulated maps own their memory from create, as the kernel's do.
 *
 * BPF_MAP_CREATE allocates and charges the whole array at once
 * (bpf_map_area_alloc(): __GFP_ACCOUNT | __GFP_RETRY_MAYFAIL), so a map too
 * big for the memory cgroup, or for the machine, fails there with ENOMEM and
 * nothing later can run out. A sparse memfd would be charged page by page on
 * first write instead, and the charge that does not fit OOM-kills the process
 * (or SIGBUSes a mapping) long after create said yes.
 *
 * fallocate() allocates the pages, but a shmem charge that does not fit the
 * cgroup invokes the cgroup's OOM killer rather than failing (its gfp has no
 * __GFP_RETRY_MAYFAIL). So first decide as the kernel's charge would: the map
 * must fit under every memory limit above us, counting the clean page cache
 * the kernel would reclaim for it, and into the machine's available memory.
 * Only then allocate it whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

#include "bpfmap.h"

#define NO_LIMIT UINT64_MAX

/* One number from a one-line file; "max" (cgroup v2) is NO_LIMIT. */
static int read_u64(const char *path, uint64_t *out)
{
    char buf[64];
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    if (!fgets(buf, sizeof(buf), f)) {
        fclose(f);
        return -EIO;
    }
    fclose(f);
    if (!strncmp(buf, "max", 3)) {
        *out = NO_LIMIT;
        return 0;
    }
    *out = strtoull(buf, NULL, 10);
    return 0;
}

/* The sum of the named "key value" lines of a stat file (0 for missing keys). */
static uint64_t stat_sum(const char *path, const char *key1, const char *key2, uint64_t scale)
{
    char line[256], name[128];
    unsigned long long v;
    uint64_t sum = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%127[^: ]%*[: ]%llu", name, &v) != 2)
            continue;
        if (!strcmp(name, key1) || !strcmp(name, key2))
            sum += (uint64_t)v * scale;
    }
    fclose(f);
    return sum;
}

/* Whether a comma-separated option list holds opt. */
static int has_opt(const char *list, const char *opt)
{
    size_t n = strlen(opt);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, opt, n) && (p[n] == ',' || p[n] == 0 || p[n] == '\n'))
            return 1;
    return 0;
}

/*
 * The mount that shows a memory cgroup hierarchy (v1: the "memory" controller;
 * v2) in /proc/self/mountinfo: its root within the hierarchy and its mount
 * point. Mounts do not move under a running program, and reading mountinfo is
 * most of this file's cost, so it is read once per process (pthread_once:
 * cffi releases the GIL, threads may create maps at once).
 */
struct cg_mount {
    int state; /* 1: found, -1: none */
    char root[2048], mnt[2048];
};

static void find_mount(int version, struct cg_mount *out)
{
    char line[4096];
    FILE *f = fopen("/proc/self/mountinfo", "re");
    out->state = -1;
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char fstype[64], opts[1024];
        char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %2047s %2047s", out->root, out->mnt) != 2 ||
            sscanf(dash + 3, "%63s %*s %1023s", fstype, opts) != 2)
            continue;
        if (version == 1 ? !strcmp(fstype, "cgroup") && has_opt(opts, "memory")
                         : !strcmp(fstype, "cgroup2")) {
            out->state = 1;
            break;
        }
    }
    fclose(f);
}

static struct cg_mount mounts[2];
static pthread_once_t mounts_once[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
static void find_mount_v1(void) { find_mount(1, &mounts[0]); }
static void find_mount_v2(void) { find_mount(2, &mounts[1]); }

/*
 * The directory of this process's memory cgroup, v1 ("memory" controller) or
 * v2, from /proc/self/cgroup (read each time: a process can be moved) and the
 * mount that shows it. Returns 1 (v1) or 2 (v2) with dir and top (the mount
 * point) filled; 0 if none.
 */
static int memcg_dir(char *dir, size_t dirlen, char *top, size_t toplen)
{
    char line[4096], v1[2048] = "", v2[2048] = "", *want;
    int version;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        c2[1 + strcspn(c2 + 1, "\n")] = 0;
        if (has_opt(c1 + 1, "memory"))
            snprintf(v1, sizeof(v1), "%s", c2 + 1);
        else if (!strcmp(line, "0") && c1[1] == 0)
            snprintf(v2, sizeof(v2), "%s", c2 + 1);
    }
    fclose(f);
    if (*v1) {
        version = 1;
        want = v1;
    } else if (*v2) {
        version = 2;
        want = v2;
    } else {
        return 0;
    }
    struct cg_mount *m = &mounts[version - 1];
    pthread_once(&mounts_once[version - 1], version == 1 ? find_mount_v1 : find_mount_v2);
    if (m->state < 0)
        return 0;
    size_t rl = strcmp(m->root, "/") ? strlen(m->root) : 0;
    if (strncmp(want, m->root, rl) || (want[rl] != '/' && want[rl] != 0))
        return 0; /* the mount shows another part of the hierarchy */
    snprintf(top, toplen, "%s", m->mnt);
    if ((size_t)snprintf(dir, dirlen, "%s%s", m->mnt, want + rl) >= dirlen)
        return 0;
    return version;
}

/* What the memory cgroups above us can still charge (NO_LIMIT if unlimited). */
static uint64_t memcg_room(void)
{
    char dir[4096], top[4096], path[4200];
    uint64_t room = NO_LIMIT;
    int version = memcg_dir(dir, sizeof(dir), top, sizeof(top));
    if (!version)
        return NO_LIMIT;
    for (;;) {
        uint64_t limit, usage, cache;
        snprintf(path, sizeof(path), "%s/%s", dir,
                 version == 1 ? "memory.limit_in_bytes" : "memory.max");
        /* v1 shows "no limit" as PAGE_COUNTER_MAX pages, about 2^63 bytes. */
        if (!read_u64(path, &limit) && limit < (1ULL << 62)) {
            snprintf(path, sizeof(path), "%s/%s", dir,
                     version == 1 ? "memory.usage_in_bytes" : "memory.current");
            if (!read_u64(path, &usage)) {
                snprintf(path, sizeof(path), "%s/memory.stat", dir);
                /* Clean page cache is what the kernel reclaims before failing. */
                cache = version == 1 ? stat_sum(path, "total_inactive_file",
                                                "total_active_file", 1)
                                     : stat_sum(path, "inactive_file", "active_file", 1);
                uint64_t free = limit > usage ? limit - usage : 0;
                free = free + cache < free ? NO_LIMIT : free + cache;
                if (free < room)
                    room = free;
            }
        }
        if (!strcmp(dir, top))
            break;
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < strlen(top))
            break;
        *slash = 0;
    }
    return room;
}

int emu_charge(int fd, uint64_t bytes)
{
    struct sysinfo si;
    /* Free memory alone is a cheap yes; otherwise ask for MemAvailable, which
     * also counts the page cache the kernel would reclaim. */
    if (sysinfo(&si) < 0 || bytes > (uint64_t)si.freeram * si.mem_unit) {
        uint64_t avail = stat_sum("/proc/meminfo", "MemAvailable", "MemAvailable", 1024);
        if (avail && bytes > avail)
            return -ENOMEM;
    }
    if (bytes > memcg_room())
        return -ENOMEM;
    /* The map's read-only view (emu_open) needs the address space: under an
     * RLIMIT_AS it would not fit, fail before allocating rather than after. */
    void *probe = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe == MAP_FAILED)
        return -errno;
    munmap(probe, bytes);
    /* shmem says ENOSPC (or ENOMEM) when the pages cannot be had. */
    if (fallocate(fd, 0, 0, (off_t)bytes) < 0)
        return errno == ENOSPC ? -ENOMEM : -errno;
    return 0;
}

int emu_fsize_check(uint64_t end)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
        return -errno;
    /* The kernel's writes past RLIMIT_FSIZE are cut short, then refused with
     * SIGXFSZ: refuse before writing, so a value is written whole or not at
     * all and no signal reaches the process. */
    if (rl.rlim_cur != RLIM_INFINITY && end > (uint64_t)rl.rlim_cur)
        return -EFBIG;
    return 0;
}
