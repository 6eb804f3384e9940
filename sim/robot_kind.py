"""`robot=sim`: a MuJoCo arm doing the session's sim task, as a kind in `hal.ROBOTS`.

Registered through the `robot_rl.robots` entry point, so hal and the composition root build it
by name like any other robot.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from hal.robot import Robot
from hal.robots import ROBOTS, RobotKind, RobotSetup
from hal.units import Unit
from robot_rl.core import ConfigError
from sim.arm import MujocoArm
from sim.hal_checker import SimRobotChecker, unit_name
from sim.randomization import RandomizationConfig
from sim.tasks import Task


@dataclass
class RandomizeSettings(RandomizationConfig):
    """Domain randomization of the scene at every reset (seeded by `seed`), off by default."""

    enabled: bool = False


@dataclass
class SimArmSettings:
    """The keys of `robot=sim` beyond the common ones (launch/robot/sim.yaml says what each is)."""

    arm: str = "small_arm"
    yaw_scale: float = 0.2
    cameras: list[str] = field(default_factory=list)
    image_size: int = 128
    randomize: RandomizeSettings = field(default_factory=RandomizeSettings)
    fault_file: str | None = None  # while this file exists the arm reports a fault (a drill)


@ROBOTS.register("sim")
class SimArmKind(RobotKind):
    """A `MujocoArm` of `ARMS` in the task's scene; placed on a `sim:<arm>` unit, it is that arm."""

    settings = SimArmSettings
    unit_type = SimRobotChecker.type
    simulated = True

    @classmethod
    def unit(cls, settings: SimArmSettings, setup: RobotSetup) -> str:
        return unit_name(settings.arm)

    @classmethod
    def for_unit(cls, settings: SimArmSettings, unit: Unit) -> SimArmSettings:
        return replace(settings, arm=str(unit.meta["arm"]))

    @classmethod
    def build(cls, settings: SimArmSettings, setup: RobotSetup) -> Robot:
        if not isinstance(setup.scene, Task):
            raise ConfigError("robot=sim needs a sim task to build its scene")
        return MujocoArm(
            setup.scene, arm=settings.arm, control_hz=setup.control_hz, seed=setup.seed,
            robot_id=setup.robot_id, translation_scale=setup.translation_scale,
            yaw_scale=settings.yaw_scale, cameras=list(settings.cameras),
            image_size=settings.image_size,
            randomize=settings.randomize if settings.randomize.enabled else None,
            fault_file=None if settings.fault_file is None else Path(settings.fault_file))
