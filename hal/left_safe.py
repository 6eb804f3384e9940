"""A robot left safe: however its process stops, the robot gets a hold and is disconnected.

    with robot_left_safe(robot):      # robot: a connected SafeRobot
        run_the_session(robot)

Ctrl-C, SIGTERM (raised as `Terminated`, a SystemExit with code 128 + signal), an exception or
the normal end all leave through the same path; SIGKILL cannot be caught, so a real arm also
needs its controller's own watchdog (and the session's leases expire on their own).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from hal.safety import SafeRobot

log = logging.getLogger(__name__)

CAUGHT = (signal.SIGTERM, signal.SIGHUP)
"""Signals turned into `Terminated` inside the block (SIGINT already raises KeyboardInterrupt)."""


class Terminated(SystemExit):
    """The process was asked to stop by a signal; the exit code is 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signal = signal.Signals(signum).name


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def _leave(robot: SafeRobot) -> None:
    """Hold, then disconnect; a failure of one is logged and never hides the other."""
    try:
        robot.hold()
    except Exception as exc:  # noqa: BLE001 - the robot must still be disconnected
        log.error("%s: the final hold failed: %s", robot.robot_id, exc)
    try:
        robot.disconnect()
    except Exception as exc:  # noqa: BLE001 - nothing more can be done for it here
        log.error("%s: disconnecting failed: %s", robot.robot_id, exc)


@contextmanager
def robot_left_safe(robot: SafeRobot) -> Iterator[SafeRobot]:
    """Inside: SIGTERM/SIGHUP raise `Terminated`. On leaving for any reason: hold, disconnect.

    Signal handlers are installed only on the main thread (elsewhere the block still holds and
    disconnects on exceptions); while the robot is being left, further signals are ignored so a
    second Ctrl-C cannot interrupt the hold. The previous handlers are restored afterwards.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _raise_terminated) for s in CAUGHT} if main else {}
    try:
        yield robot
    except BaseException as exc:
        log.warning("%s: leaving it safe after %s", robot.robot_id,
                    getattr(exc, "signal", None) or type(exc).__name__)
        raise
    finally:
        quiet = [*CAUGHT, signal.SIGINT]
        ignored = {s: signal.signal(s, signal.SIG_IGN) for s in quiet} if main else {}
        try:
            _leave(robot)
        finally:
            for sig, handler in {**ignored, **previous}.items():
                signal.signal(sig, handler)
