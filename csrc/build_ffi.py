"""cffi build script (out-of-line API mode): compiles the C core into bpfmap._core.

Run by setuptools through ``cffi_modules``; it may import only cffi (pip's
isolated build environment holds nothing else).
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE

ffibuilder = FFI()
ffibuilder.cdef((CSRC / "bpfmap_api.h").read_text())
ffibuilder.set_source(
    "bpfmap._core",
    '#include "bpfmap.h"',
    sources=["csrc/bpfmap.c"],
    include_dirs=["csrc"],
    depends=["csrc/bpfmap.h", "csrc/bpfmap_api.h"],
    extra_compile_args=["-std=c11", "-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
