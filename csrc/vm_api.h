/*
 * The eBPF interpreter's public interface (csrc/vm.c, csrc/vm_helpers.c). Like
 * bpfmap_api.h this file is also the cffi cdef: plain declarations only, no
 * #include, no #define. Every function returns 0 or -errno.
 *
 * Life of a program: bpfvm_load() checks and decodes the instructions once (unknown
 * opcodes, bad registers, jumps outside the program or into an ld_imm64, map references
 * that the map table cannot resolve are refused there); bpfvm_run() executes, checking
 * every load and store against the regions the program may touch; the report names the
 * instruction and what it did whenever either refuses.
 */

/* Region permissions (struct bpfvm_region.flags). */
enum {
    BPFVM_READ = 1,
    BPFVM_WRITE = 2,
    /* Past the end of the context: any access is -EINVAL, as the kernel refuses a test run
     * whose ctx is shorter than what the program reads (max_ctx_offset). */
    BPFVM_PAST_CTX = 4,
};

/* Limits, as the kernel has them (MAX_BPF_STACK, MAX_CALL_FRAMES). */
enum {
    BPFVM_STACK_SIZE = 512,
    BPFVM_MAX_FRAMES = 8,
    BPFVM_MAX_HELPERS = 256,
};

/* Region kinds (struct bpfvm_region.kind). */
enum {
    BPFVM_REGION_PLAIN = 0,
    /* struct xdp_md: 4-byte loads of data (0), data_end (4) and data_meta (8) give the
     * packet pointers data, data_end and data, as the verifier's ctx rewrite does. */
    BPFVM_REGION_XDP_MD = 1,
    /* struct __sk_buff (192 bytes) of a socket filter: the fields it may touch only;
     * data .. data_end is the packet after its 14-byte MAC header, for BPF_ABS/BPF_IND
     * loads and bpf_skb_load_bytes (a socket filter has no direct packet access). */
    BPFVM_REGION_SKB = 2,
};

/* Memory a run may touch besides its stack and its maps: the context, the packet data. */
struct bpfvm_region {
    uint64_t base;          /* host address */
    uint64_t len;
    uint32_t flags;         /* BPFVM_READ | BPFVM_WRITE */
    uint32_t kind;          /* BPFVM_REGION_* */
    uint64_t data;          /* XDP_MD, SKB: the packet's first byte ... */
    uint64_t data_end;      /* ... and the byte past its last */
    uint64_t data_meta;     /* XDP_MD: the first byte of its metadata (0: none, = data) */
};

/*
 * A map the program refers to (ld_imm64 with src_reg 1/2 by fd, 5/6 by index into this
 * table). For BPF_MAP_TYPE_ARRAY, base points at max_entries elements of elem_size bytes
 * each (round_up(value_size, 8), the kernel's stride); the program may touch only the
 * first value_size bytes of an element, and may not write if map_flags has
 * BPF_F_RDONLY_PROG. base NULL: the map has no memory the program may touch directly.
 */
struct bpfvm_map {
    int32_t fd;
    uint32_t map_type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t map_flags;
    uint64_t elem_size;
    unsigned char *base;
    /* 1: base is mapped read-only although programs may write the map (an emulated map
     * frozen by F_SEAL_WRITE): a program's write stops the run with EPERM. */
    uint32_t frozen;
};

/* Why a load or a run was refused, or where a run stopped. */
struct bpfvm_report {
    int32_t insn;           /* instruction index, or -1 */
    uint32_t code;          /* its opcode byte */
    uint64_t executed;      /* instructions executed by the run */
    char msg[192];          /* "insn 12: 8-byte store to 0x... outside any region" */
};

struct bpfvm;

/* A helper: args are r1..r5; *ret becomes r0. A non-zero return (-errno) stops the run. */
typedef int (*bpfvm_helper_fn)(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);

/* Decode insn_cnt 8-byte instructions; maps is copied. The default helpers are installed. */
int bpfvm_load(struct bpfvm **out, const void *insns, uint32_t insn_cnt,
               const struct bpfvm_map *maps, uint32_t map_cnt, struct bpfvm_report *report);
void bpfvm_free(struct bpfvm *vm);

/* Run repeat times (at least once) from instruction 0 with r1 = arg; regions adds the
 * context, packet data, ... Each run executes at most budget instructions (-E2BIG past
 * it). r0 of the last run lands in *retval. */
int bpfvm_run(struct bpfvm *vm, uint64_t arg, const struct bpfvm_region *regions,
              uint32_t region_cnt, uint64_t budget, uint32_t repeat, uint64_t *retval,
              struct bpfvm_report *report);

/* Install (or with NULL remove) helper number id (BPF_FUNC_*). */
int bpfvm_set_helper(struct bpfvm *vm, uint32_t id, bpfvm_helper_fn fn);
void bpfvm_set_user(struct bpfvm *vm, void *user);
void *bpfvm_user(struct bpfvm *vm);
/* Seed of bpf_get_prandom_u32 (default: fixed, so runs replay). */
void bpfvm_set_seed(struct bpfvm *vm, uint64_t seed);
/* trace_printk output captured so far (NUL-terminated), and clearing it. */
const char *bpfvm_trace_output(struct bpfvm *vm, uint64_t *len);
void bpfvm_trace_clear(struct bpfvm *vm);

/* For helpers: the host pointer behind [addr, addr+size) if the program may touch it
 * (write: for writing), else NULL; and the map behind a map pointer, else NULL. */
void *bpfvm_access(struct bpfvm *vm, uint64_t addr, uint64_t size, int write);
struct bpfvm_map *bpfvm_map_of(struct bpfvm *vm, uint64_t map_ptr);

/* The default helpers (installed by bpfvm_load under their BPF_FUNC_* numbers). */
int bpfvm_map_lookup_elem(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_map_update_elem(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_map_delete_elem(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_ktime_get_ns(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_trace_printk(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_get_prandom_u32(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_get_smp_processor_id(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_get_current_pid_tgid(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_get_current_uid_gid(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_ktime_get_boot_ns(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
int bpfvm_skb_load_bytes(struct bpfvm *vm, const uint64_t *args, uint64_t *ret);
