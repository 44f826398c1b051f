"""Emulated pins behave as bpffs pins: paths, renames, links, lifetime, thousands of them.

Path cases run the same steps on bpffs (kernel backend, BPF_OBJ_PIN/GET) and in
a folder elsewhere (emulated backend) and compare every errno. Lifetime cases
(the last link removed, the holder killed, a client that never speaks) use a
holder of their own (BPFMAP_PIN_HOLDER), so they never disturb other pins.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import errno_of, new_map, require_kernel

import bpfmap
from bpfmap import ArrayMap
from bpfmap import _pin as pin_mod

BPFFS = "/sys/fs/bpf"


@pytest.fixture
def own_holder(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[str]:
    """Pins made from here go to a holder of this test's own: its base name.

    Afterwards the test's folder is emptied (its pins unpinned) and our connections
    closed, so that holder (and its standby) exit instead of outliving the tests.
    """
    tag = f"pins-test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("BPFMAP_PIN_HOLDER", tag)
    yield f"bpfmap-pins/{os.getuid()}/{tag}/0"
    for entry in os.listdir(tmp_path):
        path = tmp_path / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # by descriptors: paths longer than PATH_MAX too
        else:
            path.unlink()
    pin_mod._forget_connections()


def holds_map(pid: int, map_id: int) -> bool:
    """Whether process ``pid`` has the emulated map ``map_id`` (its memfd's inode) open."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if (os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:bpfmap")
                    and os.stat(f"/proc/{pid}/fd/{fd}").st_ino == map_id):
                return True
        except OSError:
            continue
    return False


