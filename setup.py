from setuptools import setup

setup(
    cffi_modules=["csrc/build_ffi.py:ffibuilder"],
    # cffi builds the C core against CPython's stable ABI (bpfmap/_core.abi3.so), so one wheel
    # serves every CPython from 3.9 on: tag it so.
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
