"""Starting a holder: a daemon that reports one line, then serves until idle."""

from __future__ import annotations

import errno
import os
import sys

from .holder import Holder


def main(name: str) -> None:
    """Serve the pins at ``name``; prints ``ok PID INSTANCE`` or ``err ERRNO`` first."""
    ready_r, ready_w = os.pipe()
    if os.fork():
        # The first process reports for the daemon (its child) and exits, so the
        # daemon is nobody's child but init's (or a subreaper's).
        os.close(ready_w)
        line = os.read(ready_r, 200) or b"err %d\n" % errno.EIO
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        os._exit(0)
    os.close(ready_r)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    os.close(devnull)
    try:
        holder = Holder(name)  # listen() here: clients see this process in SO_PEERCRED
    except OSError as exc:
        code = errno.EEXIST if exc.errno == errno.EADDRINUSE else (exc.errno or errno.EIO)
        os.write(ready_w, b"err %d\n" % code)
        os._exit(0)
    os.write(ready_w, f"ok {holder.pid} {holder.instance}\n".encode())
    os.close(ready_w)
    holder.run()
