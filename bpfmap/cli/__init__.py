"""The ``bpfmap`` command: ``bpfmap [OPTIONS] COMMAND [ARGS...]`` (``bpfmap --help``).

Each command is a module with ``main(argv) -> int``, named in :data:`COMMANDS` and
imported only when that command runs. Adding a command is adding its module and
one line to :data:`COMMANDS`.

Options come before the command or anywhere after it, as bpftool takes them:
``bpfmap -j map show`` is ``bpfmap map -j show``. The output options before the
command (``-j``, ``-p``, ``-d``, ``-n`` and their long forms) are handed to it;
a command that has no such option refuses it. What every command shares is
handled here, once: a reader that goes away (``bpfmap demo | head``: a quiet exit,
as the SIGPIPE that ends bpftool), Ctrl-C (exit 130) and an ``OSError`` no command
reported, or any other exception (one line on stderr, never a traceback).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

from .. import __version__


class CommandInfo(NamedTuple):
    module: str  # imported when the command runs; it has main(argv: list[str]) -> int
    summary: str


#: command -> where it lives and what it does (in the order --help lists them)
COMMANDS: dict[str, CommandInfo] = {
    "demo": CommandInfo(
        "bpfmap.demo", "a short tour: the same operations on the emulated and the kernel map"
    ),
    "bench": CommandInfo(
        "bpfmap.bench", "benchmark both backends against each other and Python's shared memory"
    ),
    "map": CommandInfo(
        "bpfmap.cli.map",
        "bpftool's map verbs (show, create, dump, update, ...) on kernel and emulated maps",
    ),
    "object": CommandInfo(
        "bpfmap.cli.object", "what a BPF object file holds: sections, variables, maps, programs"
    ),
    "gen": CommandInfo("bpfmap.cli.gen", "generate a typed Python skeleton of a BPF object"),
    "conformance": CommandInfo(
        "bpfmap.conformance", "compare the emulation with the running kernel, scenario by scenario"
    ),
}

#: Exit statuses shared by every command.
EXIT_USAGE = 255  # bpftool's usage(): -1
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for bpftool killed by it
EXIT_INTERRUPTED = 130  # 128 + SIGINT

#: The options taken before the command: long name -> short letter.
_LONG = {"json": "j", "pretty": "p", "debug": "d", "nomount": "n", "help": "h", "version": "V"}
_HANDED_ON = "jpdn"  # output options: the command's own


def usage() -> str:
    lines = [
        "Usage: bpfmap [OPTIONS] COMMAND [ARGS...]",
        "       bpfmap { -h | --help | -V | --version }",
        "",
        "Commands:",
    ]
    lines += [f"  {name:<12} {info.summary}" for name, info in COMMANDS.items()]
    lines += [
        "",
        "OPTIONS := { {-j|--json} [{-p|--pretty}] | {-d|--debug} | {-n|--nomount} }",
        "           (handed to the command; 'bpfmap map' takes them, as bpftool does)",
        "Run 'bpfmap COMMAND --help' for a command's options.",
    ]
    return "\n".join(lines)


class _UsageError(Exception):
    pass


def _letters(arg: str) -> str:
    """The short options ``arg`` stands for (getopt_long: a long name may be abbreviated)."""
    if not arg.startswith("--"):
        return arg[1:]
    name, eq, _ = arg[2:].partition("=")
    matches = [n for n in _LONG if n.startswith(name)] if name not in _LONG else [name]
    if len(matches) != 1 or eq:
        raise _UsageError(f"unrecognized option '{arg}'")
    return _LONG[matches[0]]


def split_command(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(the command, the options before it that it is handed, its own arguments).

    The command is ``"--help"`` or ``"--version"`` when one of those comes first, and
    ``""`` when there is none. Raises _UsageError for an option no command takes.
    """
    handed: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest = argv[i + 1 :]
            return (rest[0], handed, rest[1:]) if rest else ("", handed, [])
        if not arg.startswith("-") or arg == "-":
            return arg, handed, argv[i + 1 :]
        letters = _letters(arg)
        for letter in letters:
            if letter == "h":
                return "--help", handed, []
            if letter == "V":
                return "--version", handed, []
            if letter not in _HANDED_ON:
                raise _UsageError(f"unrecognized option '{arg}'")
        handed.append(arg)
    return "", handed, []


def _dispatch(argv: list[str]) -> int:
    try:
        name, handed, rest = split_command(argv)
    except _UsageError as exc:
        print(f"Error: {exc} (see 'bpfmap --help')", file=sys.stderr)
        return EXIT_USAGE
    if name in ("--help", "help"):
        print(usage())
        return 0
    if name == "--version":
        print(f"bpfmap {__version__}")
        return 0
    if not name:
        # bpftool prints its usage on stderr here; a script that lost its command
        # must not succeed silently, so the status says it failed.
        print(usage(), file=sys.stderr)
        return EXIT_USAGE
    info = COMMANDS.get(name)
    if info is None:
        print(
            f"Error: unknown command '{name}' (commands: {', '.join(COMMANDS)}; "
            "see 'bpfmap --help')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    module = importlib.import_module(info.module)
    code: int = module.main(handed + rest)
    return code


def _describe(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return f"{exc.filename}: {text}" if exc.filename is not None else text


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at exit
    except BrokenPipeError:
        # The reader went away (`bpfmap demo | head`): stop quietly, as CPython's
        # documentation advises (signal.SIGPIPE's note).
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:  # a failure the command did not report itself
        print(f"Error: {_describe(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, and a status that says it failed
        print(f"Error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
