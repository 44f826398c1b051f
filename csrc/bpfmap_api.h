/*
 * The C core's public interface. This file is also the cffi cdef, so it holds
 * only plain declarations: no #include, no #define, no preprocessor logic.
 * Every function returns 0 (or a non-negative result) on success and -errno on
 * failure, like the kernel's own functions.
 */

/*
 * Constants, with the values of include/uapi/linux/bpf.h (installed headers
 * may be older than the running kernel). An enum, so that cffi reads them from
 * here and Python never repeats a value (bpfmap._bindings).
 */
enum bpfmap_constants {
    BPFMAP_BACKEND_EMULATED = 0,
    BPFMAP_BACKEND_KERNEL = 1,

    /* The kernel-internal errno that BPF returns for unsupported operations. */
    BPFMAP_ENOTSUPP = 524,

    BPFMAP_MAP_TYPE_ARRAY = 2,

    /* BPF_MAP_UPDATE_ELEM flags */
    BPFMAP_ANY = 0,
    BPFMAP_NOEXIST = 1,
    BPFMAP_EXIST = 2,
    BPFMAP_F_LOCK = 4,

    /* BPF_MAP_CREATE map_flags */
    BPFMAP_F_NO_PREALLOC = 1 << 0,
    BPFMAP_F_NO_COMMON_LRU = 1 << 1,
    BPFMAP_F_NUMA_NODE = 1 << 2,
    BPFMAP_F_RDONLY = 1 << 3,
    BPFMAP_F_WRONLY = 1 << 4,
    BPFMAP_F_STACK_BUILD_ID = 1 << 5,
    BPFMAP_F_ZERO_SEED = 1 << 6,
    BPFMAP_F_RDONLY_PROG = 1 << 7,
    BPFMAP_F_WRONLY_PROG = 1 << 8,
    BPFMAP_F_CLONE = 1 << 9,
    BPFMAP_F_MMAPABLE = 1 << 10,
    BPFMAP_F_PRESERVE_ELEMS = 1 << 11,
    BPFMAP_F_INNER_MAP = 1 << 12,
    BPFMAP_F_LINK = 1 << 13,
    BPFMAP_F_PATH_FD = 1 << 14,
    BPFMAP_F_VTYPE_BTF_OBJ_FD = 1 << 15,
    BPFMAP_F_TOKEN_FD = 1 << 16,
    BPFMAP_F_SEGV_ON_FAULT = 1 << 17,
    BPFMAP_F_NO_USER_CONV = 1 << 18,

    /* struct bpf_array's size on x86-64 (pahole), for the memlock figure bpftool shows. */
    BPFMAP_SIZEOF_BPF_ARRAY = 312
};

/* A backend's operations: see backend.h (opaque here). */
struct bpfmap_ops;

/* One open handle on a map: the analogue of a bpf map file descriptor. */
struct bpfmap {
    int fd;                 /* memfd (emulated) or bpf map fd (kernel); owned */
    int ro_fd;              /* emulated: O_RDONLY description for read-only mappings, or -1 */
    int backend;            /* BPFMAP_BACKEND_EMULATED or BPFMAP_BACKEND_KERNEL */
    const struct bpfmap_ops *ops; /* the backend's: every call dispatches through it */
    int access;             /* O_RDWR, O_RDONLY or O_WRONLY: the handle's file mode */
    uint32_t map_type;
    uint32_t id;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t map_flags;     /* as the kernel reports them: RDONLY/WRONLY stripped */
    uint64_t elem_size;     /* round_up(value_size, 8): layout.h */
    uint64_t page_size;     /* emulated: values start at this file offset (layout.h) */
    unsigned char *view;    /* emulated: private read-only mapping of the whole file */
    uint64_t view_len;
    char name[16];
};

/* The fields of struct bpf_map_info that bpfmap reports. */
struct bpfmap_info {
    uint32_t type;
    uint32_t id;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t map_flags;
    char name[16];
};

int bpfmap_create(struct bpfmap *m, int backend, uint32_t map_type, uint32_t key_size,
                  uint32_t value_size, uint32_t max_entries, uint32_t map_flags,
                  const char *name, uint32_t name_len);
int bpfmap_open_fd(struct bpfmap *m, int fd);
void bpfmap_release(struct bpfmap *m);

int bpfmap_lookup(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags);
int bpfmap_update(const struct bpfmap *m, uint32_t key, const void *value, uint64_t flags);
int bpfmap_delete(const struct bpfmap *m, uint32_t key);
int bpfmap_lookup_and_delete(const struct bpfmap *m, uint32_t key, void *value, uint64_t flags);
int bpfmap_get_next_key(const struct bpfmap *m, const uint32_t *key, uint32_t *next_key);

int bpfmap_lookup_batch(const struct bpfmap *m, const uint32_t *in_batch, uint32_t *out_batch,
                        uint32_t *keys, void *values, uint32_t *count,
                        uint64_t elem_flags, uint64_t flags);
int bpfmap_update_batch(const struct bpfmap *m, const uint32_t *keys, const void *values,
                        uint32_t *count, uint64_t elem_flags, uint64_t flags);
int bpfmap_delete_batch(const struct bpfmap *m, const uint32_t *keys, uint32_t *count,
                        uint64_t elem_flags, uint64_t flags);

int bpfmap_freeze(const struct bpfmap *m);
int bpfmap_frozen(const struct bpfmap *m);
int bpfmap_info(const struct bpfmap *m, struct bpfmap_info *info);

int bpfmap_mmap_check(struct bpfmap *m, int writable, int shared, uint64_t offset,
                      uint64_t length, int *fd, uint64_t *file_offset);
uint64_t bpfmap_mmap_window(const struct bpfmap *m);

/* The value layout (layout.h), for tools that compute sizes without a map. */
uint64_t bpfmap_elem_size(uint32_t value_size);
uint64_t bpfmap_values_size(uint32_t value_size, uint32_t max_entries, uint64_t page_size);

int bpfmap_obj_pin(int fd, const char *path);
int bpfmap_obj_get(const char *path, uint32_t file_flags);
int bpfmap_on_bpffs(const char *path);
int bpfmap_map_get_next_id(uint32_t start_id, uint32_t *next_id);
int bpfmap_map_get_fd_by_id(uint32_t id, uint32_t open_flags);
int bpfmap_map_fd_info(int fd, struct bpfmap_info *info, uint32_t *btf_id);

int bpfmap_kernel_available(void);
int bpfmap_noop(void);
