/*
 * The C core's public interface. This file is also the cffi cdef, so it holds
 * only plain declarations: no #include, no #define, no preprocessor logic.
 * Every function returns 0 (or a non-negative result) on success and -errno on
 * failure, like the kernel's own functions.
 */

/* One open handle on a map: the analogue of a bpf map file descriptor. */
struct bpfmap {
    int fd;                 /* memfd (emulated) or bpf map fd (kernel); owned */
    int ro_fd;              /* emulated: O_RDONLY description for read-only mappings, or -1 */
    int backend;            /* BPFMAP_BACKEND_EMULATED or BPFMAP_BACKEND_KERNEL */
    int access;             /* O_RDWR, O_RDONLY or O_WRONLY: the handle's file mode */
    uint32_t map_type;
    uint32_t id;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t map_flags;     /* as the kernel reports them: RDONLY/WRONLY stripped */
    uint64_t elem_size;     /* round_up(value_size, 8) */
    uint64_t page_size;
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

int bpfmap_obj_pin(int fd, const char *path);
int bpfmap_obj_get(const char *path, uint32_t file_flags);
int bpfmap_on_bpffs(const char *path);
int bpfmap_map_get_next_id(uint32_t start_id, uint32_t *next_id);
int bpfmap_map_get_fd_by_id(uint32_t id, uint32_t open_flags);
int bpfmap_map_fd_info(int fd, struct bpfmap_info *info, uint32_t *btf_id);

int bpfmap_kernel_available(void);
int bpfmap_noop(void);
