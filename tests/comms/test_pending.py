"""Pending remote requests: deadlines by one timer, outside cancellations kept, abandon on loss."""

from __future__ import annotations

import asyncio

import pytest

from comms.pending import PendingRequests


async def _ask(requests: PendingRequests[str], rid: int, deadline_s: float) -> str | None:
    """What EdgeLink.act does around its request."""
    pending = requests.add(rid, deadline_s)
    try:
        return await pending.reply
    except asyncio.CancelledError:
        if not pending.deadline_cancelled():
            raise
        return None
    finally:
        requests.remove(rid)


def test_an_answer_before_the_deadline_is_returned() -> None:
    async def main() -> str | None:
        requests: PendingRequests[str] = PendingRequests()
        task = asyncio.create_task(_ask(requests, 1, 5.0))
        await asyncio.sleep(0)
        assert requests.resolve(1, "action")
        return await task

    assert asyncio.run(main()) == "action"


def test_a_missed_deadline_returns_none_and_a_late_answer_is_refused() -> None:
    async def main() -> None:
        requests: PendingRequests[str] = PendingRequests()
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await _ask(requests, 1, 0.05) is None
        assert 0.05 <= loop.time() - start < 1.0
        assert not requests.resolve(1, "late")
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    asyncio.run(main())


def test_each_request_keeps_its_own_deadline() -> None:
    async def main() -> list[str | None]:
        requests: PendingRequests[str] = PendingRequests()
        slow = asyncio.create_task(_ask(requests, 1, 5.0))
        fast = asyncio.create_task(_ask(requests, 2, 0.05))  # earlier: re-arms the timer
        assert await fast is None
        assert requests.resolve(1, "slow answer")
        return [await slow]

    assert asyncio.run(main()) == ["slow answer"]


def test_a_cancellation_from_outside_is_not_taken_for_a_deadline() -> None:
    async def main() -> None:
        requests: PendingRequests[str] = PendingRequests()
        task = asyncio.create_task(_ask(requests, 1, 5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_an_outside_cancellation_racing_the_deadline_still_propagates() -> None:
    async def main() -> None:
        requests: PendingRequests[str] = PendingRequests()
        task = asyncio.create_task(_ask(requests, 1, 0.02))
        await asyncio.sleep(0.02)  # the deadline fires about now ...
        task.cancel()  # ... and the owner cancels too: the owner's cancellation wins
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_answered_requests_leave_no_timers_behind() -> None:
    async def main() -> int:
        requests: PendingRequests[str] = PendingRequests()
        for rid in range(500):
            task = asyncio.create_task(_ask(requests, rid, 5.0))
            await asyncio.sleep(0)
            requests.resolve(rid, "a")
            await task
        return len(asyncio.get_running_loop()._scheduled)  # type: ignore[attr-defined]

    assert asyncio.run(main()) <= 1  # one timer for all of them, not 500 cancelled handles


def test_abandon_wakes_every_waiter_at_once() -> None:
    async def main() -> list[str | None]:
        requests: PendingRequests[str] = PendingRequests()
        tasks = [asyncio.create_task(_ask(requests, rid, 30.0)) for rid in range(3)]
        await asyncio.sleep(0)
        requests.abandon()
        async with asyncio.timeout(1.0):
            return [await t for t in tasks]

    assert asyncio.run(main()) == [None, None, None]
