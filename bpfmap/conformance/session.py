"""A session: one backend's side of a scenario, which runs its steps and closes what they made."""

from __future__ import annotations

import os
import shutil
from typing import Any

from .language import Outcome, ScenarioError
from .maps import MapSteps
from .processes import ProcessSteps
from .regions import RegionSteps


class Session(MapSteps, RegionSteps, ProcessSteps):
    """One backend's side of a scenario: its handles, regions, children and pins.

    The steps live with what they act on: :class:`MapSteps` (handles and pins),
    :class:`RegionSteps` (mappings), :class:`ProcessSteps` (forked children);
    :class:`SessionState` holds the names they share.
    """

    def close(self) -> None:
        if self.is_child:
            return
        for name in list(self.children):
            self._end_child(name, kill=True)
        self._close_handles()
        if self._pin_dir is not None:
            d, self._pin_dir = self._pin_dir, None
            for entry in os.listdir(d):
                self._unpin(f"{d}/{entry}")
            if self.backend == "kernel":
                os.rmdir(d)
            else:
                shutil.rmtree(d, ignore_errors=True)


    def run(self, step: dict[str, Any]) -> Outcome:
        try:
            return getattr(self, "op_" + step["op"])(step)  # type: ignore[no-any-return]
        except LookupError as exc:
            return {"error": str(exc)}
        except ScenarioError:
            raise
        except Exception as exc:  # a runner bug: report it, never crash
            return {"error": f"{type(exc).__name__}: {exc}"}
