"""The session's supervisor: notices a part that died or hangs, says what happened, and stops the
session cleanly when a part keeps dying.

Ray restarts a part whose process dies (the actors are `max_restarts=-1`) and re-runs the calls
it was running; each part starts again from what the run directory holds (the buffer's last
commit, the learner's checkpoint), so a restart needs no operator. The supervisor pings every
part: a new pid means it was restarted (one log line: what died, what came back, what was
lost); a part that does not answer for `heartbeat_timeout_s` is killed for Ray to restart; one
restarted `max_restarts` times within `window_s` ends the session with that reason.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from robot_rl.core import SessionError

log = logging.getLogger(__name__)
ANSWER_S = 1.0  # how long one check waits for the pings it sent


@dataclass
class _Part:
    name: str
    handle: Any
    lost: Callable[[], str]  # what a restart of it loses, said once it is back
    pid: int | None = None
    state: str = "starting"
    restarts: deque[float] = field(default_factory=deque)
    total_restarts: int = 0
    ping: Any = None  # a ping in flight
    silent_since: float | None = None


class Supervisor:
    """`watch` each part once it is created, `check` every few seconds; `parts()` for display."""

    def __init__(self, max_restarts: int, window_s: float, heartbeat_timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_restarts, self.window_s = max_restarts, window_s
        self.heartbeat_timeout_s, self.clock = heartbeat_timeout_s, clock
        self._parts: dict[str, _Part] = {}
        self.events: list[str] = []  # every line said, for the status file and tests

    def watch(self, name: str, handle: Any, lost: Callable[[], str]) -> None:
        self._parts[name] = _Part(name, handle, lost)

    def check(self) -> list[str]:
        """Ping every part; the names of those restarted since the last check. SessionError when
        a part keeps dying."""
        for part in self._parts.values():
            if part.ping is None:
                part.ping = part.handle.ping.remote()
        pending = [p.ping for p in self._parts.values()]
        ray.wait(pending, num_returns=len(pending), timeout=ANSWER_S)
        restarted = []
        for part in self._parts.values():
            if self._answered(part):
                restarted += [part.name] if self._restarted(part) else []
            else:
                self._silent(part)
        return restarted

    def _answered(self, part: _Part) -> bool:
        ready, _ = ray.wait([part.ping], timeout=0)
        if not ready:
            return False
        ping, part.ping = part.ping, None
        try:
            pid = int(ray.get(ping)["pid"])
        except ray.exceptions.RayError:  # died with the ping in flight: the next one tells
            part.state = "restarting"
            return False
        part.silent_since = None
        if part.pid is None:
            part.pid, part.state = pid, "running"
            return True
        if pid == part.pid:
            part.state = "running"
            return True
        part.state, dead, part.pid = "running", part.pid, pid
        part.restarts.append(self.clock())
        part.total_restarts += 1
        self._say(f"supervisor: the {part.name} died (pid {dead}) and was restarted (pid {pid}); "
                  f"lost: {part.lost()}")
        return True

    def _restarted(self, part: _Part) -> bool:
        """True for a part restarted at this check; SessionError once it keeps dying."""
        now = self.clock()
        while part.restarts and now - part.restarts[0] > self.window_s:
            part.restarts.popleft()
        if len(part.restarts) >= self.max_restarts:
            raise SessionError(
                f"the {part.name} died {len(part.restarts)} times in {self.window_s:.0f} s; the "
                "session stopped instead of restarting it again. Its log in <run>/logs says why; "
                "every committed step is in the buffer: fix the cause and run the same command")
        return bool(part.restarts) and part.restarts[-1] == now

    def _silent(self, part: _Part) -> None:
        now = self.clock()
        part.silent_since = part.silent_since or now
        if part.state == "running" and now - part.silent_since > ANSWER_S:
            part.state = "not answering"
        if now - part.silent_since >= self.heartbeat_timeout_s:
            self._say(f"supervisor: the {part.name} has not answered for "
                      f"{now - part.silent_since:.0f} s: killed, to be restarted")
            ray.kill(part.handle, no_restart=False)
            part.silent_since, part.ping, part.state = None, None, "restarting"

    def _say(self, line: str) -> None:
        log.warning(line)
        print(line, flush=True)
        self.events.append(line)

    def parts(self) -> dict[str, dict[str, Any]]:
        """Each part's state, pid and restarts, for the live display and `robot-rl status`."""
        return {p.name: {"state": p.state, "pid": p.pid, "restarts": p.total_restarts}
                for p in self._parts.values()}
