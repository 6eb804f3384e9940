"""Placement planned against inventories before anything moves: every problem in one error."""

from __future__ import annotations

import json

import pytest

from hal.inventory import Entry, Inventory
from hal.leases import FileLeaseStore, Holder, Lease
from hal.placement import (
    Assignment,
    PlacementError,
    PlacementSpec,
    node_resources,
    plan_placement,
    requests,
)
from hal.robot import Health, HealthStatus
from hal.units import Unit
from robot_rl.cli import main
from robot_rl.config import compose_session
from robot_rl.runtime.build import (
    build_robot,
    placed_robot_config,
    plan_session,
    session_robots,
)
from robot_rl.runtime.ray.placement import actor_options

OK = Health(HealthStatus.OK)


def sim_arm(arm: str, node: str = "lab1", health: Health = OK) -> Entry:
    return Entry(Unit(f"sim:{arm}", "sim_robot", node, arm, {"arm": arm}, robot=True), health)


def net_arm(name: str, node: str = "lab1", health: Health = OK) -> Entry:
    return Entry(Unit(name, "network_robot", node, "ur5e", {"host": "10.0.0.7", "port": 30002},
                      robot=True, exclusive=True), health)


def accelerators(node: str, gpus: int = 0) -> list[Entry]:
    return [Entry(Unit("cpu", "accelerator", node, "epyc"), OK)] + [
        Entry(Unit(f"gpu:{i}", "accelerator", node, "h100", {"index": i}), OK)
        for i in range(gpus)]


def lab(*extra: Entry, gpus: int = 2) -> Inventory:
    return Inventory("lab1", (*accelerators("lab1", gpus), sim_arm("small_arm"),
                              sim_arm("so101"), *extra))


def spec(*robots: str, learner: str = "cpu", robot_type: str = "sim_robot",
         **groups: list[str]) -> PlacementSpec:
    return PlacementSpec(robots, robot_type, learner, {g: tuple(n) for g, n in groups.items()})


def test_two_different_arms_and_a_learner_on_a_gpu_each_get_exactly_their_units():
    inventory = lab()
    plan = plan_placement(spec("sim:small_arm", "sim:so101", learner="gpu:1"), [inventory])
    assert [(a.part, a.unit.name, a.unit.node) for a in (*plan.robots, plan.learner)] == [
        ("robot", "sim:small_arm", "lab1"), ("robot", "sim:so101", "lab1"),
        ("learner", "gpu:1", "lab1")]
    assert plan.exclusive_units() == []  # sim arms serve any number of sessions
    assert requests(plan.robots[1]) == (0, {"host:lab1": 0.001, "robot:sim:so101": 1.0})
    assert requests(plan.learner) == (1, {"host:lab1": 0.001, "gpu:1": 1.0})
    offered = node_resources(inventory)
    assert offered.num_gpus == 2 and offered.resources == {
        "host:lab1": 1000.0, "gpu:0": 1.0, "gpu:1": 1.0, "robot:sim:small_arm": 1000.0,
        "robot:sim:so101": 1000.0}  # a sim arm: as many robots as a session wants
    gpus, resources = offered.ray_start_args()
    assert gpus == "--num-gpus=2" and " " not in resources  # safe in `ray start $(...)`
    assert json.loads(resources.removeprefix("--resources=")) == offered.resources


