"""An optional discrete gripper head for SAC, as HIL-SERL's grasp critic: a small DQN picks
open or close while the tanh-Gaussian actor moves the arm.

A continuous gripper command only matters through its sign (> 0 closes), yet an actor must
learn its whole range; two choices valued by Q-learning need far fewer samples, and their
greedy pick never dithers around zero. The gripper is the last action dimension.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from policies.networks import mlp, soft_update

COMMANDS = (-1.0, 1.0)  # the gripper command of each choice: open, close


def gripper_choice(command: torch.Tensor) -> torch.Tensor:
    """The choice (index into COMMANDS) a recorded gripper command stands for: > 0 closes."""
    return (command > 0).long()


def grasp_td_target(
    reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor,
    next_q_target: torch.Tensor, gamma: float, discount: torch.Tensor | None = None,
) -> torch.Tensor:
    """Double DQN: r + γ d (1 - done) Q_target(s', argmax_g Q(s', g)); q tensors are (B, 2)."""
    best = next_q.argmax(dim=-1, keepdim=True)
    bootstrap = gamma if discount is None else gamma * discount
    return reward + bootstrap * (1.0 - terminated) * next_q_target.gather(-1, best).squeeze(-1)


def grasp_loss(q: torch.Tensor, choice: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error of the value of the choice taken; q is (B, 2)."""
    return ((q.gather(-1, choice.unsqueeze(-1)).squeeze(-1) - target) ** 2).mean()


class GraspCritic(nn.Module):
    """Q(s, g) of both gripper choices from the encoder's features."""

    def __init__(self, feature_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp([feature_dim, *hidden, len(COMMANDS)])

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)

    def command(self, feat: torch.Tensor, epsilon: float) -> torch.Tensor:
        """Gripper commands (B,): the greedy choice, a random one with probability `epsilon`."""
        choice = self(feat).argmax(dim=-1)
        explore = torch.rand(choice.shape) < epsilon
        choice = torch.where(explore, torch.randint(0, len(COMMANDS), choice.shape), choice)
        return torch.tensor(COMMANDS)[choice]


class GraspLearner:
    """Trains a policy's GraspCritic on the batches SAC's critic sees (features detached)."""

    def __init__(self, critic: GraspCritic, lr: float, gamma: float, tau: float) -> None:
        self.critic, self.gamma, self.tau = critic, gamma, tau
        self.target = copy.deepcopy(critic).requires_grad_(False)
        self.opt = torch.optim.Adam(critic.parameters(), lr=lr)

    def update(self, feat: torch.Tensor, next_feat: torch.Tensor, b: Mapping[str, Any]
               ) -> dict[str, float]:
        with torch.no_grad():
            target = grasp_td_target(b["reward"], b["terminated"], self.critic(next_feat),
                                     self.target(next_feat), self.gamma, b["discount"])
        loss = grasp_loss(self.critic(feat), b["gripper_choice"], target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        soft_update(self.target, self.critic, self.tau)
        return {"grasp_loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])
