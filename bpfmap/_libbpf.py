"""libbpf, the field's own BPF object loader, through cffi in ABI mode (loaded at run time).

bpfmap does not link libbpf: ``libbpf.so.1`` (>= 1.0, whose functions return ``-errno`` or
NULL with ``errno`` set) is opened on first use, so the map API works on machines without it.
Only what bpfmap calls is declared. Every ``*_opts`` struct is declared in its oldest layout
with ``sz`` set from that layout: libbpf refuses ``sz = 0`` and a larger struct whose tail it
does not know is non-zero.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from cffi import FFI  # type: ignore[import-untyped]

ffi = FFI()
ffi.cdef(
    """
    struct bpf_object;
    struct bpf_map;
    struct bpf_program;
    struct bpf_link;
    struct btf;

    struct bpf_insn { uint8_t code; uint8_t regs; int16_t off; int32_t imm; };

    /* include/uapi/linux/btf.h */
    struct btf_type { uint32_t name_off; uint32_t info; uint32_t size_or_type; };
    struct btf_member { uint32_t name_off; uint32_t type; uint32_t offset; };
    struct btf_array { uint32_t type; uint32_t index_type; uint32_t nelems; };
    struct btf_enum { uint32_t name_off; int32_t val; };
    struct btf_enum64 { uint32_t name_off; uint32_t val_lo32; uint32_t val_hi32; };
    struct btf_var { uint32_t linkage; };
    struct btf_var_secinfo { uint32_t type; uint32_t offset; uint32_t size; };

    /* libbpf 1.0's layout (libbpf.h), up to the last field bpfmap sets: sz says where it
       ends, and libbpf reads the fields past it as unset. */
    struct bpf_object_open_opts {
        size_t sz;
        const char *object_name;
        _Bool relaxed_maps;
        const char *pin_root_path;
        uint32_t removed_attach_prog_fd;
        const char *kconfig;
    };

    /* libbpf 1.0's layout (bpf.h); batch_size is its last field. */
    struct bpf_test_run_opts {
        size_t sz;
        const void *data_in;
        void *data_out;
        uint32_t data_size_in;
        uint32_t data_size_out;
        const void *ctx_in;
        void *ctx_out;
        uint32_t ctx_size_in;
        uint32_t ctx_size_out;
        uint32_t retval;
        int repeat;
        uint32_t duration;
        uint32_t flags;
        uint32_t cpu;
        uint32_t batch_size;
    };

    uint32_t libbpf_major_version(void);
    uint32_t libbpf_minor_version(void);
    void *libbpf_set_print(void *fn);
    const char *libbpf_bpf_prog_type_str(int t);
    const char *libbpf_bpf_map_type_str(int t);

    struct bpf_object *bpf_object__open_file(const char *path,
                                             const struct bpf_object_open_opts *opts);
    struct bpf_object *bpf_object__open_mem(const void *obj_buf, size_t obj_buf_sz,
                                            const struct bpf_object_open_opts *opts);
    int bpf_object__load(struct bpf_object *obj);
    void bpf_object__close(struct bpf_object *obj);
    const char *bpf_object__name(const struct bpf_object *obj);
    struct btf *bpf_object__btf(const struct bpf_object *obj);
    struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);
    struct bpf_program *bpf_object__next_program(const struct bpf_object *obj,
                                                 struct bpf_program *prog);

    const char *bpf_map__name(const struct bpf_map *map);
    int bpf_map__fd(const struct bpf_map *map);
    int bpf_map__type(const struct bpf_map *map);
    uint32_t bpf_map__key_size(const struct bpf_map *map);
    uint32_t bpf_map__value_size(const struct bpf_map *map);
    uint32_t bpf_map__max_entries(const struct bpf_map *map);
    uint32_t bpf_map__map_flags(const struct bpf_map *map);
    _Bool bpf_map__is_internal(const struct bpf_map *map);
    uint32_t bpf_map__btf_value_type_id(const struct bpf_map *map);
    void *bpf_map__initial_value(struct bpf_map *map, size_t *psize);
    int bpf_map__set_initial_value(struct bpf_map *map, const void *data, size_t size);

    const char *bpf_program__name(const struct bpf_program *prog);
    const char *bpf_program__section_name(const struct bpf_program *prog);
    int bpf_program__type(const struct bpf_program *prog);
    int bpf_program__fd(const struct bpf_program *prog);
    const struct bpf_insn *bpf_program__insns(const struct bpf_program *prog);
    size_t bpf_program__insn_cnt(const struct bpf_program *prog);
    int bpf_program__set_log_buf(struct bpf_program *prog, char *log_buf, size_t log_size);
    struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
    int bpf_link__destroy(struct bpf_link *link);
    int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);

    uint32_t btf__type_cnt(const struct btf *btf);
    const struct btf_type *btf__type_by_id(const struct btf *btf, uint32_t id);
    const char *btf__name_by_offset(const struct btf *btf, uint32_t offset);
    """
)

SONAME = "libbpf.so.1"
_lib: Any = None


class LibbpfMissing(ImportError):
    """libbpf.so.1 could not be loaded (or is older than 1.0)."""


def lib() -> Any:
    """The loaded libbpf, opened on first use; :class:`LibbpfMissing` names what to install."""
    global _lib
    if _lib is None:
        try:
            loaded: Any = ffi.dlopen(SONAME)
        except OSError as exc:
            raise LibbpfMissing(
                f"BPF objects need libbpf >= 1.0 ({SONAME}): install it with your package "
                f"manager (Debian/Ubuntu: libbpf1, Fedora: libbpf); {exc}"
            ) from None
        if loaded.libbpf_major_version() < 1:
            raise LibbpfMissing(f"BPF objects need libbpf >= 1.0; {SONAME} is older")
        # libbpf prints warnings on stderr by default: a library must not. Its failures reach
        # the caller as errno, and the verifier log through each program's log buffer.
        loaded.libbpf_set_print(ffi.NULL)
        _lib = loaded
    return _lib


def version() -> str:
    libbpf = lib()
    return f"{libbpf.libbpf_major_version()}.{libbpf.libbpf_minor_version()}"


def string(ptr: Any) -> str:
    """A C string from libbpf (NULL reads as the empty string)."""
    return "" if ptr == ffi.NULL else ffi.string(ptr).decode("utf-8", "replace")


# libbpf's own error codes (libbpf.h, enum libbpf_errno: 4000-4013), which are no errno: the
# real errno each stands for, and what it means (libbpf_strerror's text in parentheses; it has
# none for LIBBPF_ERRNO__LOAD). A refused program is the verifier's EACCES, a too long one E2BIG.
_LIBBPF_ERRORS = {
    4000: (errno.EINVAL, "not a BPF object (libelf could not parse it: "
                         "Something wrong in libelf)"),
    4001: (errno.EINVAL, "not a BPF object (invalid ELF object format)"),
    4002: (errno.EINVAL, "incorrect or no 'version' section ('version' section incorrect or "
                         "lost)"),
    4003: (errno.EINVAL, "not a BPF object for this machine (Endian mismatch)"),
    4004: (errno.EINVAL, "libbpf failed on it (Internal error in libbpf)"),
    4005: (errno.EINVAL, "a relocation libbpf cannot apply (Relocation failed)"),
    4006: (errno.EINVAL, "load of the object failed"),
    4007: (errno.EACCES, "the kernel's verifier refused a program (Kernel verifier blocks "
                         "program loading)"),
    4008: (errno.E2BIG, "a program is too big (Program too big)"),
    4009: (errno.EINVAL, "incorrect kernel version (Incorrect kernel version)"),
    4010: (errno.EINVAL, "the kernel does not support a program type (Kernel doesn't support "
                         "this program type)"),
    4011: (errno.EINVAL, "wrong pid in a netlink message (Wrong pid in netlink message)"),
    4012: (errno.EINVAL, "invalid netlink sequence (Invalid netlink sequence)"),
    4013: (errno.EINVAL, "incorrect netlink message (Incorrect netlink message parsing)"),
}
# What an errno from libbpf's parser means about the file it was given (the file itself was
# read already: ENOENT there is a missing section, symbol or type, never a missing file).
_OPEN_HINTS = {
    errno.ENOENT: "a section, symbol or BTF type it names is missing",
    errno.EINVAL: "malformed",
    errno.E2BIG: "a size or count in it is out of range",
    errno.EOPNOTSUPP: "it uses a feature this libbpf does not support",
    errno.ENOTSUP: "it uses a feature this libbpf does not support",
}


def errno_and_reason(err: int) -> tuple[int, str]:
    """A positive error from libbpf (an errno or one of libbpf's own codes) as a real errno
    and the words for it."""
    if err in _LIBBPF_ERRORS:
        return _LIBBPF_ERRORS[err]
    return err, os.strerror(err)


def open_error(path: str, err: int, image: bytes) -> OSError:
    """The OSError for libbpf refusing to open the object ``image`` read from ``path`` with
    ``err`` (positive): always a real errno, with the file and libbpf's reason."""
    if err in (errno.EINVAL, 4000, 4001) and not image.startswith(b"\x7fELF"):
        return OSError(errno.EINVAL, f"open {path}: not an ELF file (a BPF object is built "
                       "with clang -O2 -g -target bpf)")
    code, reason = errno_and_reason(err)
    if err in _LIBBPF_ERRORS:
        return OSError(code, f"open {path}: {reason}")
    hint = _OPEN_HINTS.get(err)
    return OSError(code, f"open {path}: libbpf refused the object: {reason}"
                   + (f" ({hint})" if hint else ""))


def last_error(what: str) -> OSError:
    """The OSError for a libbpf call that returned NULL and set errno."""
    code, reason = errno_and_reason(ffi.errno or errno.EINVAL)
    return OSError(code, f"{what}: {reason}")
