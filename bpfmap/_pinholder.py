"""Holder of an emulated pinned map: run as a script, stdlib only.

bpffs keeps a pinned map alive until the pin is unlinked. For an emulated map
(a memfd, which cannot be given a name: linkat() says EXDEV) this process plays
bpffs: it holds the memfd, serves it over a unix socket bound at the pin path,
owner-only, and exits as soon as that path is removed or replaced.

    python -I _pinholder.py PATH FD    (FD inherited; one line on stdout: "ok" or "err ERRNO")
"""

import ctypes
import errno
import os
import select
import socket
import struct
import sys

IN_DELETE = 0x200
IN_MOVED_FROM = 0x40
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_CLOEXEC = 0o2000000


def _inotify_dir(path: str) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    ifd = libc.inotify_init1(IN_CLOEXEC)
    if ifd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    mask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF
    if libc.inotify_add_watch(ifd, os.path.dirname(path).encode() or b".", mask) < 0:
        raise OSError(ctypes.get_errno(), "inotify_add_watch")
    return int(ifd)


def _still_pinned(path: str, ident: tuple[int, int]) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == ident


def serve(path: str, fd: int) -> None:
    os.set_inheritable(fd, False)  # inherited for us alone: close-on-exec like all of ours
    # Access modes that a request may get, as BPF_OBJ_GET's file_flags.
    modes = {b"rw": fd, b"r": os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)}
    os.umask(0o177)  # the socket file is 0600, like a bpffs pin
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(path)
    except OSError as exc:
        code = errno.EEXIST if exc.errno == errno.EADDRINUSE else exc.errno
        print(f"err {code}", flush=True)
        return
    listener.listen(64)
    st = os.lstat(path)
    ident = (st.st_dev, st.st_ino)
    watch = _inotify_dir(path)

    ready_r, ready_w = os.pipe()
    if os.fork():
        # "ok" only once the child has listened again (below): from then on every
        # client sees the child's credentials, never those of this exiting process.
        os.close(ready_w)
        if os.read(ready_r, 1) == b"x":
            print("ok", flush=True)  # the pin exists now; our parent may return
        os._exit(0)
    # listen() again: Linux records SO_PEERCRED at listen(), and the process that
    # did it first is exiting; clients (holder_pid()) must see this one.
    listener.listen(64)
    os.close(ready_r)
    os.write(ready_w, b"x")
    os.close(ready_w)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    me = os.getuid()
    if not _still_pinned(path, ident):
        return  # removed before the watch existed: no event will ever tell us
    while True:
        ready, _, _ = select.select([listener.fileno(), watch], [], [])
        if watch in ready:
            os.read(watch, 65536)
            if not _still_pinned(path, ident):
                return  # unpinned: drop our descriptors; the map lives on in its users
        if listener.fileno() in ready:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                _, uid, _ = struct.unpack("3i", creds)
                if uid not in (me, 0):
                    continue
                try:
                    request = conn.recv(16)
                    if request in modes:
                        socket.send_fds(conn, [b"ok"], [modes[request]])
                    else:
                        conn.send(b"einval")
                except OSError:
                    pass


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
