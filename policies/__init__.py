"""Learning: policies, algorithms and their pure loss functions."""

from policies.base import Algorithm, Policy, Weights
from policies.encoders import EncoderConfig, ObservationEncoder
from policies.features import FrozenCameraFeatures, PretrainConfig, pretrain_bc
from policies.registry import ALGORITHMS
from policies.rlpd import RLPD, RLPDConfig
from policies.sac import SAC, SACConfig, SACPolicy

__all__ = [
    "ALGORITHMS", "RLPD", "SAC", "Algorithm", "EncoderConfig", "FrozenCameraFeatures",
    "ObservationEncoder", "Policy", "PretrainConfig", "RLPDConfig", "SACConfig", "SACPolicy",
    "Weights", "pretrain_bc",
]
