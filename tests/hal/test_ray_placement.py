"""A heterogeneous two-robot session and its learner placed through Ray resources on a local
instance, in a private network namespace with only loopback up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, os, tempfile
    from pathlib import Path
    import numpy as np
    import ray
    from omegaconf import OmegaConf
    from hal.checkers import AcceleratorChecker
    from hal.inventory import Entry, Inventory, take_inventory
    from hal.placement import PlacementError
    from hal.robot import Health, HealthStatus
    from hal.units import Node, Unit
    from robot_rl.config import compose_session
    from hal.placement import node_resources
    from robot_rl.runtime.build import (build_robot, local_inventory, placed_robot_config,
                                        plan_session, session_robots)
    from robot_rl.runtime.ray.cluster import start_local_ray
    from robot_rl.runtime.ray.placement import (actor_options, check_ray_resources,
                                                cluster_inventories)
    from sim.hal_checker import SimRobotChecker

    node = Node.local()
    found = take_inventory(node, [AcceleratorChecker(), SimRobotChecker()])
    # No GPU here: two are declared to Ray, which schedules them as it would real ones.
    gpus = tuple(Entry(Unit(f"gpu:{i}", "accelerator", node.name, "declared", {"index": i}),
                       Health(HealthStatus.OK)) for i in range(2))
    inventory = Inventory(node.name, found.entries + gpus)
    cfg = compose_session(["robots={small: {arm: small_arm}, tall: {arm: so101}}",
                           "placement.learner=gpu:1", "robot.image_size=16"])
    plan = plan_session(cfg, [inventory])
    start_local_ray(Path(tempfile.mkdtemp()) / "ray.log", node_resources(inventory))
    check_ray_resources(plan)

    @ray.remote(num_cpus=0)
    class Part:
        def __init__(self, cfg):
            self.cfg = cfg

        def report(self):
            out = {"env": {k: os.environ.get(k) for k in (
                       "ROBOT_RL_UNIT", "CUDA_VISIBLE_DEVICES")},
                   "resources": ray.get_runtime_context().get_assigned_resources()}
            if self.cfg is not None:
                arm, robot = build_robot(OmegaConf.create(self.cfg))
                robot.connect()
                robot.reset()
                applied = robot.send_action(np.array([2.0, 0, 0, 0, 0], np.float32))
                out["robot"] = [arm.robot_id, arm.arm.name, float(applied[0])]
                robot.disconnect()
            return out

    robots = [Part.options(**actor_options(a)).remote(
        OmegaConf.to_container(placed_robot_config(c, a)))
        for c, a in zip(session_robots(cfg).values(), plan.robots, strict=True)]
    learner = Part.options(**actor_options(plan.learner)).remote(None)
    reports = ray.get([p.report.remote() for p in [*robots, learner]])
    left = ray.available_resources()
    nodes = cluster_inventories(local_inventory)
    missing = Inventory(node.name, inventory.entries + (Entry(Unit(
        "arm7", "fake_robot", node.name, "", {}, robot=True, exclusive=True),
        Health(HealthStatus.OK)),))
    try:
        check_ray_resources(plan_session(compose_session(
            ["robot=fake", "task.name=wipe", "reward=human_label", "robots={arm7: {}}"]),
            [missing]))
        refused = ""
    except PlacementError as exc:
        refused = str(exc)
    ray.shutdown()
    print(json.dumps({"reports": reports, "left": {k: left.get(k, 0.0) for k in (
        "robot:sim:small_arm", "robot:sim:so101", "gpu:0", "gpu:1", "GPU")},
        "nodes": [[i.node, [e.unit.name for e in i.entries]] for i in nodes],
        "node": node.name, "refused": refused}))
""")


@pytest.mark.slow
def test_two_different_sim_arms_and_a_learner_each_see_only_their_unit_on_local_ray(tmp_path):
    script = tmp_path / "placed.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {sys.executable} {script}"],
        cwd=REPO, capture_output=True, text=True, timeout=400,
        env=dict(os.environ, MUJOCO_GL="egl", PYTHONPATH=str(REPO),
                 ROBOT_RL_LEASE_DIR=str(tmp_path / "leases")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    small, so101, learner = out["reports"]
    host = f"host:{out['node']}"
    assert small["robot"] == ["small", "small_arm", 1.0]  # clipped by its safety layer
    assert so101["robot"] == ["tall", "so101", 1.0]
    assert small["env"] == {"ROBOT_RL_UNIT": "sim:small_arm", "CUDA_VISIBLE_DEVICES": ""}
    assert so101["resources"] == {"robot:sim:so101": 1.0, host: 0.001}
    assert learner["env"] == {"ROBOT_RL_UNIT": "gpu:1", "CUDA_VISIBLE_DEVICES": "1"}
    assert learner["resources"] == {"GPU": 1.0, "gpu:1": 1.0, host: 0.001}
    # while they live, Ray has no gpu:1 left for anyone else; a sim arm serves any number
    assert out["left"] == {"robot:sim:small_arm": 999.0, "robot:sim:so101": 999.0, "gpu:0": 1.0,
                           "gpu:1": 0.0, "GPU": 1.0}
    [(node, units)] = out["nodes"]  # this node's inventory, taken by a task on the node
    assert node == out["node"] and {"cpu", "sim:small_arm", "sim:so101", "arm0"} <= set(units)
    assert "Ray offers no robot:arm7 (for the robot on" in out["refused"]
    assert "$(robot-rl hal resources)" in out["refused"]
