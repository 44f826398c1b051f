/*
 * Running a parser that may crash on hostile input in a child process (isolate.c).
 * Also a cffi cdef: plain declarations only.
 */

/* libbpf's bpf_object__open_mem(), passed as an address: the core does not link libbpf. */
int bpfmap_probe_open_mem(uintptr_t open_mem, const void *buf, size_t size,
                          const void *opts, unsigned int timeout_s, int *signo);

/* 1 when a pointer libbpf returned is an error code in disguise (see isolate.c). */
int bpfmap_is_error_pointer(const void *ptr);
