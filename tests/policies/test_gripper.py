"""The discrete gripper head: its losses by hand, what it trains, how it acts and round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies import SAC, SACConfig
from policies.gripper import grasp_loss, grasp_td_target, gripper_choice
from robot_rl.core import ConfigError

GRASP = dict(hidden=(32, 32), discrete_gripper=True)


def test_grasp_td_target_is_double_dqn() -> None:
    next_q = torch.tensor([[1.0, 5.0], [3.0, 2.0]])  # online picks close, then open
    next_q_target = torch.tensor([[4.0, 2.0], [6.0, 9.0]])  # valued by the target: 2.0, 6.0
    target = grasp_td_target(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), next_q,
                             next_q_target, gamma=0.5, discount=torch.tensor([0.5, 1.0]))
    # row 0: 1 + 0.5 * 0.5 * 2.0 = 1.5; row 1 is terminal: 0
    assert torch.allclose(target, torch.tensor([1.5, 0.0]))


def test_grasp_loss_values_the_choice_taken() -> None:
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0]])
    choice = gripper_choice(torch.tensor([-0.3, 0.7]))  # open, close
    assert choice.tolist() == [0, 1]
    # ((1 - 2)^2 + (4 - 2)^2) / 2 = 2.5
    assert float(grasp_loss(q, choice, torch.tensor([2.0, 2.0]))) == 2.5


def test_actor_moves_the_arm_and_the_head_picks_open_or_close(state_spec, action_spec) -> None:
    algo = SAC(state_spec, action_spec, SACConfig(**GRASP, gripper_epsilon=0.0))
    assert algo.policy.actor.mean.out_features == 4 and algo.target_entropy == -0.5 * 4
    obs = {"ee_pos": np.zeros(3, np.float32), "target_pos": np.ones(3, np.float32)}
    a = algo.policy.act(obs)
    assert a.shape == (5,) and a[4] in (-1.0, 1.0)
    explorer = SAC(state_spec, action_spec, SACConfig(**GRASP, gripper_epsilon=1.0))
    picks = {float(explorer.policy.act(obs)[4]) for _ in range(40)}
    assert picks == {-1.0, 1.0}  # all exploration: both commands show up
    assert float(explorer.policy.act(obs, deterministic=True)[4]) == float(
        explorer.policy.act(obs, deterministic=True)[4])  # eval: greedy, no exploration


def test_grasp_update_trains_the_head_only(state_spec, action_spec, make_batch) -> None:
    algo = SAC(state_spec, action_spec, SACConfig(**GRASP))
    grasp = {k: v.clone() for k, v in algo.policy.grasp.state_dict().items()}
    others = {k: v.clone() for k, v in algo.critic.state_dict().items()}
    b = algo._tensors(make_batch(state_spec, 16))
    feat = algo.encoder(b["obs"])
    metrics = algo.grasp.update(feat, algo.encoder(b["next_obs"]), b)
    assert np.isfinite(metrics["grasp_loss"])
    assert all(not torch.equal(v, algo.policy.grasp.state_dict()[k]) for k, v in grasp.items()
               if k.endswith("weight"))
    assert all(torch.equal(v, algo.critic.state_dict()[k]) for k, v in others.items())
    full = algo.update(iter([make_batch(state_spec, 16, seed=1)]))
    assert "grasp_loss" in full and "actor_loss" in full


def test_grasp_head_travels_with_weights_and_checkpoints(state_spec, action_spec,
                                                         make_batch) -> None:
    algo = SAC(state_spec, action_spec, SACConfig(**GRASP), seed=1)
    algo.update(iter([make_batch(state_spec, 16)]))
    weights = algo.policy.get_weights()
    assert {k.split(".")[0] for k in weights} == {"encoder", "actor", "grasp"}  # state statistics
    clone = SAC(state_spec, action_spec, SACConfig(**GRASP), seed=7)
    clone.load_state_dict(algo.state_dict())
    batch = make_batch(state_spec, 16, seed=2)
    torch.manual_seed(0)
    m1 = algo.update(iter([batch]))
    torch.manual_seed(0)
    assert clone.update(iter([batch])) == m1


def test_bad_gripper_epsilon_is_a_clear_error(state_spec, action_spec) -> None:
    with pytest.raises(ConfigError, match="gripper_epsilon"):
        SAC(state_spec, action_spec, SACConfig(**GRASP, gripper_epsilon=1.5))
