"""The kernel: specs, transitions, batches, registries and errors. Imports only numpy."""

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
    SpecError,
    StorageError,
)
from robot_rl.core.registry import Registry
from robot_rl.core.specs import ArraySpec, DictSpec
from robot_rl.core.types import (
    DEMO_SIDE_SOURCES,
    Batch,
    Episode,
    Observation,
    Source,
    Transition,
    is_demo_side,
)

__all__ = [
    "DEMO_SIDE_SOURCES", "ArraySpec", "AuthError", "Batch", "CommsError", "ConfigError",
    "CorruptDataError", "DictSpec", "Episode", "HardwareError", "Observation", "Registry",
    "RegistryError", "RobotRLError", "RunDirError", "SafetyError", "Source", "SpecError",
    "StorageError", "Transition", "is_demo_side",
]
