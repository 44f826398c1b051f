"""cffi build script (out-of-line API mode): compiles the C core into bpfmap._core.

Run by setuptools through ``cffi_modules``; it may import only cffi (pip's
isolated build environment holds nothing else).
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE

# The C core, one file per part (see csrc/backend.h): add a file here, one per line.
SOURCES = [
    "csrc/bpfmap.c",
    "csrc/emulated.c",
    "csrc/arraymap.c",
    "csrc/kernel.c",
    "csrc/emu_charge.c",
    "csrc/isolate.c",
    # the eBPF interpreter: checks and decoding, the run loop, the helpers
    "csrc/vm_load.c",
    "csrc/vm.c",
    "csrc/vm_helpers.c",
]
HEADERS = [
    "csrc/bpfmap.h",
    "csrc/bpfmap_api.h",
    "csrc/backend.h",
    "csrc/layout.h",
    "csrc/isolate_api.h",
    "csrc/vm.h",
    "csrc/vm_api.h",
]
# The cffi cdefs: declarations only (no #include, no #define), one file per line; each
# is also #included by the extension's own source.
CDEFS = [
    "bpfmap_api.h",
    "isolate_api.h",
    "vm_api.h",
]

ffibuilder = FFI()
for cdef in CDEFS:
    ffibuilder.cdef((CSRC / cdef).read_text())
ffibuilder.set_source(
    "bpfmap._core",
    '#include "bpfmap.h"\n' + "".join(f'#include "{h}"\n' for h in CDEFS[1:]),
    sources=SOURCES,
    include_dirs=["csrc"],
    depends=HEADERS,
    # -O3: the batch loops (key fill, key checks) vectorize; -O2 leaves them scalar.
    extra_compile_args=["-std=c11", "-O3"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
