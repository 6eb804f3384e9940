"""Remote action requests waiting for their answers, and the one loop timer that expires them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")


@dataclass
class Pending(Generic[R]):
    """One request: its reply (None: no answer will come) and the task that waits for it."""

    reply: asyncio.Future[R | None]
    task: asyncio.Task[Any]  # cancelled when the deadline passes
    deadline: float  # on the loop's clock
    cancelling: int  # the task's pending cancellations when it asked
    expired: bool = False

    def deadline_cancelled(self) -> bool:
        """Inside `except CancelledError`: True when the cancellation was this deadline's (it
        is then consumed), False when it came from outside and must propagate."""
        return self.expired and self.task.uncancel() <= self.cancelling


class PendingRequests(Generic[R]):
    """Requests by id, with deadlines enforced by one timer armed for the earliest of them.

    A timer per request would leave a cancelled handle in the loop's heap for nearly every
    request (they are answered long before their deadline); this one is re-armed only when an
    earlier deadline arrives or when it fires. Use from the loop's thread only."""

    def __init__(self) -> None:
        self._waiting: dict[int, Pending[R]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, request_id: int, deadline_s: float) -> Pending[R]:
        """Register the current task's request; past `deadline_s` the task is cancelled."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a request must be made from a task")
        pending = Pending(loop.create_future(), task, loop.time() + deadline_s, task.cancelling())
        self._waiting[request_id] = pending
        self._arm(pending.deadline)
        return pending

    def remove(self, request_id: int) -> None:
        del self._waiting[request_id]

    def resolve(self, request_id: int, reply: R) -> bool:
        """Hand `reply` to its waiter; False when nobody waits for it any more (late)."""
        pending = self._waiting.get(request_id)
        if pending is None or pending.reply.done():
            return False
        pending.reply.set_result(reply)
        return True

    def abandon(self) -> None:
        """No reply will come for any request (the link is down): wake every waiter with None."""
        for pending in self._waiting.values():
            if not pending.reply.done():
                pending.reply.set_result(None)

    def _arm(self, when: float) -> None:
        timer = self._timer
        if timer is not None and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now, ahead = asyncio.get_running_loop().time(), None
        for pending in self._waiting.values():
            if pending.expired:
                continue
            if pending.deadline <= now:
                pending.expired = True
                pending.task.cancel()
            elif ahead is None or pending.deadline < ahead:
                ahead = pending.deadline
        if ahead is not None:
            self._arm(ahead)
