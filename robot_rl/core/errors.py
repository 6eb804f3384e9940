"""Typed errors shared by every package: each names what is wrong and what to do."""

from __future__ import annotations


class RobotRLError(Exception):
    """Base of every error robot_rl raises on purpose."""


class ConfigError(RobotRLError):
    """A configuration value or override is wrong."""


class SpecError(RobotRLError, ValueError):
    """An array does not match its spec (shape, dtype or bounds)."""


class RegistryError(RobotRLError, KeyError):
    """A name is not registered, or registered twice."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class RunDirError(RobotRLError):
    """A run directory is missing, unreadable or not a robot_rl run."""


class StorageError(RobotRLError):
    """Persistent data could not be written or read."""


class CorruptDataError(StorageError):
    """Stored data failed an integrity check."""


class HardwareError(RobotRLError):
    """A robot, camera or teleop device failed or is unreachable."""


class SafetyError(RobotRLError):
    """An action was refused by the safety layer."""


class CommsError(RobotRLError):
    """A network peer misbehaved, timed out or refused us."""


class AuthError(CommsError):
    """A peer failed authentication."""


class SessionError(RobotRLError):
    """A part of a running session (a worker, the learner, the writer) failed."""
