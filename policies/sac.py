"""Soft actor-critic with an ensemble of LayerNorm critics and an auto-tuned temperature.

Reads top to bottom: config, pure losses, the policy that acts, the algorithm that learns.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from policies.base import Algorithm, Policy, Weights
from policies.encoders import EncoderConfig, ObservationEncoder
from policies.gripper import GraspCritic, GraspLearner, gripper_choice
from policies.networks import EnsembleCritic, TanhGaussianActor, soft_update
from policies.registry import ALGORITHMS
from policies.state import tree_to_numpy, tree_to_torch
from robot_rl.core import ArraySpec, Batch, ConfigError, DictSpec, Observation, SpecError


@dataclass
class SACConfig:
    """Hyper-parameters of SAC."""

    hidden: tuple[int, ...] = (256, 256)
    """Width of each hidden layer of actor and critics."""
    critics: int = 2
    """Number of critics in the ensemble."""
    critic_subset: int = 2
    """Critics drawn at random for the target minimum (REDQ when < critics)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    lr: float = 3e-4
    """Adam learning rate of actor, critics and temperature."""
    init_temperature: float = 0.1
    """Initial entropy temperature alpha."""
    target_entropy_scale: float = 0.5
    """Target entropy is -scale * action_dim."""
    critic_updates: int = 1
    """Critic updates per learner step (the update-to-data ratio at one step per env step)."""
    actor_every: int = 1
    """One actor and temperature update every this many learner steps."""
    discrete_gripper: bool = False
    """Open/close the gripper (the last action dimension) by a DQN head, HIL-SERL's grasp
    critic, instead of the actor; the actor and critics then see the arm's dimensions only."""
    gripper_epsilon: float = 0.1
    """Share of steps the discrete gripper head explores with a random choice (not at eval)."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Observation encoder shared by actor and critics; cameras train end to end with the critic."""


# -- pure losses ---------------------------------------------------------------------------------
def td_target(
    reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor,
    next_log_prob: torch.Tensor, alpha: torch.Tensor, gamma: float,
    discount: torch.Tensor | None = None,
) -> torch.Tensor:
    """r + γ d (1 - done) (min_i Q_i(s', a') - α log π(a'|s')), with next_q of shape (k, B).

    `d` is the batch's n-step discount (γ^(n-1) for a reward summed over n steps; 1 when None).
    """
    soft_v = next_q.min(dim=0).values - alpha * next_log_prob
    bootstrap = gamma if discount is None else gamma * discount
    return reward + bootstrap * (1.0 - terminated) * soft_v


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over critics of the mean squared TD error; q is (critics, B), target (B,)."""
    return ((q - target.unsqueeze(0)) ** 2).mean(dim=1).sum()


def actor_loss(q: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """E[α log π(a|s) - mean_i Q_i(s, a)]."""
    return (alpha * log_prob - q.mean(dim=0)).mean()


def temperature_loss(
    log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """Drives the policy's entropy towards the target entropy."""
    return -(log_alpha * (log_prob + target_entropy).detach()).mean()


# -- acting ------------------------------------------------------------------------------------
class SACPolicy(Policy):
    """The observation encoder and the actor behind the Policy interface."""

    def __init__(self, obs_spec: DictSpec, action_spec: ArraySpec, config: SACConfig) -> None:
        self.encoder = ObservationEncoder(obs_spec, config.encoder)
        self.arm_dims = action_spec.shape[0] - int(config.discrete_gripper)
        self.actor = TanhGaussianActor(self.encoder.dim, self.arm_dims, config.hidden)
        self.net = torch.nn.ModuleDict({"encoder": self.encoder, "actor": self.actor})
        self.grasp = GraspCritic(self.encoder.dim, config.hidden) if config.discrete_gripper \
            else None
        if self.grasp is not None:
            self.net["grasp"] = self.grasp
        if not 0.0 <= config.gripper_epsilon <= 1.0:
            raise ConfigError(f"gripper_epsilon must be in [0, 1], got {config.gripper_epsilon}")
        self.gripper_epsilon = config.gripper_epsilon
        self.version = 0

    @property
    def obs_keys(self) -> list[str]:
        return self.encoder.keys

    @torch.no_grad()
    def act(self, obs: Observation, *, deterministic: bool = False) -> np.ndarray:
        x = {k: v.unsqueeze(0) for k, v in self.encoder.to_tensors(obs).items()}
        feat = self.encoder(x)
        action, _ = self.actor(feat, deterministic=deterministic)
        if self.grasp is not None:
            epsilon = 0.0 if deterministic else self.gripper_epsilon
            action = torch.cat([action, self.grasp.command(feat, epsilon).unsqueeze(-1)], -1)
        return action[0].numpy().astype(np.float32)

    def get_weights(self) -> Weights:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}

    def set_weights(self, weights: Mapping[str, np.ndarray], version: int) -> None:
        """Apply all weights or none: names and shapes must match this policy's exactly."""
        current = self.net.state_dict()
        missing, extra = sorted(set(current) - set(weights)), sorted(set(weights) - set(current))
        if missing or extra:
            raise SpecError(f"policy weights: missing {missing}, unexpected {extra}; the sender "
                            "runs a different network layout")
        for name, value in weights.items():
            dtype = str(current[name].dtype).removeprefix("torch.")
            ArraySpec(tuple(current[name].shape), dtype).validate(value, name)
        self.net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
        self.version = version


