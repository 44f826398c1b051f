"""``bpfmap gen skeleton FILE [name NAME] [-o OUT]``: a typed Python module for a BPF object.

As ``bpftool gen skeleton`` prints a C header for an object (``name NAME`` names it), this
prints a Python module (see :mod:`bpfmap._skeleton`); ``-o OUT`` writes it to OUT instead,
replacing it only once the whole module is generated. The object is opened without loading
it, so no privileges are needed.
"""

from __future__ import annotations

import os
import sys
import tempfile

from .._skeleton import check_class_name, generate
from .common import Args, Context, is_prefix, run_command
from .object import describe_error, open_object

BIN = "bpfmap"

HELP = """\
Usage: {bin} gen skeleton FILE [name NAME] [{{-o|--output}} OUT]
       {bin} gen help

       FILE := a BPF object file (clang -O2 -g -target bpf)
       NAME := the skeleton's class (default: the object's name in CamelCase)
       OUT  := the module to write (default: standard output)
"""


def _take_output(argv: list[str]) -> tuple[list[str], str | None]:
    """``-o OUT``, ``-oOUT``, ``--output OUT``, ``--output=OUT`` (before any ``--``)."""
    rest: list[str] = []
    out = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            rest += argv[i - 1 :]
            break
        if arg in ("-o", "--output", "--o", "--ou", "--out", "--outp", "--outpu"):
            if i >= len(argv):
                raise ValueError(f"option '{arg}' requires an argument")
            out = argv[i]
            i += 1
        elif arg.startswith("--output="):
            out = arg[len("--output="):]
        elif arg.startswith("-o") and not arg.startswith("--"):
            out = arg[2:]
        else:
            rest.append(arg)
    if out == "":
        raise ValueError("the output file name is empty")
    return rest, out


def _write(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: a reader never sees half a module."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bpfmap-skeleton-", suffix=".py", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def do_skeleton(ctx: Context, args: Args, output: str | None) -> int:
    if args.argc < 1:
        ctx.p_err("'skeleton' needs a FILE")
        return -1
    path = args.next()
    name = None
    if args.argc:
        if args.peek() != "name" or args.argc != 2:
            ctx.p_err(f"what is '{args.peek()}'? (expected: name NAME)")
            return -1
        args.next()
        name = args.next()
        try:
            check_class_name(name)
        except ValueError as exc:
            ctx.p_err(str(exc))
            return -1
    try:
        obj = open_object(path)
    except Exception as exc:  # not ELF, no BTF, BTF bpfmap cannot lay out: one line
        ctx.p_err(describe_error(path, exc))
        return -1
    try:
        with obj:
            text = generate(obj, name=name, output=output)
    except Exception as exc:
        ctx.p_err(describe_error(path, exc))
        return -1
    if output is None:
        ctx.print(text)
        return 0
    try:
        _write(output, text)
    except OSError as exc:
        ctx.p_err(f"{output}: {exc.strerror or exc}")
        return -1
    return 0


def main(argv: list[str]) -> int:
    """``bpfmap gen ARGS``."""
    ctx = Context(sys.stdout, sys.stderr, HELP.format(bin=BIN))

    def body() -> int:
        try:
            words, output = _take_output(list(argv))
        except ValueError as exc:
            ctx.p_err(str(exc))
            return -1
        words = ctx.parse_options(words)
        if ctx.json is not None:
            ctx.p_err("'gen' writes Python, not JSON: drop -j/-p")
            return -1
        if not words:
            ctx.do_help()
            return -1
        if is_prefix(words[0], "skeleton"):
            return do_skeleton(ctx, Args(words, 1), output)
        if is_prefix(words[0], "help"):
            return ctx.do_help()
        ctx.p_err(f"unknown verb '{words[0]}' (see '{BIN} gen help')")
        return -1

    return run_command(ctx, body)
