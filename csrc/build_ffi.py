"""cffi build script (out-of-line API mode): compiles the C core into bpfmap._core.

Run by setuptools through ``cffi_modules``; it may import only cffi (pip's
isolated build environment holds nothing else).
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE

ffibuilder = FFI()
# vm_api.h: the eBPF interpreter (csrc/vm_load.c, csrc/vm.c, csrc/vm_helpers.c)
for header in ("bpfmap_api.h", "isolate_api.h", "vm_api.h"):
    ffibuilder.cdef((CSRC / header).read_text())
ffibuilder.set_source(
    "bpfmap._core",
    '#include "bpfmap.h"\n#include "isolate_api.h"\n#include "vm.h"',
    sources=["csrc/bpfmap.c", "csrc/isolate.c", "csrc/vm_load.c", "csrc/vm.c",
             "csrc/vm_helpers.c"],
    include_dirs=["csrc"],
    depends=["csrc/bpfmap.h", "csrc/bpfmap_api.h", "csrc/isolate_api.h", "csrc/vm.h",
             "csrc/vm_api.h"],
    # -O3: the batch loops (key fill, key checks) vectorize; -O2 leaves them scalar.
    extra_compile_args=["-std=c11", "-O3"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