# -- learning ----------------------------------------------------------------------------------
@ALGORITHMS.register("sac")
class SAC(Algorithm):
    """Learns an SACPolicy from batches of transitions."""

    config_class = SACConfig

    def __init__(
        self, obs_spec: DictSpec, action_spec: ArraySpec, config: SACConfig | None = None,
        *, seed: int = 0,
    ) -> None:
        self.config = cfg = config or SACConfig()
        torch.manual_seed(seed)
        self.rng = torch.Generator().manual_seed(seed)
        self.policy = SACPolicy(obs_spec, action_spec, cfg)
        act_dim = self.policy.arm_dims  # the critics value arm motion; a grasp head the gripper
        self.encoder = self.policy.encoder
        self.grasp = None if self.policy.grasp is None else GraspLearner(
            self.policy.grasp, cfg.lr, cfg.gamma, cfg.tau)
        self.critic = EnsembleCritic(self.encoder.dim, act_dim, cfg.hidden, cfg.critics)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(
            np.log(cfg.init_temperature), dtype=torch.float32, requires_grad=True
        )
        self.target_entropy = -cfg.target_entropy_scale * act_dim
        # fused: each step in one kernel instead of a loop over the parameters (CPU and GPU)
        self.actor_params = list(self.policy.actor.parameters())
        self.actor_opt = torch.optim.Adam(self.actor_params, lr=cfg.lr, fused=True)
        critic_params = [*self.critic.parameters(), *self.encoder.parameters()]
        self.critic_opt = torch.optim.Adam(critic_params, lr=cfg.lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.steps = 0

    def _tensors(self, batch: Batch) -> dict[str, Any]:
        enc, action = self.encoder, torch.as_tensor(batch.action, dtype=torch.float32)
        return {
            "obs": enc.to_tensors(batch.obs),
            "next_obs": enc.to_tensors(batch.next_obs),
            "action": action[:, :self.policy.arm_dims],
            "gripper_choice": gripper_choice(action[:, -1]),
            "reward": torch.as_tensor(batch.reward, dtype=torch.float32),
            "terminated": torch.as_tensor(batch.terminated, dtype=torch.float32),
            "discount": None if batch.discount is None else torch.as_tensor(batch.discount),
        }

    def _encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features of a batch, camera images randomly shifted (the critic trains the CNNs)."""
        return self.encoder(obs, augment=True, generator=self.rng)

    def _critic_step(self, b: dict[str, Any]) -> tuple[dict[str, float], torch.Tensor]:
        """One critic (and, end to end, encoder) update; returns the batch's features, detached."""
        cfg = self.config
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_feat = self._encode(b["next_obs"])
            next_action, next_log_prob = self.policy.actor(next_feat)
            subset = torch.randperm(cfg.critics, generator=self.rng)[: cfg.critic_subset]
            next_q = self.target_critic(next_feat, next_action)[subset]
            target = td_target(
                b["reward"], b["terminated"], next_q, next_log_prob, alpha, cfg.gamma,
                b["discount"])
        feat = self._encode(b["obs"])
        q = self.critic(feat, b["action"])
        loss = critic_loss(q, target)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.target_critic, self.critic, cfg.tau)
        metrics = {"critic_loss": float(loss.detach()), "q_mean": float(q.detach().mean())}
        if self.grasp is not None:
            metrics.update(self.grasp.update(feat.detach(), next_feat, b))
        return metrics, feat.detach()

    def _actor_step(self, feat: torch.Tensor) -> dict[str, float]:
        """Actor and temperature update on detached features: the actor never trains the CNNs."""
        alpha = self.log_alpha.exp()
        action, log_prob = self.policy.actor(feat)
        loss = actor_loss(self.critic(feat, action), log_prob, alpha.detach())
        self.actor_opt.zero_grad(set_to_none=True)
        # the gradient flows through the critic into the actor's parameters alone: autograd
        # computes no weight gradients for the critic
        loss.backward(inputs=self.actor_params)
        self.actor_opt.step()
        t_loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        t_loss.backward()
        self.alpha_opt.step()
        return {"actor_loss": float(loss.detach()), "alpha": float(alpha.detach()),
                "entropy": float(-log_prob.detach().mean())}

    def update(self, batches: Iterator[Batch]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        feat = torch.empty(0)
        for _ in range(self.config.critic_updates):
            batch = self._tensors(next(batches))
            self.encoder.observe(batch["obs"])
            critic_metrics, feat = self._critic_step(batch)
            metrics.update(critic_metrics)
        if self.steps % self.config.actor_every == 0:
            metrics.update(self._actor_step(feat))
        self.steps += 1
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return tree_to_numpy({
            "policy": self.policy.net.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "steps": self.steps,
            "policy_version": self.policy.version,
            "torch_rng": self.rng.get_state(),
            **({"grasp": self.grasp.state_dict()} if self.grasp is not None else {}),
        })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        s = tree_to_torch(state)
        missing = sorted(set(self.policy.net.state_dict()) - set(s["policy"]))
        if missing:
            raise ConfigError(f"the checkpoint's policy lacks {missing}: an older robot_rl wrote "
                              "it; start a new run (this run's buffer can join it as "
                              "buffer.priors=[<run>/buffer] with algo=rlpd)")
        self.policy.net.load_state_dict(s["policy"])
        self.critic.load_state_dict(s["critic"])
        self.target_critic.load_state_dict(s["target_critic"])
        with torch.no_grad():
            self.log_alpha.copy_(s["log_alpha"])
        self.actor_opt.load_state_dict(s["actor_opt"])
        self.critic_opt.load_state_dict(s["critic_opt"])
        self.alpha_opt.load_state_dict(s["alpha_opt"])
        self.steps = int(s["steps"])
        self.policy.version = int(s["policy_version"])
        self.rng.set_state(s["torch_rng"])
        if self.grasp is not None:
            self.grasp.load_state_dict(s["grasp"])