def wait_exit(pid: int) -> None:
    """Block until ``pid`` (not our child) has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([pidfd], [], [])
    finally:
        os.close(pidfd)


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", fn())
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, exc.errno)


# ------------------------------------------------------------ paths, as bpffs


def _path_steps(backend: str, base: str) -> list[tuple[str, Any]]:
    """Pin, rename, link, symlink, odd and long paths under ``base``: what each step gave."""
    out: list[tuple[str, Any]] = []
    m = ArrayMap(8, 4, backend=backend)
    m.update(1, b"pinned!!")
    here = os.getcwd()
    os.chdir(base)
    try:
        def same(p: str) -> Callable[[], Any]:
            return lambda: ArrayMap.open_pinned(p).lookup(1)

        def step(name: str, fn: Callable[[], Any]) -> None:
            out.append((name, outcome(fn)))

        step("pin ''", lambda: m.pin(""))
        step("open ''", lambda: ArrayMap.open_pinned(""))
        step("pin a", lambda: m.pin("a"))
        step("pin a again", lambda: m.pin("a"))
        step("open a", same("a"))
        step("open a readonly", lambda: ArrayMap.open_pinned("a", readonly=True).access)
        os.rename("a", "b")
        step("open b (renamed)", same("b"))
        step("open a (renamed away)", same("a"))
        os.link("b", "c")
        os.unlink("b")
        step("open c (hard link, original removed)", same("c"))
        os.mkdir("dir")
        os.rename("c", "dir/c")
        os.rename("dir", "folder")
        step("open folder/c (folder renamed)", same("folder/c"))
        os.symlink("folder/c", "sym")
        step("open sym (symlink)", same("sym"))
        step("pin sym (a symlink is there)", lambda: m.pin("sym"))
        os.symlink("nowhere", "dangling")
        step("pin dangling", lambda: m.pin("dangling"))
        step("open dangling", same("dangling"))
        os.symlink("loop", "loop")
        step("open loop", same("loop"))
        step("pin loop/x", lambda: m.pin("loop/x"))
        os.symlink("folder", "folderlink")
        step("pin folderlink/d (through a symlinked folder)", lambda: m.pin("folderlink/d"))
        step("open folder/d", same("folder/d"))
        step("pin new/ (trailing slash)", lambda: m.pin("new/"))
        step("pin folder/c/ (exists, trailing slash)", lambda: m.pin("folder/c/"))
        step("open folder/c/", same("folder/c/"))
        step("pin folder/c/x (under a pin)", lambda: m.pin("folder/c/x"))
        step("pin nodir/x", lambda: m.pin("nodir/x"))
        step("pin folder (a folder)", lambda: m.pin("folder"))
        step("open folder", same("folder"))
        step("pin .", lambda: m.pin("."))
        step("pin folder/..", lambda: m.pin("folder/.."))
        step("pin 255-byte name", lambda: m.pin("n" * 255))
        step("open 255-byte name", same("n" * 255))
        step("pin 256-byte name", lambda: m.pin("n" * 256))
        deep = "/".join(["d" * 200] * 19)
        os.makedirs(deep)
        for total in (4094, 4095, 4096, 5000):
            tail = "f" * (total - len(deep) - 1)
            if len(tail) > 255:  # keep every name within NAME_MAX: the total decides
                tail = "g" * 100 + "/" + "f" * (len(tail) - 101)
                os.makedirs(os.path.join(deep, "g" * 100), exist_ok=True)
            rel = f"{deep}/{tail}"
            step(f"pin {len(rel)}-byte path", lambda r=rel: m.pin(r))
            step(f"open {len(rel)}-byte path", same(rel))
        os.chdir(deep)
        step("pin short path from a deep folder", lambda: m.pin("short"))
        step("open short path from a deep folder", same("short"))
        step("open absolute long path", same(os.path.join(os.getcwd(), "short")))
        os.chdir(base)
        os.unlink("folder/c")
        step("open folder/c (unlinked)", same("folder/c"))
        step("open sym (target unlinked)", same("sym"))
    finally:
        os.chdir(here)
    return out


@pytest.fixture
def bpffs_dir() -> Iterator[str]:
    require_kernel()
    path = f"{BPFFS}/bpfmap_pins_{os.getpid()}"
    os.mkdir(path)
    yield path
    shutil.rmtree(path)


def test_paths_renames_links_and_symlinks_match_bpffs(
    bpffs_dir: str, tmp_path: Any, own_holder: str
) -> None:
    kernel = _path_steps("kernel", bpffs_dir)
    emulated = _path_steps("emulated", str(tmp_path))
    assert emulated == kernel
    by_name = dict(kernel)
    assert by_name["pin ''"] == "ENOENT"
    assert by_name["open c (hard link, original removed)"] == ("ok", b"pinned!!")
    assert by_name["open 4095-byte path"] == ("ok", b"pinned!!")
    assert by_name["open 5000-byte path"] == "ENAMETOOLONG"


# ------------------------------------------------------------ lifetime


def test_the_last_link_releases_the_map(tmp_path: Any, own_holder: str) -> None:
    m = ArrayMap(8, 4)
    m.update(0, b"lifetime")
    map_id = m.id
    m.pin(str(tmp_path / "first"))
    holder = pin_mod.holder_pid(str(tmp_path / "first"))
    name = pin_mod.holder_name(str(tmp_path / "first"))
    m.close()
    os.link(tmp_path / "first", tmp_path / "second")
    os.unlink(tmp_path / "first")
    assert pin_mod.sweep(name) == 1
    assert holds_map(holder, map_id)
    assert ArrayMap.open_pinned(str(tmp_path / "second")).lookup(0) == b"lifetime"
    os.rename(tmp_path / "second", tmp_path / "third")
    assert pin_mod.sweep(name) == 1
    os.unlink(tmp_path / "third")
    assert pin_mod.sweep(name) == 0
    assert not holds_map(holder, map_id)


def _ping(name: str) -> list[bytes]:
    return pin_mod._request(name, b"ping", [], "ping", os.getuid())[0].split()


def test_a_killed_holder_is_replaced_by_its_standby(tmp_path: Any, own_holder: str) -> None:
    """SIGKILL the holder, again and again: its standby takes over, no pin is lost."""
    m = ArrayMap(8, 4)
    m.update(0, b"survives")
    m.pin(str(tmp_path / "p"))
    name = pin_mod.holder_name(str(tmp_path / "p"))
    seen = set()
    for round_ in range(3):
        holder = pin_mod.holder_pid(str(tmp_path / "p"))
        seen.add(holder)
        os.kill(holder, signal.SIGKILL)
        wait_exit(holder)
        # Served at once by the standby (it listens on the same sockets): the same map.
        got = ArrayMap.open_pinned(str(tmp_path / "p"))
        assert (got.id, got.lookup(0)) == (m.id, b"survives")
        assert pin_mod.holder_pid(str(tmp_path / "p")) not in seen
        m.pin(str(tmp_path / f"new{round_}"))  # new pins still work, with the same holder
        assert pin_mod.holder_name(str(tmp_path / f"new{round_}")) == name
    m.close()
    os.unlink(tmp_path / "p")
    assert pin_mod.sweep(name) == 3


def test_killing_holder_and_standby_leaves_stale_pins_that_say_so(
    tmp_path: Any, own_holder: str
) -> None:
    m = ArrayMap(8, 4)
    m.pin(str(tmp_path / "p"))
    words = _ping(pin_mod.holder_name(str(tmp_path / "p")))
    holder, standby = int(words[1]), int(words[4])
    assert standby > 0
    os.kill(standby, signal.SIGKILL)  # the standby first: no one left to take over
    os.kill(holder, signal.SIGKILL)
    wait_exit(holder)
    wait_exit(standby)
    with pytest.raises(FileNotFoundError, match="stale pin") as info:
        ArrayMap.open_pinned(str(tmp_path / "p"))
    assert info.value.errno == errno.ENOENT
    with pytest.raises(FileExistsError):
        m.pin(str(tmp_path / "p"))  # the stale file is there until removed, as any file
    m.pin(str(tmp_path / "q"))  # a new holder takes new pins
    assert ArrayMap.open_pinned(str(tmp_path / "q")).id == m.id
    assert pin_mod.holder_pid(str(tmp_path / "q")) != holder


def _silent_clients(name: str) -> list[socket.socket]:
    """Clients that connect and send nothing, and one that sends and never reads."""
    socks = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect("\0" + name)
        socks.append(s)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("\0" + name)
    s.setblocking(False)
    try:
        while True:
            s.send(b"ping")  # answers pile up unread until the holder drops us
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass
    socks.append(s)
    return socks


def _open_in_child(path: str) -> bytes:
    code = textwrap.dedent(f"""
        from bpfmap import ArrayMap
        print(ArrayMap.open_pinned({path!r}).lookup(0).decode())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_silent_and_slow_clients_block_no_one(tmp_path: Any, own_holder: str) -> None:
    m = ArrayMap(8, 4)
    m.update(0, b"servedok")
    path = str(tmp_path / "p")
    m.pin(path)
    instance = pin_mod.holder_name(path)
    holder = pin_mod.holder_pid(path)
    socks = _silent_clients(own_holder) + _silent_clients(instance)
    try:
        # Another process (root's, here) opens while they hang on: served at once.
        assert _open_in_child(path) == b"servedok"
        m.pin(str(tmp_path / "q"))
        os.unlink(tmp_path / "q")
        assert pin_mod.sweep(instance) == 1  # an unpin is noticed meanwhile
        other = ArrayMap(8, 4)
        other.pin(str(tmp_path / "r"))
        other_id = other.id
        other.close()
        os.unlink(tmp_path / "r")
        assert pin_mod.sweep(instance) == 1
        assert not holds_map(holder, other_id)
    finally:
        for s in socks:
            s.close()


