"""Each SAC loss against values computed by hand on a two-sample batch."""

from __future__ import annotations

import math

import torch

from policies.sac import actor_loss, critic_loss, td_target, temperature_loss


def test_td_target_takes_min_over_critics_and_masks_terminal() -> None:
    reward = torch.tensor([1.0, 0.5])
    terminated = torch.tensor([0.0, 1.0])
    next_q = torch.tensor([[2.0, 3.0], [1.0, 4.0]])  # min per sample: 1.0, 3.0
    next_log_prob = torch.tensor([-1.0, -2.0])
    target = td_target(reward, terminated, next_q, next_log_prob, torch.tensor(0.5), gamma=0.9)
    # sample 0: 1 + 0.9 * (1.0 - 0.5 * -1.0) = 2.35; sample 1 is terminal: 0.5
    assert torch.allclose(target, torch.tensor([2.35, 0.5]))


def test_td_target_bootstraps_n_step_rows_with_their_discount() -> None:
    reward = torch.tensor([1.0, 2.0])  # row 1: a 3-step return, discount gamma^2 = 0.81
    next_q = torch.tensor([[2.0, 2.0]])
    target = td_target(reward, torch.zeros(2), next_q, torch.zeros(2), torch.tensor(0.0),
                       gamma=0.9, discount=torch.tensor([1.0, 0.81]))
    # row 0: 1 + 0.9 * 2 = 2.8; row 1: 2 + 0.9 * 0.81 * 2 = 3.458
    assert torch.allclose(target, torch.tensor([2.8, 3.458]))


def test_critic_loss_sums_mean_squared_errors_of_each_critic() -> None:
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0]])
    target = torch.tensor([2.0, 2.0])
    # critic 0: ((1-2)^2 + 0) / 2 = 0.5; critic 1: (4 + 4) / 2 = 4.0
    assert math.isclose(float(critic_loss(q, target)), 4.5)


def test_actor_loss_is_alpha_log_prob_minus_mean_q() -> None:
    q = torch.tensor([[1.0, 3.0], [3.0, 5.0]])  # mean over critics: 2, 4
    log_prob = torch.tensor([-1.0, 1.0])
    loss = actor_loss(q, log_prob, torch.tensor(0.2))
    # ((0.2 * -1 - 2) + (0.2 * 1 - 4)) / 2 = -3.0
    assert math.isclose(float(loss), -3.0, rel_tol=1e-6)


def test_temperature_loss_value_and_gradient_sign() -> None:
    log_alpha = torch.tensor(math.log(0.1), requires_grad=True)
    log_prob = torch.tensor([-1.0, -3.0], requires_grad=True)
    loss = temperature_loss(log_alpha, log_prob, target_entropy=-2.5)
    # -(log 0.1 * mean(-1 + -2.5, -3 + -2.5)) = -(log 0.1 * -4.5)
    assert math.isclose(float(loss.detach()), math.log(0.1) * 4.5, rel_tol=1e-6)
    loss.backward()
    # entropy (2.0) is above the target (-2.5): a positive gradient, so descent shrinks alpha
    assert log_alpha.grad is not None and float(log_alpha.grad) == 4.5
    assert log_prob.grad is None  # the policy is not trained through the temperature loss
