"""The programs of a BPF object: listed on both backends, run and attached on the kernel's.

``test_run`` is ``BPF_PROG_TEST_RUN`` (libbpf's ``bpf_prog_test_run_opts``) and ``attach``
libbpf's ``bpf_program__attach``, which attaches by section name (``raw_tp/``, ``tp/``,
``kprobe/``, ...). On the emulated backend ``test_run`` runs the program in bpfmap's own
interpreter against the emulated maps (:mod:`bpfmap._vm_run`); ``attach`` needs the kernel.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from . import _libbpf

# Output buffers of test_run: the kernel refuses (ENOSPC) a data_out smaller than the result.
_MAX_OUT = 1 << 16
# Program types whose test run takes no ctx_out: the context comes back in ctx_in, if at all.
_CTX_IN_PLACE = frozenset({"syscall", "raw_tracepoint", "raw_tracepoint_writable"})


class TestRun(NamedTuple):
    """One ``BPF_PROG_TEST_RUN``: the program's return value, the mean duration per
    repetition in ns, the packet data and the context as the program left them."""

    retval: int
    duration_ns: int
    data: bytes
    ctx: bytes


class Link:
    """An attached program; ``close()`` (or the end of a ``with``) detaches it."""

    def __init__(self, handle: Any, program: str) -> None:
        # Detached by close(), or when the last reference goes.
        self._link: Any = _libbpf.ffi.gc(handle, _libbpf.lib().bpf_link__destroy)
        self.program = program

    @property
    def closed(self) -> bool:
        return self._link is None

    def close(self) -> None:
        if self._link is not None:
            _libbpf.ffi.release(self._link)  # bpf_link__destroy, now
            self._link = None

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Link {self.program} {'closed' if self.closed else 'attached'}>"


class Program:
    """One program of an object: ``name``, ``section`` (its ELF section, e.g. ``xdp`` or
    ``raw_tp/sys_enter``) and ``type`` (the kernel's name of its program type)."""

    def __init__(self, owner: Any, handle: Any) -> None:
        libbpf = _libbpf.lib()
        self._owner = owner  # the BpfObject: it owns libbpf's object, and so this handle
        self._prog = handle
        self.name = _libbpf.string(libbpf.bpf_program__name(handle))
        self.section = _libbpf.string(libbpf.bpf_program__section_name(handle))
        prog_type = libbpf.bpf_program__type(handle)
        self.type = _libbpf.string(libbpf.libbpf_bpf_prog_type_str(prog_type))
        self.log = bytearray()  # the kernel backend's load gives it the verifier's log
        # emulated backend: what bpf_trace_printk wrote during the last test_run (the
        # kernel's goes to /sys/kernel/tracing/trace_pipe)
        self.trace = ""

    def __repr__(self) -> str:
        return f"<Program {self.name} section={self.section} type={self.type}>"

    @property
    def instructions(self) -> bytes:
        """The program's instructions as libbpf holds them (8 bytes each)."""
        self._owner._check_open()
        libbpf = _libbpf.lib()
        count = libbpf.bpf_program__insn_cnt(self._prog)
        return bytes(_libbpf.ffi.buffer(libbpf.bpf_program__insns(self._prog), count * 8))

    @property
    def fd(self) -> int:
        """The program's descriptor once loaded on the kernel backend (owned by the object)."""
        self._owner._check_kernel_loaded("fd")
        return int(_libbpf.lib().bpf_program__fd(self._prog))

    def verifier_log(self) -> str:
        return self.log.split(b"\0", 1)[0].decode("utf-8", "replace")

    def test_run(
        self, data: bytes = b"", *, ctx: bytes | None = None, repeat: int = 1
    ) -> TestRun:
        """Run the program once or ``repeat`` times on ``data`` (packet programs) and/or
        ``ctx`` (a context buffer: ``syscall`` and ``raw_tp`` programs, which run once)."""
        emulated = self._owner.backend == "emulated"
        if emulated:
            self._owner._check_open()
            if not self._owner.loaded:
                raise ValueError("test_run: load() the object first")
        else:
            self._owner._check_kernel_loaded("test_run")
        data_in = _bytes(data, "data")
        ctx_in = None if ctx is None else _bytes(ctx, "ctx")
        if isinstance(repeat, bool) or not isinstance(repeat, int):
            raise TypeError(f"repeat must be an int, not {type(repeat).__name__}")
        if not 0 <= repeat < 2**31:
            raise ValueError(f"repeat must be in 0..{2**31 - 1}, got {repeat}")
        if emulated:
            from . import _vm_run

            return TestRun(*_vm_run.test_run(self, data_in, ctx_in, repeat))
        ffi = _libbpf.ffi
        opts = ffi.new("struct bpf_test_run_opts *")
        opts.sz = ffi.sizeof("struct bpf_test_run_opts")
        data_out = ctx_buf = ffi.NULL
        if data_in:
            data_out = ffi.new("char[]", max(len(data_in), _MAX_OUT))
            opts.data_in, opts.data_size_in = ffi.from_buffer(data_in), len(data_in)
            opts.data_out, opts.data_size_out = data_out, len(data_out)
        if ctx_in:
            # syscall programs write their context back into ctx_in and refuse a ctx_out
            # (bpf_prog_test_run_syscall); the others fill ctx_out.
            ctx_buf = ffi.new("char[]", ctx_in)
            opts.ctx_in, opts.ctx_size_in = ctx_buf, len(ctx_in)
            if self.type not in _CTX_IN_PLACE:
                opts.ctx_out, opts.ctx_size_out = ffi.new("char[]", len(ctx_in)), len(ctx_in)
        # repeat 0 and 1 both mean once; raw_tp and syscall programs refuse any other value.
        opts.repeat = 0 if repeat == 1 else repeat
        rc = _libbpf.lib().bpf_prog_test_run_opts(self.fd, opts)
        if rc < 0:
            raise OSError(-rc, f"test_run {self.name}: {os.strerror(-rc)}")
        out_data = bytes(ffi.buffer(data_out, opts.data_size_out)) if data_in else b""
        out_ctx = b""
        if ctx_in:
            source = ctx_buf if opts.ctx_out == ffi.NULL else opts.ctx_out
            size = len(ctx_in) if opts.ctx_out == ffi.NULL else opts.ctx_size_out
            out_ctx = bytes(ffi.buffer(source, size))
        return TestRun(int(opts.retval), int(opts.duration), out_data, out_ctx)

    def attach(self) -> Link:
        """Attach by section name (``raw_tp/...``, ``tp/...``, ``kprobe/...``, ...)."""
        self._owner._check_kernel_loaded("attach")
        handle = _libbpf.lib().bpf_program__attach(self._prog)
        if handle == _libbpf.ffi.NULL:
            raise _libbpf.last_error(f"attach {self.name} ({self.section})")
        return Link(handle, self.name)


def _bytes(value: Any, what: str) -> bytes:
    try:
        return bytes(memoryview(value))
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not {type(value).__name__}") from None