def _fake_holder(path: str, behaviour: str) -> socket.socket:
    """A same-user server named in a pin file at ``path``, that misbehaves."""
    name = f"bpfmap-pins/{os.getuid()}/fake/{os.getpid()}-{behaviour}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind("\0" + name)
    listener.listen(1)
    with open(path, "wb") as f:
        f.write(pin_mod.MAGIC + b"holder " + name.encode() + b"\n")
    os.chmod(path, 0o600)
    return listener


@pytest.mark.parametrize("behaviour", ["close", "garbage", "two-fds", "no-fd", "silent"])
def test_a_misbehaving_holder_gives_a_clean_oserror(
    tmp_path: Any, behaviour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "pin")
    listener = _fake_holder(path, behaviour)
    monkeypatch.setattr(pin_mod, "TIMEOUT", 0.2)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fake holder: one connection, one misbehaviour
        try:
            os.close(w)
            conn, _ = listener.accept()
            conn.recv(64)
            if behaviour == "garbage":
                conn.send(b"\xff" * 40)
            elif behaviour == "two-fds":
                socket.send_fds(conn, [b"ok"], [0, 1])
            elif behaviour == "no-fd":
                conn.send(b"ok")
            elif behaviour == "silent":
                os.read(r, 1)  # until the test is done
            conn.close()
        finally:
            os._exit(0)
    os.close(r)
    pin_mod._forget_connections()
    before = set(os.listdir("/proc/self/fd"))
    try:
        with pytest.raises(OSError) as info:
            ArrayMap.open_pinned(path)
        assert info.value.errno in (errno.ENOENT, errno.EPROTO, errno.ETIMEDOUT), info.value
        assert str(path) in str(info.value)
    finally:
        os.close(w)
        os.waitpid(pid, 0)
        listener.close()
    assert set(os.listdir("/proc/self/fd")) <= before  # nothing leaked


