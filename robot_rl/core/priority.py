"""Thread CPU priority: work beside a robot's control loop (weight sync, the learner on a machine
it shares with robots) yields the CPU to it."""

from __future__ import annotations

import os
import threading

BACKGROUND_NICE = 10  # how much lower than the control loop's a background thread is scheduled


def background_priority(nice: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux: a thread's own nice value), so
    that on a busy machine the control loop's threads are scheduled first; no-op elsewhere."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                       os.getpriority(os.PRIO_PROCESS, 0) + nice)
    except (AttributeError, OSError):
        pass
