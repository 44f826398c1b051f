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

How it starts (``bpfmap._pin._start_holder``): ``python -I -B -c LAUNCH DIR NAME``,
where DIR is this package's directory and LAUNCH loads it from there as the top-level
package ``_pinholder`` and calls ``_pinholder.daemon.main(NAME)``: this package alone,
without ``bpfmap/__init__`` (no C core, no cffi in a long-lived daemon), isolated from
the user's environment (``-I``), writing no bytecode cache (``-B``). Nothing is added
to ``sys.path``, so no file beside the package can stand in for a standard library
module. Its modules therefore import only the standard library and each other,
relatively. ``daemon.main`` prints one line on stdout: ``ok PID INSTANCE`` or
``err ERRNO``.
"""

#: What starts a holder: ``python -I -B -c LAUNCH DIR NAME`` (DIR: this package's directory).
LAUNCH = (
    "import sys, importlib.util as u; "
    "s = u.spec_from_file_location('_pinholder', sys.argv[1] + '/__init__.py', "
    "submodule_search_locations=[sys.argv[1]]); "
    "m = u.module_from_spec(s); sys.modules['_pinholder'] = m; s.loader.exec_module(m); "
    "from _pinholder.daemon import main; main(sys.argv[2])"
)
#: What a holder's command line contains (``/proc/PID/cmdline``).
MARK = b"_pinholder.daemon"
