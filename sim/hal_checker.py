"""The sim arms as hal units: `sim:<arm>` for each arm in `ARMS`, healthy when its scene compiles.

Registered in `hal.checker.CHECKERS` through the `robot_rl.checkers` entry point, so hal finds
sim robots without importing sim.
"""

from __future__ import annotations

from hal.checker import CHECKERS, Checker
from hal.robot import Health, HealthStatus
from hal.units import Node, Unit
from sim.arm import compile_scene
from sim.arm_models import ARMS

UNIT_PREFIX = "sim:"


def unit_name(arm: str) -> str:
    """The inventory unit of a sim arm model: `sim:small_arm`."""
    return UNIT_PREFIX + arm


@CHECKERS.register("sim_robot")
class SimRobotChecker(Checker):
    """One unit per registered arm model; validating it compiles the arm's MuJoCo scene.

    A sim arm is a robot but not an exclusive one: any number of sessions may simulate it.
    """

    type = "sim_robot"
    timeout_s = 60.0  # the SO-101 meshes take seconds to load on a busy machine

    def discover(self, node: Node) -> list[Unit]:
        units = []
        for arm in ARMS.names():
            model = ARMS.get(arm)
            units.append(Unit(unit_name(arm), self.type, node.name, arm,
                              {"arm": arm, "joints": len(model.arm_joints)}, robot=True))
        return units

    def validate(self, unit: Unit) -> Health:
        model = compile_scene(str(unit.meta["arm"]), "")
        return Health(HealthStatus.OK, f"MuJoCo scene compiles ({model.nbody} bodies)")
