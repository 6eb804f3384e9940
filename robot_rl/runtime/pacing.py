"""Keeping a control loop at its rate: how long to wait, and a wait for loops without an event
loop (an event loop's own is `asyncio.sleep`)."""

from __future__ import annotations

import time


def time_left(started: float, period: float) -> float:
    """Seconds a control loop must still wait to keep one step per `period` from `started`."""
    return max(0.0, started + period - time.monotonic())


async def sleep_blocking(seconds: float) -> None:
    """An awaitable sleep that blocks the thread and never suspends: for loops driven without an
    event loop (`actor.steps`)."""
    if seconds > 0:
        time.sleep(seconds)
