"""SAC on tiny batches: which parameters each loss moves; weights and state round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from policies import SAC, SACConfig
from policies.encoders import EncoderConfig
from robot_rl.core import ArraySpec, ConfigError, DictSpec, SpecError

SMALL = dict(hidden=(32, 32))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def pixel_sac(spec: DictSpec, action_spec: ArraySpec, **kw: object) -> SAC:
    enc = EncoderConfig(cameras=("side", "wrist"), exclude=("cube_pos",),
                        channels=8, feature_dim=16)
    return SAC(spec, action_spec, SACConfig(**SMALL, encoder=enc, **kw), seed=0)


def test_actor_step_leaves_critics_and_encoder_alone(pixel_spec, action_spec, make_batch) -> None:
    algo = pixel_sac(pixel_spec, action_spec)
    b = algo._tensors(make_batch(pixel_spec, 8))
    _, feat = algo._critic_step(b)
    critic, encoder = snapshot(algo.critic), snapshot(algo.encoder)
    actor = snapshot(algo.policy.actor)
    algo.critic_opt.zero_grad(set_to_none=True)
    algo._actor_step(feat)
    assert all(p.grad is None for p in algo.critic.parameters())  # nothing computed for them
    assert changed(critic, algo.critic) == set()
    assert changed(encoder, algo.encoder) == set()
    assert changed(actor, algo.policy.actor)  # the actor itself did learn


def test_critic_step_trains_critic_and_encoder_only(pixel_spec, action_spec, make_batch) -> None:
    algo = pixel_sac(pixel_spec, action_spec)
    actor, encoder = snapshot(algo.policy.actor), snapshot(algo.encoder)
    critic, target = snapshot(algo.critic), snapshot(algo.target_critic)
    algo._critic_step(algo._tensors(make_batch(pixel_spec, 8)))
    assert changed(actor, algo.policy.actor) == set()
    conv_weights = {k for k in encoder if k.endswith("weight")}
    assert conv_weights <= changed(encoder, algo.encoder)  # end to end: every CNN layer moved
    assert changed(critic, algo.critic) == set(critic)
    # the target moves only by Polyak averaging, a tau-sized step toward the critic
    for k, old in target.items():
        new = algo.target_critic.state_dict()[k]
        assert torch.allclose(new, old.lerp(algo.critic.state_dict()[k], algo.config.tau))


def test_update_counts_critic_and_actor_steps(state_spec, action_spec, make_batch) -> None:
    algo = SAC(state_spec, action_spec, SACConfig(**SMALL, critic_updates=3, actor_every=2))
    drawn = []

    def batches():
        for i in itertools.count():
            drawn.append(i)
            yield make_batch(state_spec, 16, seed=i)

    it = batches()
    first = algo.update(it)
    second = algo.update(it)
    assert len(drawn) == 6  # three critic updates per learner step, one batch each
    assert "actor_loss" in first and "actor_loss" not in second


def test_weights_round_trip_bit_exactly(pixel_spec, action_spec, make_batch) -> None:
    source = pixel_sac(pixel_spec, action_spec)
    source.update(iter([make_batch(pixel_spec, 8)]))
    weights = source.policy.get_weights()
    assert all(isinstance(v, np.ndarray) for v in weights.values())
    assert {k.split(".")[0] for k in weights} == {"encoder", "actor"}
    assert weights["encoder.state_norm.count"] == 8  # the state statistics travel with them
    target = pixel_sac(pixel_spec, action_spec)
    target.policy.set_weights(weights, version=7)
    again = target.policy.get_weights()
    assert target.policy.version == 7
    assert weights.keys() == again.keys()
    for k, v in weights.items():
        assert v.dtype == again[k].dtype and v.tobytes() == again[k].tobytes(), k
    obs = {k: v[0] for k, v in make_batch(pixel_spec, 1, seed=3).obs.items()}
    a = source.policy.act(obs, deterministic=True)
    assert np.array_equal(a, target.policy.act(obs, deterministic=True))
    assert a.shape == (5,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)


def test_state_dict_round_trip_resumes_identically(state_spec, action_spec, make_batch) -> None:
    algo = SAC(state_spec, action_spec, SACConfig(**SMALL), seed=1)
    algo.update(iter([make_batch(state_spec, 16, seed=0)]))
    state = algo.state_dict()
    clone = SAC(state_spec, action_spec, SACConfig(**SMALL), seed=99)
    clone.load_state_dict(state)
    next_batch = make_batch(state_spec, 16, seed=5)
    torch.manual_seed(123)
    m1 = algo.update(iter([next_batch]))
    torch.manual_seed(123)
    m2 = clone.update(iter([next_batch]))
    assert m1 == m2
    for k, v in algo.policy.get_weights().items():
        assert np.array_equal(v, clone.policy.get_weights()[k])


def test_set_weights_with_wrong_names_or_shapes_fails_clearly(state_spec, action_spec) -> None:
    algo = SAC(state_spec, action_spec, SACConfig(**SMALL))
    weights = algo.policy.get_weights()
    before = {k: v.copy() for k, v in weights.items()}
    with pytest.raises(SpecError, match="missing .*actor.mean.weight.*unexpected .*bogus"):
        algo.policy.set_weights({"bogus": np.zeros(3, np.float32)}, version=1)
    wrong = dict(weights, **{"actor.mean.bias": np.zeros(7, np.float32)})
    with pytest.raises(SpecError, match="actor.mean.bias: expected shape"):
        algo.policy.set_weights(wrong, version=1)
    assert algo.policy.version == 0  # nothing was applied
    for k, v in algo.policy.get_weights().items():
        assert np.array_equal(v, before[k])


def test_a_checkpoint_of_an_older_layout_is_refused_with_what_to_do(state_spec,
                                                                     action_spec) -> None:
    state = SAC(state_spec, action_spec, SACConfig(**SMALL)).state_dict()
    state["policy"] = {k: v for k, v in state["policy"].items() if "state_norm" not in k}
    with pytest.raises(ConfigError, match=r"lacks \['encoder.state_norm.count'.*start a new run"):
        SAC(state_spec, action_spec, SACConfig(**SMALL)).load_state_dict(state)
