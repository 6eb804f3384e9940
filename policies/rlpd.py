"""RLPD, the HIL-SERL recipe: SAC whose every batch is part online data, part demos + interventions.

The learner stays SAC (a large LayerNorm critic ensemble with random subsets); what RLPD adds
is the data: `algo.params.demo_fraction` of every batch comes from the demo side (the run's demos,
its takeovers and any `buffer.priors`), mixed by `buffer.mixing.DemoMix`; which steps belong
there is `robot_rl.core.is_demo_side`.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.registry import ALGORITHMS
from policies.sac import SAC, SACConfig
from robot_rl.core import ArraySpec, DictSpec, Episode, batch_split


@dataclass
class RLPDConfig(SACConfig):
    """SAC hyper-parameters with RLPD's defaults, plus the share of demo-side data per batch."""

    critics: int = 2
    """Critics in the LayerNorm ensemble: 2 as in HIL-SERL; RLPD's paper uses 10 (5x the cost)."""
    critic_subset: int = 2
    """Critics drawn at random for the target minimum."""
    demo_fraction: float = 0.5
    """Share of each batch drawn from demos + interventions (the rest is online data)."""


def intervention_rate(episode: Episode) -> float:
    """Share of an episode's steps a human (or scripted intervener) took over."""
    return episode.interventions / episode.length if episode.length else 0.0


@ALGORITHMS.register("rlpd")
class RLPD(SAC):
    """SAC trained on mixed batches; `config.demo_fraction` tells the data side how to mix."""

    config_class = RLPDConfig

    def __init__(
        self, obs_spec: DictSpec, action_spec: ArraySpec, config: RLPDConfig | None = None,
        *, seed: int = 0,
    ) -> None:
        config = config or RLPDConfig()
        batch_split(1, config.demo_fraction)  # a bad fraction fails at start, not mid-run
        super().__init__(obs_spec, action_spec, config, seed=seed)
