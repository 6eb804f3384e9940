"""Run hardware probes on daemon threads under a deadline, so a dead device cannot hang us."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from robot_rl.core import HardwareError


class _Probe(threading.Thread):
    def __init__(self, fn: Callable[[], Any], what: str) -> None:
        super().__init__(name=f"probe {what}", daemon=True)
        self.fn, self.what = fn, what
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except Exception as exc:  # noqa: BLE001 - any failure of a probe is its unit's health
            self.error = exc


def probe_all(calls: Sequence[tuple[str, Callable[[], Any], float]]) -> list[Any]:
    """Run every `(what, fn, timeout_s)` at once; each result, or a HardwareError saying why not.

    A probe that overruns is left running on its daemon thread (it cannot be killed) and
    reported as timed out; the process can still exit.
    """
    started = time.monotonic()
    probes = [(_Probe(fn, what), timeout) for what, fn, timeout in calls]
    for p, _ in probes:
        p.start()
    results: list[Any] = []
    for p, timeout in probes:
        p.join(max(0.0, started + timeout - time.monotonic()))
        if p.is_alive():
            results.append(HardwareError(f"{p.what}: no answer within {timeout:g} s"))
        elif p.error is not None:
            results.append(p.error if isinstance(p.error, HardwareError)
                           else HardwareError(f"{p.what}: {type(p.error).__name__}: {p.error}"))
        else:
            results.append(p.result)
    return results
