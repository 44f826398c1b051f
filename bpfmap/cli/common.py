"""What every bpftool-style command shares (bpftool's main.c and common.c).

The output modes (plain, ``-j``, ``-p``), the options that select them (taken
anywhere on the line, as getopt permutes them), errors as bpftool reports them
(``Error: ...`` on stderr, or ``{"error": ...}`` in JSON mode), the argument
cursor and the small helpers the verbs use. A command makes one :class:`Context`
per run and hands it to its verbs.
"""

from __future__ import annotations

import argparse
import errno
import os
from typing import Any, Callable, NoReturn

from .json_writer import JsonWriter


class Exit(Exception):
    """Leave the command with bpftool's return value (exit status: value & 0xff)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class Output:
    """stdout, line-buffered as bpftool's (setlinebuf): stderr never overtakes a full line.

    Writes collect in a list and go out in one piece once 64 KiB have gathered, as a
    full stdio buffer does, newline or not: the cost of a write never depends on how
    much was written before it (compact JSON has no newline until its very end).
    """

    LIMIT = 65536

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._raw = getattr(stream, "buffer", None)
        self._parts: list[str] = []
        self._size = 0

    def write(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self.LIMIT:
            self._drain(len)

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._raw is not None:
            self._raw.write(encode(text))
        else:
            self._stream.write(text)

    def _drain(self, cut: Any) -> None:
        """Emit the text up to ``cut(text)`` and keep the rest (less than LIMIT)."""
        text = "".join(self._parts)
        at = cut(text)
        self._emit(text[:at])
        rest = text[at:]
        self._parts = [rest] if rest else []
        self._size = len(rest)
        self._stream.flush()

    def flush_lines(self) -> None:
        """Emit the complete lines (before something is written to stderr)."""
        self._drain(lambda text: text.rfind("\n") + 1)

    def flush(self) -> None:
        self._drain(len)


class Args:
    """argv after the verb; ``prev`` is the word before the next one (argv[-1])."""

    def __init__(self, words: list[str], pos: int) -> None:
        self.words = words
        self.pos = pos

    @property
    def argc(self) -> int:
        return len(self.words) - self.pos

    def peek(self, k: int = 0) -> str | None:
        i = self.pos + k
        return self.words[i] if i < len(self.words) else None

    @property
    def prev(self) -> str:
        return self.words[self.pos - 1] if self.pos else ""

    def next(self) -> str:
        word = self.words[self.pos]
        self.pos += 1
        return word


def is_prefix(pfx: str | None, word: str) -> bool:
    """bpftool's is_prefix(): ``pfx`` abbreviates ``word`` (the empty string abbreviates all)."""
    return pfx is not None and word.startswith(pfx)


def strerror(err: int) -> str:
    return os.strerror(err)


def errno_of(exc: OSError) -> int:
    return exc.errno if exc.errno is not None else errno.EIO


def fprint_hex(data: bytes, sep: str = " ") -> str:
    """bpftool's fprint_hex(): a newline every 16 bytes, two spaces every 8."""
    lines = []
    for i in range(0, len(data), 16):
        line = data[i : i + 16]
        lines.append("  ".join(line[j : j + 8].hex(sep) for j in range(0, len(line), 8)))
    return "\n".join(lines)


def get_fdinfo(fd: int, key: str) -> str | None:
    """bpftool's get_fdinfo(): the value of the first fdinfo line containing ``key``."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if key not in line:
                    continue
                tab = line.find("\t")
                if tab < 0 or tab + 1 >= len(line):
                    return None
                value = line[tab + 1 :]
                return value[:-1] if value.endswith("\n") else value
    except OSError:
        return None
    return None


#: bpftool's long options and the short option each stands for.
LONG_OPTIONS = {"json": "j", "pretty": "p", "help": "h", "debug": "d", "nomount": "n"}


class Context:
    """One run of a command: bpftool's global state (JSON writer, help, errors)."""

    def __init__(self, stdout: Any, stderr: Any, help_text: str) -> None:
        self.out = Output(stdout)
        self.err = stderr
        self.json: JsonWriter | None = None
        self.help_text = help_text

    # bpftool's p_err(), usage(), BAD_ARG(), REQ_ARGS(), NEXT_ARG()

    def stderr(self, text: str) -> None:
        self.out.flush_lines()
        raw = getattr(self.err, "buffer", None)
        if raw is not None:
            raw.write(encode(text))
        else:
            self.err.write(text)
        self.err.flush()

    def p_err(self, msg: str) -> None:
        if self.json is not None:
            self.json.start_object()
            self.json.name("error")
            self.json.string(msg)
            self.json.end_object()
        else:
            self.stderr(f"Error: {msg}\n")

    def print(self, text: str) -> None:
        self.out.write(text)

    def do_help(self, args: Args | None = None) -> int:
        if self.json is not None:
            self.json.null()
            return 0
        self.stderr(self.help_text)
        return 0

    def usage(self) -> NoReturn:
        self.do_help()
        raise Exit(-1)

    def bad_arg(self, args: Args) -> int:
        self.p_err(f"what is '{args.peek()}'?")
        return -1

    def req_args(self, args: Args, cnt: int) -> bool:
        if args.argc < cnt:
            self.p_err(f"'{args.prev}' needs at least {cnt} arguments, {args.argc} found")
            return False
        return True

    def next_arg(self, args: Args) -> str:
        """NEXT_ARG(): usage() when the words run out."""
        if args.argc < 1:
            self.usage()
        return args.next()

    def parse_options(self, argv: list[str]) -> list[str]:
        """getopt_long() as bpftool calls it: options anywhere (until ``--``), in order."""
        words: list[str] = []
        pretty = False
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                words.extend(argv[i:])
                break
            if not arg.startswith("-") or arg == "-":
                words.append(arg)
                continue
            if arg.startswith("--"):
                name, eq, _ = arg[2:].partition("=")
                matches = [k for k in LONG_OPTIONS if k.startswith(name)]
                if name in LONG_OPTIONS:
                    matches = [name]
                opts = LONG_OPTIONS[matches[0]] if len(matches) == 1 and not eq else "?"
            else:
                opts = arg[1:]
            for opt in opts:
                if opt == "h":
                    self.do_help()
                    raise Exit(0)
                if opt in ("j", "p"):
                    pretty = pretty or opt == "p"
                    if self.json is None:
                        self.json = JsonWriter(self.out, pretty)
                    self.json.pretty = pretty
                elif opt not in ("d", "n"):
                    # -d: no libbpf to debug; -n: bpfmap never mounts bpffs anyway.
                    self.p_err(f"unrecognized option '{arg}'")
                    if self.json is not None:
                        raise Exit(-1)
                    self.usage()
        return words

    def finish(self) -> None:
        if self.json is not None:
            self.json.destroy()
            self.json = None
        self.out.flush()


def run_command(ctx: Context, body: Callable[[], int]) -> int:
    """A command's body run as bpftool's main() runs a command: an :class:`Exit` ends it
    with its code, an OSError no verb reported becomes one error line (never a traceback),
    and the exit status is bpftool's (the return value & 0xff). A closed stdout
    (BrokenPipeError) and Ctrl-C are left to ``bpfmap.cli.main``, which handles them once
    for every command."""
    try:
        code = body()
    except Exit as done:
        code = done.code
    except BrokenPipeError:
        raise
    except OSError as exc:
        code = -errno_of(exc)
        ctx.p_err(strerror(-code))
    ctx.finish()
    return code & 0xFF


#: argparse's exit status for a usage error.
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block before them)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
