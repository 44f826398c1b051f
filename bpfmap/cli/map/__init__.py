"""``bpfmap map``: bpftool's map verbs, on kernel maps and on emulated maps.

The syntax, the output (plain, ``-j`` and ``-p``, byte for byte), the error
messages and the exit statuses are bpftool's (v7.1, ``tools/bpf/bpftool/map.c``,
``common.c``, ``json_writer.c``): a script of ``bpftool map ...`` commands runs
unchanged with ``bpfmap map ...``. What differs is where maps live: a ``FILE``
on bpffs is a kernel map (``bpf()``), any other path an emulated map pinned by
bpfmap, which needs no privileges. ``id`` and ``name`` find kernel maps only
(emulated maps have no global registry).

The verbs live by family: ``show`` (show, list), ``dump``, ``elements`` (update,
lookup, getnext, delete, pop and their queue aliases: one command and a table),
``lifecycle`` (create, pin, freeze, event_pipe); ``handles`` resolves MAP.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..common import Args, Context, is_prefix, run_command
from . import elements
from .dump import do_dump
from .lifecycle import do_create, do_event_pipe, do_freeze, do_pin
from .show import do_show

BIN = "bpfmap"

HELP = """\
Usage: {bin} {obj} {{ show | list }}   [MAP]
       {bin} {obj} create     FILE type TYPE key KEY_SIZE value VALUE_SIZE \\
                                  entries MAX_ENTRIES name NAME [flags FLAGS]
       {bin} {obj} dump       MAP
       {bin} {obj} update     MAP [key DATA] [value VALUE] [UPDATE_FLAGS]
       {bin} {obj} lookup     MAP [key DATA]
       {bin} {obj} getnext    MAP [key DATA]
       {bin} {obj} delete     MAP  key DATA
       {bin} {obj} pin        MAP  FILE
       {bin} {obj} peek       MAP
       {bin} {obj} push       MAP value VALUE
       {bin} {obj} pop        MAP
       {bin} {obj} enqueue    MAP value VALUE
       {bin} {obj} dequeue    MAP
       {bin} {obj} freeze     MAP
       {bin} {obj} help

       MAP := {{ id MAP_ID | pinned FILE | name MAP_NAME }}
       DATA := {{ [hex] BYTES }}
       VALUE := DATA
       UPDATE_FLAGS := {{ any | exist | noexist }}
       TYPE := array
       OPTIONS := {{ {{-j|--json}} [{{-p|--pretty}}] | {{-d|--debug}} | {{-n|--nomount}} }}

       A FILE on bpffs (/sys/fs/bpf) is a kernel map (bpf(), CAP_BPF); any other
       FILE is an emulated map, which needs no privileges. 'id' and 'name' find
       kernel maps only.
"""

Verb = Callable[[Context, Args], int]


def _help(ctx: Context, args: Args) -> int:
    return ctx.do_help(args)


#: bpftool's table, in its order: a verb may be abbreviated to any prefix.
VERBS: list[tuple[str, Verb]] = [
    ("show", do_show),
    ("list", do_show),
    ("help", _help),
    ("dump", do_dump),
    ("update", elements.element_verb(elements.UPDATE)),
    ("lookup", elements.element_verb(elements.LOOKUP)),
    ("getnext", elements.element_verb(elements.GETNEXT)),
    ("delete", elements.element_verb(elements.DELETE)),
    ("pin", do_pin),
    ("event_pipe", do_event_pipe),
    ("create", do_create),
    ("peek", elements.element_verb(elements.LOOKUP)),
    ("push", elements.element_verb(elements.UPDATE)),
    ("enqueue", elements.element_verb(elements.UPDATE)),
    ("pop", elements.element_verb(elements.POP)),
    ("dequeue", elements.element_verb(elements.POP)),
    ("freeze", do_freeze),
]


def run(ctx: Context, argv: list[str]) -> int:
    words = ctx.parse_options(argv)
    if not words:  # bpftool's cmd_select() runs its first verb: 'bpfmap map' lists maps
        return do_show(ctx, Args([], 0))
    verb = words[0]
    args = Args(words, 1)
    for name, fn in VERBS:
        if is_prefix(verb, name):
            return fn(ctx, args)
    ctx.do_help()
    return -1


def main(argv: list[str]) -> int:
    """``bpfmap map ARGS``: the exit status is bpftool's (its return value & 0xff).

    A closed stdout (BrokenPipeError) and Ctrl-C are left to ``bpfmap.cli.main``,
    which handles them once for every command.
    """
    ctx = Context(sys.stdout, sys.stderr, HELP.format(bin=BIN, obj="map"))
    return run_command(ctx, lambda: run(ctx, list(argv)))
