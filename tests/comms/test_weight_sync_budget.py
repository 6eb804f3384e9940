"""The byte budget's accounting, on a clock the test moves (no timing)."""

from __future__ import annotations

import numpy as np
import pytest

from comms.weight_sync import WeightSet, tensor_digest
from comms.weight_sync_budget import ByteBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_a_full_bucket_grants_one_interval_at_once_then_makes_callers_wait() -> None:
    clock = Clock()
    budget = ByteBudget(1000, interval_s=0.01, clock=clock, sleep=clock.sleep)
    assert budget.reserve(1000) == 0.0  # the first interval's worth is there
    assert budget.reserve(500) == pytest.approx(0.005)  # then at 100 kB/s
    assert budget.reserve(500) == pytest.approx(0.010)  # reservations queue
    clock.now += 0.010
    assert budget.reserve(0) == pytest.approx(0.0)  # the debt is paid by now
    clock.now += 1.0
    assert budget.reserve(1000) == 0.0  # an idle bucket refills to one interval, not more
    assert budget.reserve(1) > 0
    assert budget.granted == 3001


def test_acquire_splits_large_requests_and_sleeps_what_the_budget_says() -> None:
    clock = Clock()
    budget = ByteBudget(1 << 20, interval_s=0.01, clock=clock, sleep=clock.sleep)
    budget.acquire(10 << 20)  # ten intervals' worth: one free, nine waited for
    assert sum(clock.slept) == pytest.approx(0.09)
    assert budget.granted == 10 << 20 and budget.waited_s == pytest.approx(0.09)


def test_digesting_a_version_under_a_budget_accounts_every_byte() -> None:
    clock = Clock()
    budget = ByteBudget(1 << 20, interval_s=0.01, clock=clock, sleep=clock.sleep)
    arr = np.arange(3 << 20, dtype=np.uint8)
    assert tensor_digest(arr, budget) == WeightSet.of({"a": arr}, 1).digests["a"]
    assert budget.granted == arr.nbytes
    assert sum(clock.slept) == pytest.approx(0.02)


def test_a_budget_refuses_nonsense_and_single_requests_above_its_size() -> None:
    with pytest.raises(ValueError, match="positive size and interval"):
        ByteBudget(0)
    with pytest.raises(ValueError, match="acquire them in steps"):
        ByteBudget(10).reserve(11)