def _emfile_child(path: str, conn: Any) -> None:
    fds = []
    try:
        while True:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        assert exc.errno == errno.EMFILE
    os.close(fds.pop())  # exactly one descriptor free
    try:
        ArrayMap.open_pinned(path)
        conn.send("opened")
    except OSError as exc:
        conn.send(errno.errorcode[exc.errno or 0])
    for fd in fds[-8:]:
        os.close(fd)  # a few free now: it works
    conn.send(ArrayMap.open_pinned(path).lookup(0))


def test_open_pinned_without_free_descriptors_is_emfile(tmp_path: Any, own_holder: str) -> None:
    m = ArrayMap(8, 4)
    m.update(0, b"emfile!!")
    path = str(tmp_path / "p")
    m.pin(path)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_emfile_child, args=(path, child))
    proc.start()
    child.close()
    assert parent.recv() == "EMFILE"
    assert parent.recv() == b"emfile!!"
    proc.join()
    assert proc.exitcode == 0


def test_pinning_an_unlinked_or_bpffs_path(tmp_path: Any, own_holder: str) -> None:
    m = ArrayMap(8, 4)
    assert outcome(lambda: m.pin(f"{BPFFS}/bpfmap_emulated_{os.getpid()}")) == "EINVAL"
    assert outcome(lambda: m.pin(str(tmp_path / "missing" / "p"))) == "ENOENT"


# ------------------------------------------------------------ ten thousand


PINS = int(os.environ.get("BPFMAP_PINS", "10000"))


