"""The kernel: specs, transitions, batches, registries and errors. Imports only numpy."""

from robot_rl.core.demo_side import DEMO_SIDE_SOURCES, batch_split, is_demo_side
from robot_rl.core.errors import (
    AuthError,
    CommsError,
    ConfigError,
    CorruptDataError,
    HardwareError,
    RegistryError,
    RobotRLError,
    RunDirError,
    SafetyError,
    SessionError,
    SpecError,
    StorageError,
)
from robot_rl.core.registry import Registry
from robot_rl.core.specs import ArraySpec, DictSpec
from robot_rl.core.types import Batch, Episode, Observation, Source, Transition

__all__ = [
    "DEMO_SIDE_SOURCES", "ArraySpec", "AuthError", "Batch", "CommsError", "ConfigError",
    "CorruptDataError", "DictSpec", "Episode", "HardwareError", "Observation", "Registry",
    "RegistryError", "RobotRLError", "RunDirError", "SafetyError", "SessionError", "Source",
    "SpecError", "StorageError", "Transition", "batch_split", "is_demo_side",
]
