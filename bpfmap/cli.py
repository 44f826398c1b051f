"""The ``bpfmap`` command: ``bpfmap demo``, ``bpfmap bench``, ... (``bpfmap --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import __version__

Entry = Callable[[list[str]], int]

#: subcommand -> (one-line help, entry point taking the remaining argv)
COMMANDS: dict[str, tuple[str, Entry]] = {}


def command(name: str, help: str) -> Callable[[Entry], Entry]:
    def register(fn: Entry) -> Entry:
        COMMANDS[name] = (help, fn)
        return fn

    return register


@command("demo", "a short tour: the same operations on the emulated and the kernel map")
def demo(argv: list[str]) -> int:
    from . import demo as demo_mod

    return demo_mod.main(argv)


@command("bench", "benchmark both backends against each other and Python's shared memory")
def bench(argv: list[str]) -> int:
    from . import bench as bench_mod

    return bench_mod.main(argv)


@command("map", "bpftool's map verbs (show, create, dump, update, ...) on kernel and emulated maps")
def map_(argv: list[str]) -> int:
    from . import cli_map

    return cli_map.main(argv)


@command("conformance", "compare the emulation with the running kernel, scenario by scenario")
def conformance(argv: list[str]) -> int:
    from . import conformance as conformance_mod

    return conformance_mod.main(argv)


def _usage() -> str:
    lines = [
        "Usage: bpfmap [--version] COMMAND [ARGS...]",
        "",
        "Commands:",
    ]
    lines += [f"  {name:<12} {help}" for name, (help, _) in COMMANDS.items()]
    lines += ["", "Run 'bpfmap COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="bpfmap", usage=_usage(), add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("command", nargs="?")
    opts, rest = parser.parse_known_args(args[:1])
    rest += args[1:]
    if opts.version:
        print(f"bpfmap {__version__}")
        return 0
    if opts.help or opts.command is None:
        print(_usage())
        return 0
    if opts.command not in COMMANDS:
        print(f"Error: unknown command '{opts.command}'\n\n{_usage()}", file=sys.stderr)
        return 2
    return COMMANDS[opts.command][1](rest)


if __name__ == "__main__":
    sys.exit(main())
