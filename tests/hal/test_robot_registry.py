"""`robot=<kind>`: any robot in hal.ROBOTS built by name, today's overrides and old runs intact,
every kind behind the safety layer on every path an action takes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from hal import SafeRobot, TeleopCommand
from hal.fakes import PointRobot, ReplayTeleop
from hal.robots import ROBOTS
from policies.rewards import REWARDS
from robot_rl.config import compose_session, group_options, resume_config
from robot_rl.core import ConfigError, Source
from robot_rl.runtime.actor import Actor, ActorConfig, ScriptedDriver
from robot_rl.runtime.build import build_robot
from sim import MujocoArm

REPO = Path(__file__).resolve().parents[2]
FAKE = ["robot=fake", "task.name=wipe_table", "reward=human_label"]


def test_the_sim_and_the_fake_robot_are_built_by_name_behind_the_safety_layer():
    assert {"sim", "fake"} <= set(ROBOTS.names()) and {"sim", "fake"} <= set(
        group_options("robot"))
    arm, robot = build_robot(compose_session([]))
    assert isinstance(arm, MujocoArm) and arm.arm.name == "small_arm" and arm.robot_id == "sim0"
    fake, robot = build_robot(compose_session([*FAKE, "robot.id=bench1", "robot.joints=3"]))
    assert isinstance(fake, PointRobot) and isinstance(robot, SafeRobot) and robot.inner is fake
    assert fake.robot_id == "bench1" and fake.joint_pos.shape == (3,)


def test_todays_robot_overrides_keep_working():
    cfg = compose_session(["robot.arm=so101", "robot.cameras=[wrist_cam,side_cam]",
                           "robot.image_size=32", "robot.id=left", "robot.control_hz=5",
                           "robot.randomize.enabled=true", "robot.randomize.light_pos=0.1"])
    arm, robot = build_robot(cfg)
    assert (arm.arm.name, arm.cameras, arm.image_size, arm.robot_id, arm.control_hz) == (
        "so101", ("wrist_cam", "side_cam"), 32, "left", 5.0)
    assert arm.randomize is not None and arm.randomize.light_pos == 0.1
    assert robot.limits.control_hz == 5.0 and cfg.choices["robot"] == "sim"


@pytest.mark.parametrize("overrides, problem", [
    (["robot=fake"], "task=reach is a sim task"),
    (["robot=fake", "robot.arm=so101"], "unknown key 'robot.arm'"),
    (["task.name=wipe_table"], "robot=sim simulates its task's scene: unknown task"),
    (["robot.image_size=big"], "robot.image_size"),
    (["robot=ur99"], "choose robot= one of: fake, sim"),
    (["robot.name=ur99"], "robot.name: unknown robot 'ur99'"),
])
def test_a_robot_and_task_that_do_not_fit_are_one_clear_config_error(overrides, problem):
    with pytest.raises(ConfigError, match=problem):
        build_robot(compose_session(overrides))


def old_run_config(**robot: object) -> dict:
    """A run directory's config.yaml as written before the robot group existed."""
    cfg = OmegaConf.to_container(compose_session(["task=reach"]))
    cfg["robot"] = {k: v for k, v in cfg["robot"].items() if k != "name"} | robot
    del cfg["placement"]
    cfg["choices"].pop("robot")
    return cfg


def test_an_old_run_directory_resumes_as_robot_sim_with_its_own_robot(tmp_path):
    stored = OmegaConf.create(old_run_config(cameras=["wrist_cam"], image_size=24, id="armA"))
    OmegaConf.save(stored, tmp_path / "config.yaml")
    cfg = resume_config(OmegaConf.load(tmp_path / "config.yaml"), ["run.env_steps=20"], "old")
    assert cfg.choices["robot"] == "sim" and cfg.run.env_steps == 20
    arm, _ = build_robot(cfg)
    assert (arm.cameras, arm.image_size, arm.robot_id) == (("wrist_cam",), 24, "armA")
    replayed, _ = build_robot(OmegaConf.load(tmp_path / "config.yaml"))  # replay: as stored
    assert replayed.image_size == 24
    picked = resume_config(stored, [*FAKE], "old")  # a group picked anew composes fresh
    assert picked.robot.name == "fake" and "arm" not in picked.robot


