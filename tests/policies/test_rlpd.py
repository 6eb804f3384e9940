"""RLPD data mixing: batch split, concatenation, routing to the demo side, and the algorithm."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from policies import ALGORITHMS, RLPD, RLPDConfig
from policies.rlpd import intervention_rate
from robot_rl.core import (
    ArraySpec,
    Batch,
    ConfigError,
    DictSpec,
    Episode,
    Source,
    SpecError,
    Transition,
    batch_split,
    is_demo_side,
)


def test_batch_split() -> None:
    assert batch_split(256, 0.5) == (128, 128)
    assert batch_split(10, 0.25) == (8, 2)
    assert batch_split(7, 0.0) == (7, 0)
    with pytest.raises(ConfigError, match="demo_fraction"):
        batch_split(8, 1.5)


def test_concat_puts_rows_in_order_and_fills_missing_discounts(state_spec, make_batch) -> None:
    a, b = make_batch(state_spec, 3, seed=0), make_batch(state_spec, 2, seed=100)
    b = dataclasses.replace(b, discount=np.full(2, 0.5, np.float32))
    mixed = Batch.concat([a, b])
    assert len(mixed) == 5
    assert np.array_equal(mixed.obs["ee_pos"], np.concatenate([a.obs["ee_pos"], b.obs["ee_pos"]]))
    assert np.array_equal(mixed.reward, np.concatenate([a.reward, b.reward]))
    assert mixed.discount.tolist() == [1.0, 1.0, 1.0, 0.5, 0.5]  # no n-step rows bootstrap at 1
    assert Batch.concat([a, a]).discount is None


def test_mixing_batches_with_different_layouts_fails(state_spec, make_batch) -> None:
    other = DictSpec({"ee_pos": ArraySpec((3,), "float32")})
    with pytest.raises(SpecError, match="different observation fields"):
        Batch.concat([make_batch(state_spec, 2), make_batch(other, 2)])


def _t(intervened: bool, source: Source) -> Transition:
    z = {"x": np.zeros(1, np.float32)}
    return Transition(z, np.zeros(5, np.float32), 0.0, z, False, False, intervened, source)


def test_demo_side_routing_and_intervention_rate() -> None:
    assert not is_demo_side(Source.POLICY, False)
    assert not is_demo_side(Source.HOLD, False)  # a hold is no demonstration
    assert is_demo_side(Source.HUMAN, True)
    assert is_demo_side(Source.DEMO, False)
    assert is_demo_side(Source.SCRIPTED, False)
    assert is_demo_side(Source.POLICY, True)  # any step a person took over
    column = np.array([int(s) for s in Source], np.int8)  # the same rule over buffer columns
    assert is_demo_side(column, np.zeros(len(column), bool)).tolist() == [
        is_demo_side(s, False) for s in Source]
    ep = Episode(0, "r", "task", [_t(True, Source.HUMAN), _t(False, Source.POLICY)] * 2)
    assert intervention_rate(ep) == 0.5
    assert intervention_rate(Episode(1, "r", "task")) == 0.0


def test_rlpd_trains_on_mixed_batches(state_spec, action_spec, make_batch) -> None:
    assert ALGORITHMS.get("rlpd") is RLPD
    algo = RLPD(state_spec, action_spec, RLPDConfig(hidden=(16,), critics=4))
    assert algo.critic.members == 4
    online = (make_batch(state_spec, 6, seed=i) for i in itertools.count())
    demo = (make_batch(state_spec, 6, seed=50 + i) for i in itertools.count())
    metrics = algo.update(Batch.concat([o, d]) for o, d in zip(online, demo, strict=False))
    assert np.isfinite(metrics["critic_loss"]) and "actor_loss" in metrics
    with pytest.raises(ConfigError, match="demo_fraction"):
        RLPD(state_spec, action_spec, RLPDConfig(demo_fraction=-0.1))
