"""The holder of a user's emulated pins: one process for many pins, stdlib only.

An emulated map is a memfd, which cannot be linked into a directory, so this
process plays bpffs for one user. A pin is a small regular file (any filesystem,
any path); per pin the holder keeps the memfd and a descriptor of the pin file,
keyed by the file's inode (st_dev, st_ino): renames and hard links change
nothing, as on bpffs (``pins.py``). A standby, a forked copy told of every pin
added or dropped, takes over when the holder is killed (``standby.py``). Clients
of the holder's user (and root) connect to SOCK_SEQPACKET sockets in the abstract
namespace; one message is one request (``holder.py``, the wire format in
``wire.py``):

    pin + [memfd, pin file]  register (pending until "done")  -> ok INSTANCE PID|full|err N
    done N                   the client linked the file (N == 0) or gave up (N: errno)
    get r|rw + [pin file opened r|rw: proof of access]  -> ok + [memfd] | err N
    ping                     -> ok PID INSTANCE PINS STANDBY_PID
    sweep                    drop the pins without a link now  -> ok PINS

It binds NAME (where clients pin) and NAME/INSTANCE (named in its pin files, where
clients open them), and exits when it holds no pin and no client is connected.

How it starts (``bpfmap._pin.start_holder``): ``python -I -c LAUNCH BPFMAP_DIR NAME``,
where LAUNCH puts the ``bpfmap`` directory first on ``sys.path`` and calls
``_pinholder.daemon.main(NAME)``: this package alone, as a top-level package, without
``bpfmap/__init__`` (no C core, no cffi in a long-lived daemon), and isolated from
the user's environment (``-I``). Its modules therefore import only the standard
library and each other, relatively. ``daemon.main`` prints one line on stdout:
``ok PID INSTANCE`` or ``err ERRNO``.
"""

#: What starts a holder: ``python -I -c LAUNCH BPFMAP_DIR NAME``.
LAUNCH = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from _pinholder.daemon import main; main(sys.argv[2])")
