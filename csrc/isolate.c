/*
 * libbpf parses a BPF object's ELF, BTF and BTF.ext with the trust of a compiler's output: a
 * corrupted file can make it read out of bounds and crash (libbpf 1.1 does, on files a simple
 * mutation fuzzer makes in minutes). bpfmap's promise is that no file on disk can crash the
 * interpreter, so the same bytes are parsed once in a forked child first: if the child dies,
 * the caller reports the file as malformed instead of opening it in its own process.
 *
 * The fork happens in C so that the child runs no Python at all: it calls libbpf and _exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate_api.h"

/* libbpf 1.1 turns a negative error into NULL only within the kernel's ERR_PTR range (-4095..-1);
 * on a corrupted file some of its paths return a larger negative number as a pointer. A 64-bit
 * Linux process never has a user address with the top bit set, so such a pointer is an error. */
int bpfmap_is_error_pointer(const void *ptr)
{
    return sizeof(ptr) == 8 && (intptr_t)ptr < 0;
}

typedef void *(*open_mem_fn)(const void *buf, size_t size, const void *opts);

/* 0: the child opened the object and exited; -errno: libbpf refused it with that errno (or
 * fork/wait failed); -EINVAL with *signo set: the parse killed the child (SIGALRM: it ran
 * longer than timeout_s seconds). */
int bpfmap_probe_open_mem(uintptr_t open_mem, const void *buf, size_t size,
                          const void *opts, unsigned int timeout_s, int *signo)
{
    open_mem_fn fn = (open_mem_fn)open_mem;
    int status;
    pid_t pid;

    *signo = 0;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* A parse that loops forever is ended by the default action of SIGALRM. */
        signal(SIGALRM, SIG_DFL);
        alarm(timeout_s);
        errno = 0;
        void *obj = fn(buf, size, opts);
        if (obj && !bpfmap_is_error_pointer(obj))
            _exit(0);
        _exit(errno > 0 && errno < 256 ? errno : EINVAL);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno; /* ECHILD: SIGCHLD is ignored, the child was reaped for us */
    }
    if (WIFSIGNALED(status)) {
        *signo = WTERMSIG(status);
        return -EINVAL;
    }
    return -WEXITSTATUS(status);
}
