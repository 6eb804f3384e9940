"""Small torch building blocks: MLPs, ensemble critics with LayerNorm, a tanh-Gaussian actor,
a running normalizer of state inputs, the soft update of a target network."""

from __future__ import annotations

import math

import torch
from torch import nn


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Move each of `target`'s parameters `tau` of the way to `source`'s, all in one call (a
    Python loop over the parameters costs a small network's CPU update a few percent)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def mlp(
    sizes: list[int], *, layer_norm: bool = True, final_activation: bool = False
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        last = i == len(sizes) - 2
        if not last or final_activation:
            if layer_norm:
                layers.append(nn.LayerNorm(sizes[i + 1]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """`members` independent linear layers evaluated in one batched matmul."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (members, B, in)
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleCritic(nn.Module):
    """Q(s, a) for `members` critics at once, LayerNorm after each hidden layer."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], members: int) -> None:
        super().__init__()
        self.members = members
        sizes = [obs_dim + act_dim, *hidden]
        self.hidden = nn.ModuleList(
            EnsembleLinear(members, a, b) for a, b in zip(sizes, sizes[1:], strict=False)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(h) for h in hidden)
        self.out = EnsembleLinear(members, sizes[-1], 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1).unsqueeze(0).expand(self.members, -1, -1)
        for layer, norm in zip(self.hidden, self.norms, strict=True):
            x = torch.relu(norm(layer(x)))
        return self.out(x).squeeze(-1)  # (members, B)


class TanhGaussianActor(nn.Module):
    """A Gaussian squashed by tanh into [-1, 1]; returns actions and their log-probabilities."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = mlp([obs_dim, *hidden], final_activation=True)
        self.mean = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)

    def forward(
        self, obs: torch.Tensor, *, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        mean = self.mean(h)
        log_std = torch.clamp(self.log_std(h), -5.0, 2.0)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        std = log_std.exp()
        pre = mean + std * torch.randn_like(mean)
        action = torch.tanh(pre)
        gauss = -0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        log_prob = gauss.sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
        return action, log_prob


class RunningNorm(nn.Module):
    """Standardizes a feature vector by the mean and standard deviation of every vector the
    learner has trained on (merged batch by batch). The statistics are buffers: they travel with
    the weights to every robot and with the checkpoints. Until it has seen data it is the
    identity; a feature that barely varies is scaled by `min_std` at most, and outputs are
    clipped to ±`clip`."""

    def __init__(self, dim: int, min_std: float = 1e-2, clip: float = 10.0) -> None:
        super().__init__()
        self.min_std, self.clip = min_std, clip
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch (B, dim) into the statistics (Chan et al.'s parallel variance)."""
        x = x.detach().float()
        n = float(x.shape[0])
        if n == 0:
            return
        b_mean, b_var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        total = self.count + n
        delta = b_mean - self.mean
        spread = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.var.copy_(spread / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = self.var.sqrt().clamp_min(self.min_std)
        return ((x - self.mean) / std).clamp(-self.clip, self.clip)
