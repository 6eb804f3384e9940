"""LoopThread: synchronous code runs coroutines on a loop thread and never leaves one half-done."""

from __future__ import annotations

import asyncio
import threading

import pytest

from comms.connection import LoopThread


@pytest.fixture
def loop_thread():
    thread = LoopThread("test-loop")
    yield thread
    thread.stop()


def test_run_returns_the_result_or_raises_the_error_of_the_coroutine(loop_thread) -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    async def fail() -> None:
        raise ValueError("broken")

    assert loop_thread.run(answer(), timeout=None) == 42
    with pytest.raises(ValueError, match="broken"):
        loop_thread.run(fail(), timeout=5.0)


def test_a_wait_that_ends_early_cancels_the_coroutine_after_its_clean_up(loop_thread) -> None:
    cleaned = threading.Event()

    async def control_loop() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # a clean-up that itself awaits (say, a robot's hold)
            cleaned.set()

    with pytest.raises(TimeoutError):
        loop_thread.run(control_loop(), timeout=0.1)
    assert cleaned.is_set()  # done before run() raised, not some time later