THIRD_PARTY = '''
from dataclasses import dataclass

from hal.checker import Checker
from hal.fakes import PointRobot
from hal.robot import Health, HealthStatus
from hal.robots import RobotKind
from hal.units import declared_unit


@dataclass
class AcmeSettings:
    gain: float = 1.0


class AcmeKind(RobotKind):
    settings = AcmeSettings
    unit_type = "acme_arm"

    @classmethod
    def unit(cls, settings, setup):
        return setup.robot_id

    @classmethod
    def build(cls, settings, setup):
        return PointRobot(setup.robot_id, scale=setup.translation_scale * settings.gain)


class AcmeChecker(Checker):
    type = "acme_arm"

    def discover(self, node):
        return [declared_unit(d, node, robot=True, exclusive=True)
                for d in node.declared_of(self.type)]

    def validate(self, unit):
        return Health(HealthStatus.OK, f"acme controller {unit.meta['serial']}")
'''


def test_a_third_party_robot_and_its_checker_register_through_entry_points(tmp_path):
    (tmp_path / "acme_arm.py").write_text(THIRD_PARTY)
    dist = tmp_path / "acme_arm-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-arm\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[robot_rl.robots]\nacme = acme_arm:AcmeKind\n\n"
                                           "[robot_rl.checkers]\nacme_arm = acme_arm:AcmeChecker\n")
    lab = tmp_path / "lab.yaml"
    lab.write_text("units:\n  - {name: acme0, type: acme_arm, serial: A-17}\n")
    session = ["robot=acme", "robot.gain=2", "task.name=stack_cups", "reward=human_label"]
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}",
               ROBOT_RL_LEASE_DIR=str(tmp_path / "leases"))
    build = textwrap.dedent(f"""
        from robot_rl.config import compose_session, group_options
        from robot_rl.runtime.build import build_robot
        robot, safe = build_robot(compose_session({session!r}))
        print(type(robot).__name__, robot.robot_id, robot.scale, type(safe).__name__,
              "acme" in group_options("robot"))
    """)
    out = subprocess.run([sys.executable, "-c", build], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["PointRobot", "acme0", "0.1", "SafeRobot", "True"]
    check = subprocess.run([sys.executable, "-m", "robot_rl.cli", "hal", "check", *session,
                            "--hardware", str(lab)], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "robot    acme0" in check.stdout and "(acme_arm" in check.stdout


@pytest.fixture(params=["sim", "fake"])
def kind_robot(request):
    cfg = compose_session([] if request.param == "sim" else FAKE)
    raw, robot = build_robot(cfg)
    robot.connect()
    yield raw, robot
    robot.disconnect()


WILD = np.array([3.0, 0.0, 2.0, 0.0, 1.0], np.float32)  # beyond max_delta on x and z
CLIPPED = np.array([1.0, 0.0, 1.0, 0.0, 1.0], np.float32)


@pytest.mark.parametrize("path", ["policy", "human takeover", "scripted demo"])
def test_every_path_an_action_takes_is_clipped_and_counted_for_every_robot_kind(kind_robot, path):
    raw, robot = kind_robot
    teleop = {"policy": None,
              "human takeover": ReplayTeleop([TeleopCommand(WILD, takeover=True)]),
              "scripted demo": ScriptedDriver(lambda: WILD)}[path]
    takeover = Source.DEMO if path == "scripted demo" else Source.HUMAN
    actor = Actor(robot, REWARDS.get("human_label")(),
                  ActorConfig(max_steps=5, takeover_source=takeover), teleop=teleop)
    obs = robot.reset()
    proposal = WILD if path == "policy" else np.zeros(5, np.float32)
    t = actor.step(obs, proposal, 0, 0, 0)
    np.testing.assert_allclose(t.action, CLIPPED)
    assert t.source is {"policy": Source.POLICY, "human takeover": Source.HUMAN,
                        "scripted demo": Source.DEMO}[path]
    assert robot.events["clipped"] == 1 and robot.events["workspace"] == 0
    if isinstance(raw, PointRobot):
        np.testing.assert_allclose(raw.applied[-1], CLIPPED)  # what reached the "hardware"
