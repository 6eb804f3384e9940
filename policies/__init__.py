"""Learning: policies, algorithms and their pure loss functions."""

from policies.base import Algorithm, Policy, Weights
from policies.encoders import EncoderConfig, ObservationEncoder
from policies.features import FrozenCameraFeatures, PretrainConfig, pretrain_bc
from policies.registry import ALGORITHMS
from policies.rlpd import RLPD, RLPDConfig, is_demo_side
from policies.sac import SAC, SACConfig, SACPolicy

__all__ = [
    "ALGORITHMS", "RLPD", "SAC", "Algorithm", "EncoderConfig", "FrozenCameraFeatures",
    "ObservationEncoder", "Policy", "PretrainConfig", "RLPDConfig", "SACConfig", "SACPolicy",
    "Weights", "is_demo_side", "pretrain_bc",
]
