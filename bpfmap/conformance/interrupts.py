"""Ctrl-C without leftovers: SIGINT waits for the step in flight while a session holds anything.

A ``KeyboardInterrupt`` raised at an arbitrary instruction could land between
``fork()`` and the note of the child's pid, or between ``mkdir()`` of a pin
folder and the note of its path: the cleanup would then miss an orphaned child
or an empty folder in bpffs. So, while :func:`deferred` is active, SIGINT only
marks the run as interrupted; the runner raises ``KeyboardInterrupt`` at the
next step boundary (:func:`checkpoint`) or when the outermost deferred block
ends, once each session has closed cleanly. Outside it, SIGINT raises at once.

Only ``bpfmap conformance`` installs the handler (:func:`handling_sigint`): a
program that runs scenarios itself keeps Python's own SIGINT behaviour.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_depth = 0  # how many deferred blocks are active
_pending = False  # SIGINT came while deferred


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


def checkpoint() -> None:
    """Raise the ``KeyboardInterrupt`` a deferred SIGINT stands for (between two steps)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """While sessions are made, used and closed: SIGINT waits for a checkpoint."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth == 0:
        checkpoint()  # a SIGINT during the cleanup itself


@contextmanager
def handling_sigint() -> Iterator[None]:
    """Install the deferring SIGINT handler for the duration of a command."""
    global _pending
    _pending = False
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False
