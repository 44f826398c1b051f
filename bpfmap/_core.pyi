# The cffi extension built from csrc/ (see csrc/build_ffi.py); its functions
# are declared in csrc/bpfmap_api.h.
from typing import Any

ffi: Any
lib: Any