def run_as_nobody(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a forked child running as user nobody; its result (or its failure)."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()

    def run() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        child.send(fn(*args))

    proc = ctx.Process(target=run)
    proc.start()
    child.close()  # a child that dies gives EOFError, not a wait forever
    try:
        return parent.recv()
    except EOFError:
        proc.join()
        pytest.fail(f"the child failed (exit status {proc.exitcode}): see its stderr")
    finally:
        proc.join()


def _many_pins(folder: str, count: int) -> dict[str, Any]:
    """Pin ``count`` maps, move them about, open them, unpin them."""
    report: dict[str, Any] = {}
    t0 = time.perf_counter()
    spent = 0.0
    for i in range(count):
        m = ArrayMap(8, 1)
        m.update(0, i.to_bytes(8, "little"))
        t = time.perf_counter()
        m.pin(f"{folder}/pins/p{i}")
        spent += time.perf_counter() - t
        m.close()
    report["pin_seconds"] = spent
    report["total_seconds"] = time.perf_counter() - t0
    step = max(1, count // 50)
    names = {pin_mod.holder_name(f"{folder}/pins/p{i}") for i in range(0, count, step)}
    names.add(pin_mod.holder_name(f"{folder}/pins/p{count - 1}"))
    report["holders"] = sorted(names)
    pids = {pin_mod._request(n, b"ping", [], "ping", os.getuid())[0].split()[1] for n in names}
    rss = 0
    for pid in pids:
        with open(f"/proc/{int(pid)}/status") as f:
            rss += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    report["holder_rss_kib"] = rss
    report["held"] = sum(pin_mod.sweep(n) for n in names)
    # Renamed folder, hard links for half with the originals removed, a symlink.
    os.rename(f"{folder}/pins", f"{folder}/moved")
    for i in range(0, count, 2):
        os.link(f"{folder}/moved/p{i}", f"{folder}/linked{i}")
        os.unlink(f"{folder}/moved/p{i}")
    report["held_after_moves"] = sum(pin_mod.sweep(n) for n in names)
    wrong = 0
    t = time.perf_counter()
    for i in range(count):
        path = f"{folder}/linked{i}" if i % 2 == 0 else f"{folder}/moved/p{i}"
        m = ArrayMap.open_pinned(path)
        if m.lookup(0) != i.to_bytes(8, "little"):
            wrong += 1
        m.close()
    report["open_seconds"] = time.perf_counter() - t
    report["wrong"] = wrong
    for i in range(count):
        os.unlink(f"{folder}/linked{i}" if i % 2 == 0 else f"{folder}/moved/p{i}")
    report["held_after_unlink"] = sum(pin_mod.sweep(n) for n in names)
    return report


def world_python() -> str:
    """An interpreter every user may run (this one may live in root's home)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        path = os.path.realpath(candidate)
        parts = [path] + [p for p in (os.path.dirname(path),) for p in _parents(p)]
        if os.path.exists(path) and all(os.stat(p).st_mode & 0o001 for p in parts):
            return candidate
    pytest.fail("no Python that user nobody can run, for its pin holder")


def _parents(path: str) -> list[str]:
    out = []
    while path not in ("/", ""):
        out.append(path)
        path = os.path.dirname(path)
    return out


def test_ten_thousand_pins_for_one_user(own_holder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One unprivileged user holds PINS pins (default 10,000): all survive moves, then go."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to user nobody")
    monkeypatch.setattr(pin_mod, "PYTHON", world_python())
    folder = tempfile.mkdtemp(prefix="bpfmap-many-pins-")  # pytest's tmp_path is root's only
    try:
        os.mkdir(f"{folder}/pins")
        os.chown(folder, 65534, 65534)
        os.chown(f"{folder}/pins", 65534, 65534)
        report = run_as_nobody(_many_pins, folder, PINS)
        left = os.listdir(folder), os.listdir(f"{folder}/moved")
    finally:
        shutil.rmtree(folder)
    assert report["held"] == PINS
    assert report["held_after_moves"] == PINS
    assert report["wrong"] == 0
    assert report["held_after_unlink"] == 0
    assert left == (["moved"], [])
    print(
        f"{PINS} pins as nobody in {len(report['holders'])} holder(s): "
        f"pin {report['pin_seconds'] / PINS * 1e6:.0f} us each "
        f"(create + pin + close {report['total_seconds'] / PINS * 1e6:.0f} us), "
        f"open {report['open_seconds'] / PINS * 1e6:.0f} us each, "
        f"holders' RSS {report['holder_rss_kib']} KiB "
        f"({report['holder_rss_kib'] * 1024 / PINS:.0f} bytes per pin, interpreter included)"
    )


def test_holder_limits_its_descriptors_and_starts_another(tmp_path: Any, own_holder: str) -> None:
    """A holder that is full answers so; the next pin goes to a second holder."""
    code = textwrap.dedent(f"""
        import os, resource
        from bpfmap import ArrayMap
        from bpfmap import _pin
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))  # inherited by the holder
        names = set()
        for i in range(80):
            m = ArrayMap(8, 1)
            m.update(0, i.to_bytes(8, "little"))
            m.pin(f"{tmp_path}/p{{i}}")
            m.close()
            names.add(_pin.holder_name(f"{tmp_path}/p{{i}}").rsplit("/", 2)[1])  # the slot
        ok = all(ArrayMap.open_pinned(f"{tmp_path}/p{{i}}").lookup(0) == i.to_bytes(8, "little")
                 for i in range(80))
        for i in range(80):
            os.unlink(f"{tmp_path}/p{{i}}")
        print(len(names), ok)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    holders, ok = out.stdout.split()
    assert ok == "True"
    assert int(holders) >= 2  # at most ~33 pins in 100 descriptors: then the next slot