def test_each_part_s_process_sees_only_its_units():
    robot = actor_options(Assignment("robot", net_arm("arm0").unit))
    assert robot["num_gpus"] == 0 and robot["resources"] == {"host:lab1": 0.001,
                                                             "robot:arm0": 1.0}
    assert robot["runtime_env"]["env_vars"] == {
        "ROBOT_RL_UNIT": "arm0", "CUDA_VISIBLE_DEVICES": "", "ROBOT_RL_ROBOT_ENDPOINT":
        "10.0.0.7:30002"}
    gpu = actor_options(Assignment("learner", accelerators("lab1", 2)[2].unit))
    assert gpu["num_gpus"] == 1 and gpu["runtime_env"]["env_vars"] == {
        "ROBOT_RL_UNIT": "gpu:1", "CUDA_VISIBLE_DEVICES": "1",
        "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}
    cpu = actor_options(Assignment("learner", accelerators("lab1")[0].unit, pinned=False))
    assert cpu["num_gpus"] == 0 and cpu["resources"] == {}  # any node's CPU
    assert cpu["runtime_env"]["env_vars"]["CUDA_VISIBLE_DEVICES"] == ""


def test_every_problem_is_named_at_once_with_everything_found(tmp_path):
    store = FileLeaseStore(tmp_path / "leases")
    broken = Health(HealthStatus.FAULT, "physics unstable")
    inventory = lab(net_arm("arm0", health=OK), sim_arm("panda", health=broken), gpus=1)
    with Lease(store, "arm0", Holder.this_process("pick-3")):
        with pytest.raises(PlacementError) as err:
            plan_placement(spec("sim:small_arm", "sim:small_arm", "arm9", "sim:panda", "gpu:0",
                                "arm0", "arm0", learner="gpu:4"), [inventory], leases=store)
    text = str(err.value)
    assert "sim:small_arm" not in text.split("Found")[0]  # two robots may simulate one arm
    for problem in ("double-booked: arm0 (robot arm0 and robot arm0)",
                    "missing: arm9", "unhealthy: sim:panda on lab1 (fault: physics unstable)",
                    "gpu:0 is a accelerator, not a robot",
                    "arm0 is a network_robot unit; this session's robot kind drives sim_robot",
                    "leased: arm0 to session pick-3 (pid", "missing: gpu:4",
                    "Found: lab1: cpu (ok), gpu:0 (ok), sim:small_arm (ok), sim:so101 (ok), "
                    "arm0 (ok), sim:panda (fault)"):
        assert problem in text
    assert "\n" not in text


def test_node_groups_pin_parts_and_a_gpu_is_never_given_twice():
    cloud = Inventory("gpu-box", tuple(accelerators("gpu-box", 1)))
    inventories = [lab(net_arm("arm0"), gpus=1), cloud]
    plan = plan_placement(spec("arm0", learner="gpu@cloud", robot_type="network_robot",
                               cloud=["gpu-box"]), inventories)
    assert (plan.learner.unit.name, plan.learner.unit.node) == ("gpu:0", "gpu-box")
    assert plan.exclusive_units() == ["arm0"]
    anywhere = plan_placement(spec("sim:so101"), inventories)
    assert anywhere.learner.unit.name == "cpu" and not anywhere.learner.pinned
    pinned = plan_placement(spec("sim:so101", learner="cpu@gpu-box"), inventories)
    assert pinned.learner.pinned and pinned.learner.unit.node == "gpu-box"
    with pytest.raises(PlacementError, match="missing: gpu@lab9"):
        plan_placement(spec("sim:so101", learner="gpu@lab9", lab9=["lab9"]), inventories)
    with pytest.raises(PlacementError) as err:
        plan_placement(spec("sim:so101", learner="cpu@moon", cloud=["gpu-box"]), inventories)
    assert str(err.value).startswith("placement: cpu@moon: no node or node group 'moon' "
                                     "(groups: cloud). Found: lab1: cpu (ok)")


@pytest.mark.parametrize("learner", ["tpu", "gpu:x", "gpu:"])
def test_a_learner_unit_that_is_not_cpu_or_a_gpu_says_what_to_write(learner):
    with pytest.raises(PlacementError, match=f"placement.learner={learner}: use cpu | gpu"):
        plan_placement(spec("sim:so101", learner=learner), [lab()])


def test_a_session_config_places_its_robots_each_building_the_arm_of_its_unit():
    cfg = compose_session(["robots={a: {}, b: {arm: so101}, c: {}}", "robot.image_size=32"])
    plan = plan_session(cfg, [lab()])
    assert [a.unit.name for a in plan.robots] == ["sim:small_arm", "sim:so101", "sim:small_arm"]
    configs = [placed_robot_config(c, a)
               for c, a in zip(session_robots(cfg).values(), plan.robots, strict=True)]
    assert [(c.robot.id, c.robot.arm, c.robot.image_size) for c in configs] == [
        ("a", "small_arm", 32), ("b", "so101", 32), ("c", "small_arm", 32)]
    arm, _ = build_robot(configs[1])
    assert arm.arm.name == "so101" and arm.robot_id == "b"
    single = compose_session(["robot.arm=so101"])  # no robots listed: the robot group's one
    only = plan_session(single, [lab()]).robots
    assert [a.unit.name for a in only] == ["sim:so101"]
    assert placed_robot_config(single, only[0]).robot.id == "sim0"
    fake = ["robot=fake", "task.name=wipe", "reward=human_label"]
    with pytest.raises(PlacementError, match="arm0 is a network_robot unit"):
        plan_session(compose_session([*fake, "robots={arm0: {}}"]), [lab(net_arm("arm0"))])


def test_hal_check_names_each_placement_problem_and_hal_resources_prints_ray_s_arguments(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROBOT_RL_LEASE_DIR", str(tmp_path / "leases"))
    hw = tmp_path / "lab.yaml"
    hw.write_text("units:\n  - {name: bench0, type: fake_robot}\n"
                  "  - {name: bench1, type: fake_robot, fault: e-stop pressed}\n")
    fake = ["robot=fake", "task.name=wipe", "reward=human_label"]
    assert main(["hal", "check", *fake, "robots={bench0: {}, bench1: {}, ghost: {}}",
                 "placement.learner=gpu:0", "--hardware", str(hw)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unhealthy: bench1 on" in err and "(fault: e-stop " in err
    assert "missing: gpu:0" in err
    assert "missing: ghost" in err
    assert main(["hal", "check", *fake, "robots={bench0: {}}", "--hardware", str(hw)]) == 0
    assert "robot    bench0" in capsys.readouterr().out
    assert main(["hal", "resources", "--json", "--hardware", str(hw)]) == 0
    offered = json.loads(capsys.readouterr().out)
    assert offered["num_gpus"] == 0
    assert {"robot:bench0", "robot:bench1", "robot:sim:so101"} <= set(offered["resources"])
