"""Learning: policies, algorithms and their pure loss functions.

Names load on first use (PEP 562), so a process that only scores rewards or types a `Policy`
(an edge with a remote policy) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Algorithm": "policies.base", "Policy": "policies.base", "Weights": "policies.base",
    "EncoderConfig": "policies.encoders", "ObservationEncoder": "policies.encoders",
    "FrozenCameraFeatures": "policies.features", "PretrainConfig": "policies.features",
    "pretrain_bc": "policies.features", "RLPD": "policies.rlpd", "RLPDConfig": "policies.rlpd",
    "SAC": "policies.sac", "SACConfig": "policies.sac", "SACPolicy": "policies.sac",
}
ALGORITHM_MODULES = ("policies.sac", "policies.rlpd")
"""The built-in algorithms; importing them registers them in ALGORITHMS."""

__all__ = ["ALGORITHMS", *sorted(_HOMES)]


def __getattr__(name: str) -> Any:
    if name == "ALGORITHMS":
        for module in ALGORITHM_MODULES:
            importlib.import_module(module)
        return importlib.import_module("policies.registry").ALGORITHMS
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'policies' has no attribute {name!r}")