def test_threads_pin_and_open_at_once(tmp_path: Any, own_holder: str) -> None:
    """Threads of one process share its connections to the holder: no pin is lost or mixed."""
    import threading

    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                m = ArrayMap(8, 1)
                m.update(0, (t * 1000 + i).to_bytes(8, "little"))
                m.pin(str(tmp_path / f"t{t}-{i}"))
                m.close()
                got = ArrayMap.open_pinned(str(tmp_path / f"t{t}-{i}"), readonly=True).lookup(0)
                assert got == (t * 1000 + i).to_bytes(8, "little")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert pin_mod.sweep(own_holder) == 240
    for f in os.listdir(tmp_path):
        os.unlink(tmp_path / f)
    assert pin_mod.sweep(own_holder) == 0


def test_another_network_namespace_is_told_why(tmp_path: Any, own_holder: str) -> None:
    """The holder's abstract socket belongs to its network namespace: the error says so."""
    if os.getuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a network namespace")
    path = str(tmp_path / "p")
    ArrayMap(8, 4).pin(path)
    code = f"from bpfmap import ArrayMap\ntry: ArrayMap.open_pinned({path!r})\n" \
           "except OSError as e: print(e.errno, e)"
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{errno.ENOENT} ") and "network namespace" in out.stdout


