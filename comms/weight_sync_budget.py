"""A byte budget per interval for the copies a weight sync makes beside a control loop.

A token bucket: `bytes_per_interval` bytes may be copied per `interval_s` on average, in bursts of
at most one interval's worth, so applying a large version never takes the CPU (or, later, a GPU's
copy engine) for long stretches while the control loop needs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ByteBudget:
    """A token bucket of bytes; `acquire` waits until the bytes asked for fit the budget."""

    def __init__(self, bytes_per_interval: int, interval_s: float = 0.01,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if bytes_per_interval <= 0 or interval_s <= 0:
            raise ValueError(f"a byte budget needs a positive size and interval, got "
                             f"{bytes_per_interval} bytes per {interval_s}s")
        self.capacity = bytes_per_interval
        self.rate = bytes_per_interval / interval_s  # bytes per second
        self._clock, self._sleep = clock, sleep
        self._tokens = float(bytes_per_interval)
        self._at = clock()
        self._lock = threading.Lock()
        self.granted = 0  # bytes granted so far
        self.waited_s = 0.0  # seconds callers were told to wait

    def reserve(self, n: int) -> float:
        """Take `n` bytes (at most one interval's worth) now; the seconds to wait before using
        them. Reservations queue: the bucket may go negative and later callers wait longer."""
        if n > self.capacity:
            raise ValueError(f"{n} bytes exceed the budget of {self.capacity} per interval; "
                             "acquire them in steps")
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= n
            self.granted += n
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            self.waited_s += wait
            return wait

    def acquire(self, n: int) -> None:
        """Wait until `n` bytes (any number) fit the budget, one interval's worth at a time."""
        while n > 0:
            step = min(n, self.capacity)
            wait = self.reserve(step)
            if wait > 0:
                self._sleep(wait)
            n -= step
