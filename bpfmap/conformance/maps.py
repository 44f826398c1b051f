"""The steps on a map's handles: elements, batches, freezing, info, second handles, pins."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable

from .._map import ArrayMap
from .language import (
    JSON,
    Outcome,
    ScenarioError,
    capture,
    encode_bytes,
    flag_value,
    pattern,
    repeat_hex,
)
from .state import SessionState


class MapSteps(SessionState):
    """``create`` ... ``close`` and the pin steps, on this session's backend."""

    def op_create(self, step: dict[str, Any]) -> Outcome:
        name: str | bytes = step.get("name", "")
        if "name_hex" in step:
            name = bytes.fromhex(step["name_hex"])
        kw = {
            "flags": flag_value(step.get("flags", 0)),
            "name": name,
            "key_size": step.get("key_size", 4),
            "backend": self.backend,
        }
        made: list[ArrayMap] = []

        def create() -> None:
            made.append(ArrayMap(step["value_size"], step["max_entries"], **kw))

        fd0 = step.get("fd0")
        if fd0 is None:
            out = capture(create)
        else:
            out = with_fd0(fd0, lambda: capture(create))
            if made and made[0].fd == 0:  # would be clobbered when fd 0 is restored
                made.pop().close()
        if made:
            old = self.maps.pop(step.get("as", "m"), None)
            if old is not None:
                old.close()
            self.maps[step.get("as", "m")] = made[0]
        return out

    def op_lookup(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: encode_bytes(m.lookup(step["key"], flag_value(step.get("flags", 0))))
        )

    def op_lookup_into(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def into() -> JSON:
            buf = bytearray(repeat_hex(step.get("fill", "ee"), m.value_size + step.get("extra", 0)))
            m.lookup_into(step["key"], buf, flag_value(step.get("flags", 0)))
            return encode_bytes(bytes(buf))

        return capture(into)

    def _value(self, m: ArrayMap, step: dict[str, Any]) -> bytes:
        if "value" in step:
            return bytes.fromhex(step["value"])
        return repeat_hex(step.get("fill", "ab"), m.value_size)

    def op_update(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: m.update(step["key"], self._value(m, step), flag_value(step.get("flags", 0)))
        )

    def op_fill_all(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def fill() -> None:
            for k in range(m.max_entries):
                m.update(k, pattern(k, m.value_size))

        return capture(fill)

    def op_delete(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: m.delete(step["key"]))

    def op_lookup_and_delete(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: encode_bytes(m.lookup_and_delete(step["key"], flag_value(step.get("flags", 0))))
        )

    def op_get_next_key(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: m.get_next_key(step["key"]))

    def op_lookup_batch(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def batch() -> JSON:
            b = m.lookup_batch(
                step.get("count"),
                in_batch=step.get("in_batch"),
                elem_flags=flag_value(step.get("elem_flags", 0)),
                flags=flag_value(step.get("flags", 0)),
            )
            return {
                "keys": list(b.keys),
                "values": encode_bytes(bytes(b.values)),
                "out_batch": b.out_batch,
                "done": b.done,
            }

        return capture(batch)

    def op_update_batch(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        keys = step["keys"]

        def values() -> list[bytes]:  # in capture: a closed handle's value_size is a ValueError
            vs = m.value_size
            if "values" in step:
                return [bytes.fromhex(v) for v in step["values"]]
            if "ramp" in step:
                return [bytes([(step["ramp"] + i) & 0xFF]) * vs for i in range(len(keys))]
            return [repeat_hex(step.get("fill", "cd"), vs)] * len(keys)

        return capture(
            lambda: m.update_batch(
                keys,
                values(),
                elem_flags=flag_value(step.get("elem_flags", 0)),
                flags=flag_value(step.get("flags", 0)),
            )
        )

    def op_delete_batch(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: m.delete_batch(
                step["keys"],
                elem_flags=flag_value(step.get("elem_flags", 0)),
                flags=flag_value(step.get("flags", 0)),
            )
        )

    def op_freeze(self, step: dict[str, Any]) -> Outcome:
        return capture(self._map(step).freeze)

    def op_frozen(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: m.frozen)

    def op_info(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def info() -> JSON:
            i = m.info()
            return {
                "type": i.type,
                "key_size": i.key_size,
                "value_size": i.value_size,
                "max_entries": i.max_entries,
                "map_flags": i.map_flags,
                "name": i.name,
                "id_positive": i.id > 0 and i.id == m.id,
            }

        return capture(info)

    def op_props(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: {
                "key_size": m.key_size,
                "value_size": m.value_size,
                "max_entries": m.max_entries,
                "flags": m.flags,
                "name": m.name,
                "access": m.access,
                "frozen": m.frozen,
                "len": len(m),
            }
        )

    def op_contents(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(
            lambda: encode_bytes(b"".join(m.lookup(k) for k in range(m.max_entries)))
        )

    def op_items(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        return capture(lambda: [[k, encode_bytes(v)] for k, v in m.items()])

    def op_dup(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)

        def dup() -> None:
            h = ArrayMap.from_fd(os.dup(m.fd))
            old = self.maps.pop(step["as"], None)
            if old is not None:
                old.close()
            self.maps[step["as"]] = h

        return capture(dup)

    def op_close(self, step: dict[str, Any]) -> Outcome:
        return capture(self._map(step).close)

    # pins ----------------------------------------------------------------------------

    def op_pin(self, step: dict[str, Any]) -> Outcome:
        m = self._map(step)
        path = self.pin_path(step["pin"])
        return capture(lambda: m.pin(path))

    def op_open_pinned(self, step: dict[str, Any]) -> Outcome:
        path = self.pin_path(step["pin"])

        def do() -> JSON:
            h = ArrayMap.open_pinned(path, readonly=step.get("readonly", False))
            old = self.maps.pop(step["as"], None)
            if old is not None:
                old.close()
            self.maps[step["as"]] = h
            return h.access

        return capture(do)

    def op_unpin(self, step: dict[str, Any]) -> Outcome:
        path = self.pin_path(step["pin"])
        return capture(lambda: self._unpin(path))

    def op_pin_mode(self, step: dict[str, Any]) -> Outcome:
        path = self.pin_path(step["pin"])
        return capture(lambda: f"{os.stat(path).st_mode & 0o777:04o}")


def with_fd0(state: str, fn: Callable[[], Outcome]) -> Outcome:
    """Run ``fn`` with fd 0 open (on /dev/null if need be) or closed, then restore it."""
    try:
        saved: int | None = os.dup(0)
    except OSError:
        saved = None
    try:
        if state == "closed":
            if saved is not None:
                os.close(0)
        elif state == "open":
            if saved is None:
                fd = os.open(os.devnull, os.O_RDONLY)
                if fd != 0:
                    os.dup2(fd, 0)
                    os.close(fd)
        else:
            raise ScenarioError(f"fd0 must be 'open' or 'closed', not {state!r}")
        return fn()
    finally:
        if saved is not None:
            os.dup2(saved, 0)
            os.close(saved)
        else:
            with contextlib.suppress(OSError):
                os.close(0)
