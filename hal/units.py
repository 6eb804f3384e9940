"""What discovery finds: nodes, the units on them, and units declared in a hardware file."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robot_rl.core import HardwareError

ENV_SUFFIX = "_env"
"""A declared field `host_env: ARM0_IP` means `host` is read from $ARM0_IP on the owning node."""


@dataclass(frozen=True)
class DeclaredUnit:
    """A unit a hardware file says exists (a network robot, a camera by serial) on `node`."""

    name: str
    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    node: str | None = None  # the host that owns it; None: every node that reads the file

    def resolve(self, env: Mapping[str, str]) -> dict[str, Any]:
        """The fields with every `X_env: VAR` replaced by `X: $VAR` read from `env`."""
        out: dict[str, Any] = {}
        for key, value in self.fields.items():
            if not key.endswith(ENV_SUFFIX):
                out[key] = value
                continue
            if str(value) not in env:
                raise HardwareError(
                    f"{self.name}: {key} names ${value}, which is not set on this node; "
                    f"export {value}=... on the machine that owns {self.name}")
            out[key[: -len(ENV_SUFFIX)]] = env[str(value)]
        return out


@dataclass(frozen=True)
class Node:
    """One machine: its name, the units declared for it and the environment its fields read."""

    name: str
    declared: tuple[DeclaredUnit, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def local(cls, declared: tuple[DeclaredUnit, ...] = ()) -> Node:
        return cls(socket.gethostname(), declared)

    def declared_of(self, unit_type: str) -> list[DeclaredUnit]:
        """The declared units of `unit_type` that this node owns."""
        return [u for u in self.declared
                if u.type == unit_type and u.node in (None, self.name)]


@dataclass(frozen=True)
class Unit:
    """A piece of hardware on a node: a GPU, the CPU, a camera, a gamepad, a robot."""

    name: str  # unique on its node: "cpu", "gpu:0", "sim:small_arm", "arm0"
    type: str  # the checker that found it
    node: str
    model: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    problem: str = ""  # why it is unusable, found at discovery (an unset env var, ...)
    robot: bool = False  # a robot a session can place an env worker on
    exclusive: bool = False
    """Serves one session at a time, so a session leases it (a real arm: yes; a sim arm, a GPU
    that sessions may share: no)."""


def declared_unit(declared: DeclaredUnit, node: Node, *, robot: bool = False,
                  exclusive: bool = False) -> Unit:
    """The Unit for a declared one, its fields resolved on `node` (or the reason they cannot be)."""
    try:
        fields, problem = declared.resolve(node.env), ""
    except HardwareError as exc:
        fields, problem = dict(declared.fields), str(exc)
    return Unit(declared.name, declared.type, node.name, str(fields.pop("model", "")), fields,
                problem, robot=robot, exclusive=exclusive)