def test_a_squatted_holder_name_is_passed_over(tmp_path: Any, own_holder: str) -> None:
    """Another user binds the name of our first holder: pins go to the next, never to it."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another user")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgid(65533)
            os.setuid(65533)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.bind("\0" + own_holder)
            s.listen(8)
            os.write(w, b"x")
            while True:
                signal.pause()  # until killed
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x"
        m = ArrayMap(8, 4)
        m.update(0, b"not them")
        m.pin(str(tmp_path / "p"))
        assert pin_mod.holder_name(str(tmp_path / "p")).startswith(own_holder[:-1] + "1/")
        assert ArrayMap.open_pinned(str(tmp_path / "p")).lookup(0) == b"not them"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)


def test_errors_say_what_is_wrong(tmp_path: Any, own_holder: str) -> None:
    m = ArrayMap(8, 4)
    m.pin(str(tmp_path / "p"))
    shutil.copy(tmp_path / "p", tmp_path / "copy")  # the same text, another inode
    for path, words in (("/etc/passwd", "not a pinned map"), (str(tmp_path), "not a pinned map"),
                        (str(tmp_path / "copy"), "a copy of one")):
        with pytest.raises(PermissionError, match=words):
            ArrayMap.open_pinned(path)
    with pytest.raises(FileNotFoundError):
        ArrayMap.open_pinned(str(tmp_path / "missing"))


def _pin_many(folder: str, count: int, progress: int, conn: Any) -> None:
    ok = []
    for i in range(count):
        m = ArrayMap(8, 1)
        m.update(0, i.to_bytes(8, "little"))
        try:
            m.pin(f"{folder}/p{i}")
            ok.append(i)
        except OSError as exc:
            assert exc.errno in (errno.ENOENT, errno.ECONNRESET, errno.EPIPE), exc
        m.close()
        os.write(progress, b".")
    conn.send(ok)


def test_holders_killed_while_pinning_lose_no_pin(tmp_path: Any, own_holder: str) -> None:
    """The primary SIGKILLed again and again under a pinning process: each pin() that
    returned holds its map, each that raised left no file."""
    m = ArrayMap(8, 1)
    m.pin(str(tmp_path / "first"))  # the holder exists before the pinner starts
    name = pin_mod.holder_name(str(tmp_path / "first"))
    r, w = os.pipe()
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_pin_many, args=(str(tmp_path), 400, w, child))
    proc.start()
    os.close(w)
    child.close()
    for _ in range(4):
        assert len(os.read(r, 60)) > 0  # some pins made since the last kill
        holder = int(_ping(name)[1])
        os.kill(holder, signal.SIGKILL)
        wait_exit(holder)
    ok = parent.recv()
    proc.join()
    os.close(r)
    files = sorted(f for f in os.listdir(tmp_path) if f != "first")
    assert files == sorted(f"p{i}" for i in ok)
    for i in ok:
        assert ArrayMap.open_pinned(str(tmp_path / f"p{i}")).lookup(0) == i.to_bytes(8, "little")
    # At least those (a pin being made at a kill is judged a second later: linked or not).
    assert pin_mod.sweep(name) >= len(ok) + 1
    print(f"4 holder kills under 400 pins: {len(ok)} made, {400 - len(ok)} raised, none lost")


# ------------------------- on both backends: lifetime, read-only handles, errors


@pytest.fixture
def pin_path(backend: str, tmp_path: Any) -> Iterator[str]:
    if backend == "kernel":
        path = f"/sys/fs/bpf/bpfmap_test_{os.getpid()}"
    else:
        path = str(tmp_path / "pinned")
    yield path
    if os.path.lexists(path):
        os.unlink(path)


def _create_and_pin(backend: str, path: str) -> None:
    m = new_map(backend)
    m.update(7, b"survives")
    m.pin(path)


def test_pin_outlives_its_creator(backend: str, pin_path: str) -> None:
    proc = mp.get_context("spawn").Process(target=_create_and_pin, args=(backend, pin_path))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert os.stat(pin_path).st_mode & 0o777 == 0o600
    m = ArrayMap.open_pinned(pin_path)
    assert m.backend == backend
    assert m.lookup(7) == b"survives"
    assert errno_of(lambda: m.pin(pin_path)) == errno.EEXIST
    holder = bpfmap._pin.holder_name(pin_path) if backend == "emulated" else None
    os.unlink(pin_path)
    if holder is not None:
        bpfmap._pin.sweep(holder)  # the holder lets go once the last link is gone
        assert not holds_map(bpfmap._pin.holder_pid_of(holder), m.id)
    assert errno_of(lambda: ArrayMap.open_pinned(pin_path)) == errno.ENOENT
    assert m.lookup(7) == b"survives"  # open handles keep the map


def test_readonly_handle_from_a_pin(backend: str, pin_path: str) -> None:
    """P08-P13: a read-only handle reads, and refuses update, freeze and any mmap."""
    m = new_map(backend)
    m.update(1, b"readonly")
    m.pin(pin_path)
    ro = ArrayMap.open_pinned(pin_path, readonly=True)
    assert ro.access == "r"
    assert ro.lookup(1) == b"readonly"
    assert errno_of(lambda: ro.update(1, bytes(8))) == errno.EPERM
    assert errno_of(ro.freeze) == errno.EPERM
    assert errno_of(lambda: ro.mmap()) == errno.EACCES
    assert errno_of(lambda: ro.mmap(writable=False)) == errno.EINVAL
    # Re-opening the same pin read-write is allowed, as on bpffs: modes are per handle.
    assert ArrayMap.open_pinned(pin_path).access == "rw"


def test_pin_errors(backend: str, tmp_path: Any) -> None:
    m = new_map(backend)
    other = str(tmp_path / "regular")
    open(other, "w").close()
    assert errno_of(lambda: ArrayMap.open_pinned(other)) == errno.EACCES
    assert errno_of(lambda: ArrayMap.open_pinned(str(tmp_path / "missing"))) == errno.ENOENT
    if backend == "kernel":
        outside = str(tmp_path / "outside")
        assert errno_of(lambda: m.pin(outside)) == errno.EPERM  # P04
        # the kernel's EPERM, and why: the folder is not on bpffs
        with pytest.raises(PermissionError) as info:
            m.pin(outside)
        assert str(info.value) == (
            f"[Errno 1] pin {outside}: Operation not permitted (a kernel map is pinned on a "
            f"bpf filesystem (mount -t bpf bpf /sys/fs/bpf); {outside} is not on one)")
        assert not os.path.exists(outside)
    else:
        with pytest.raises(OSError) as raised:
            m.pin("/sys/fs/bpf/bpfmap_emulated")
        assert raised.value.errno == errno.EINVAL
        assert "an emulated map cannot live on bpffs" in str(raised.value)


def test_the_holder_imports_nothing_from_beside_its_package(tmp_path: Any) -> None:
    """The launch adds nothing to sys.path: a file named after a standard library
    module, next to the holder's package or inside it, is never imported."""
    from bpfmap import _pinholder

    pkg = tmp_path / "_pinholder"
    shutil.copytree(os.path.dirname(_pinholder.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for where in (tmp_path, pkg):
        for name in ("socket", "types", "struct", "select"):
            (where / f"{name}.py").write_text("raise SystemExit('shadowed')\n")
    name = f"bpfmap-test-shadow-{os.getpid()}-{time.monotonic_ns()}"
    out = subprocess.run([sys.executable, "-I", "-B", "-c", _pinholder.LAUNCH, str(pkg), name],
                         capture_output=True, timeout=60, check=True).stdout.split()
    assert out[:1] == [b"ok"], out
    pid = int(out[1])
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert _pinholder.MARK in f.read()  # how a stale pin's message recognises it
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect("\0" + name)
        s.send(b"ping")
        assert s.recv(200).split()[:2] == [b"ok", str(pid).encode()]
        s.close()
    finally:
        os.kill(pid, signal.SIGKILL)
    assert not list(pkg.glob("__pycache__"))  # -B: no bytecode written beside it


def test_a_standby_whose_primary_dies_mid_frame_takes_over() -> None:
    """The standby's follow loop returns (takes over) at an end of file in the middle of
    a frame, closing what came with it, instead of waiting for the rest forever."""
    from bpfmap._pinholder.pins import PinTable
    from bpfmap._pinholder.standby import follow
    from bpfmap._pinholder.wire import MIRROR

    primary, standby = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    told: list[bytes] = []
    table = PinTable(lambda what, key, fds: told.append(what))
    r, w = os.pipe()
    socket.send_fds(primary, [MIRROR.pack(b"a", 1, 2)], [r, w])  # a whole frame: a pin
    primary.send(MIRROR.pack(b"d", 1, 2)[:5])  # then half of one, and the primary is gone
    primary.close()
    os.close(r)
    os.close(w)
    done = threading.Event()
    t = threading.Thread(target=lambda: (follow(standby, table), done.set()), daemon=True)
    t.start()
    assert done.wait(60), "the standby waits forever for the rest of a frame"
    assert (1, 2) in table and table[(1, 2)].orphan  # the pin it was told of, judged later
    table.drop((1, 2))  # closes the two descriptors it received
    assert told == [b"d"]
