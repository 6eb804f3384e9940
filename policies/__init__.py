"""Learning: policies, algorithms and their pure loss functions."""

from policies.base import Algorithm, Policy, Weights
from policies.registry import ALGORITHMS
from policies.sac import SAC, SACConfig, SACPolicy

__all__ = ["ALGORITHMS", "SAC", "Algorithm", "Policy", "SACConfig", "SACPolicy", "Weights"]
