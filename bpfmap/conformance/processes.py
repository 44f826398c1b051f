"""Forked children: the pipes to them, reaping them, and the steps that fork, feed and end them.

Both sides of a scenario live in one process. A forked child belongs to one
side: it lets go of everything the other sessions hold (their mappings would
otherwise keep the other backend's map busy) and of its siblings' pipes.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
from typing import Any, Callable

from .language import JSON, Outcome, ScenarioError, capture
from .libc import plug
from .state import SESSIONS, Child, P, SessionState

CHILD_TIMEOUT = 60.0  # seconds a child may take to answer before it counts as hung

#: The parent's ends of every child's pipes, across sessions: a forked child must close
#: them all, or a sibling would never see the EOF that tells it to exit.
CHILD_FDS: set[int] = set()


def send(fd: int, obj: JSON) -> None:
    data = json.dumps(obj).encode()
    msg = struct.pack("<I", len(data)) + data
    while msg:
        msg = msg[os.write(fd, msg) :]


def read_exact(fd: int, n: int, timeout: float) -> bytes | None:
    buf = b""
    while len(buf) < n:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv(fd: int, timeout: float = CHILD_TIMEOUT) -> JSON | None:
    """One message, or None at EOF (or when nothing comes within ``timeout``)."""
    head = read_exact(fd, 4, timeout)
    if head is None:
        return None
    body = read_exact(fd, struct.unpack("<I", head)[0], timeout)
    return None if body is None else json.loads(body.decode())


def wait_child(pid: int) -> Outcome:
    """Reap a child; one that does not exit within CHILD_TIMEOUT is killed and reported."""
    hung = False
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    if pidfd >= 0:
        try:
            ready, _, _ = select.select([pidfd], [], [], CHILD_TIMEOUT)
        finally:
            os.close(pidfd)
        if not ready:
            hung = True
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if hung:
        return {"error": f"child {pid} did not exit"}
    if os.WIFSIGNALED(status):
        return {"ok": {"signal": os.WTERMSIG(status)}}
    return {"ok": {"exit": os.WEXITSTATUS(status)}}


def in_forked_child(fn: Callable[[], JSON]) -> Outcome:
    """Run ``fn`` in a forked child: its outcome, or the signal that killed it.

    For memory accesses the protections do not allow: the fault kills the
    child, never the runner.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            with contextlib.suppress(Exception):
                import faulthandler

                faulthandler.disable()
            send(w, capture(fn))
        finally:
            os._exit(0)
    os.close(w)
    try:
        msg = recv(r)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    if not isinstance(msg, dict):
        return {"error": f"child exited with {os.WEXITSTATUS(status)} and no result"}
    return msg


class ProcessSteps(SessionState):
    """``fork``, ``child``, ``release`` and ``kill``."""

    def op_fork(self, step: dict[str, Any]) -> Outcome:
        name = step["as"]
        if name in self.children:
            raise ScenarioError(f"child {name!r} exists")
        self._ensure_pin_dir()  # a child's pins must land where its parent looks
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                os.close(to_w)
                os.close(from_r)
                self._become_child()
                send(from_w, [self.run(s) for s in step.get("steps", [])])
                while True:
                    steps = recv(to_r, timeout=3600)
                    if steps is None:
                        break
                    send(from_w, [self.run(s) for s in steps])
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(to_r)
        os.close(from_w)
        CHILD_FDS.update((to_w, from_r))
        self.children[name] = Child(pid, to_w, from_r)
        results = recv(from_r)
        if results is None:
            return {"error": f"child {name!r} gave no answer"}
        return {"ok": results}

    def _become_child(self) -> None:
        for other in list(SESSIONS):
            if other is not self:
                other._abandon()
        self.is_child = True
        with contextlib.suppress(Exception):
            import faulthandler

            faulthandler.disable()
        for fd in CHILD_FDS:  # siblings (of any session) are the parent's business
            os.close(fd)
        CHILD_FDS.clear()
        self.children.clear()
        for reg in self.regions.values():  # MADV_DONTFORK pages were not inherited
            for i, gone in enumerate(reg.dontfork):
                if gone and not reg.obj.closed:
                    plug(reg.addr + i * P, P)
                    reg.pages[i] = None

    def op_child(self, step: dict[str, Any]) -> Outcome:
        name = step["child"]
        if name not in self.children:
            return {"error": f"no child {name!r}"}
        child = self.children[name]
        send(child.to_child, step["steps"])
        results = recv(child.from_child)
        if results is None:
            return {"error": f"child {name!r} gave no answer"}
        return {"ok": results}

    def op_release(self, step: dict[str, Any]) -> Outcome:
        if step["child"] not in self.children:
            return {"error": f"no child {step['child']!r}"}
        return self._end_child(step["child"], kill=False)

    def op_kill(self, step: dict[str, Any]) -> Outcome:
        if step["child"] not in self.children:
            return {"error": f"no child {step['child']!r}"}
        return self._end_child(step["child"], kill=True)

    def _end_child(self, name: str, kill: bool) -> Outcome:
        child = self.children.pop(name)
        if kill:
            os.kill(child.pid, signal.SIGKILL)
        for fd in (child.to_child, child.from_child):
            CHILD_FDS.discard(fd)
            os.close(fd)
        return wait_child(child.pid)
