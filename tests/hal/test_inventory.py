import json
import socket
import sys
import textwrap
import threading
from types import SimpleNamespace

import pytest

from hal.checker import CHECKERS, Checker
from hal.checkers import AcceleratorChecker, CameraChecker, NetworkRobotChecker
from hal.hardware_file import load_hardware
from hal.inventory import take_inventory
from hal.leases import FileLeaseStore, Holder, Lease
from hal.robot import Health, HealthStatus
from hal.units import DeclaredUnit, Node, Unit
from robot_rl.cli import main
from robot_rl.core import ConfigError, HardwareError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def network_robot(name: str, **fields) -> DeclaredUnit:
    return DeclaredUnit(name, "network_robot", fields)


def test_a_network_robot_at_a_closed_loopback_port_is_unhealthy_with_the_reason():
    node = Node("n1", (network_robot("arm0", host="127.0.0.1", port=closed_port()),))
    entry = take_inventory(node, [NetworkRobotChecker()]).get("arm0")
    assert entry.health.status is HealthStatus.DISCONNECTED
    assert "refused the connection" in entry.health.message


def test_a_listening_network_robot_is_healthy_and_its_host_comes_from_the_owning_node():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        declared = (network_robot("arm0", host_env="ARM0_HOST", port=port, model="ur5e"),)
        node = Node("n1", declared, env={"ARM0_HOST": "127.0.0.1"})
        entry = take_inventory(node, [NetworkRobotChecker()]).get("arm0")
    assert entry.health.ok, entry.health
    assert entry.unit.meta["host"] == "127.0.0.1" and entry.unit.model == "ur5e"


def test_an_unset_environment_variable_names_itself_and_the_node_to_set_it_on():
    node = Node("n1", (network_robot("arm0", host_env="ARM0_HOST", port=1),), env={})
    entry = take_inventory(node, [NetworkRobotChecker()]).get("arm0")
    assert entry.health.status is HealthStatus.FAULT
    assert "$ARM0_HOST" in entry.health.message and "export ARM0_HOST" in entry.health.message


def test_a_unit_declared_for_another_node_is_not_listed_here():
    declared = (DeclaredUnit("arm9", "network_robot", {"host": "127.0.0.1", "port": 1}, "other"),)
    assert take_inventory(Node("n1", declared), [NetworkRobotChecker()]).entries == ()


class HangingChecker(Checker):
    """A device that never answers: its probe must time out instead of hanging the inventory."""

    type = "hanging"
    timeout_s = 0.2

    def __init__(self) -> None:
        self.release = threading.Event()

    def discover(self, node: Node) -> list[Unit]:
        return [Unit("stuck0", self.type, node.name)]

    def validate(self, unit: Unit) -> Health:
        self.release.wait(30)
        return Health(HealthStatus.OK)


class BrokenDiscovery(Checker):
    type = "broken"

    def discover(self, node: Node) -> list[Unit]:
        raise OSError("bus error")

    def validate(self, unit: Unit) -> Health:
        raise AssertionError("nothing was discovered to validate")


def test_a_probe_that_hangs_or_fails_marks_its_unit_unhealthy_and_the_rest_still_report():
    hanging = HangingChecker()
    inventory = take_inventory(Node("n1"), [hanging, BrokenDiscovery(), AcceleratorChecker()])
    hanging.release.set()
    stuck, broken, cpu = (inventory.get(n) for n in ("stuck0", "broken", "cpu"))
    assert stuck.health.status is HealthStatus.FAULT and "no answer within 0.2 s" in (
        stuck.health.message)
    assert "discovery failed" in broken.health.message and "bus error" in broken.health.message
    assert cpu.health.ok and cpu.unit.meta["cores"] >= 1 and cpu.unit.meta["memory_gb"] > 0


def test_require_names_what_is_missing_and_unhealthy_and_lists_what_was_found():
    node = Node("n1", (network_robot("arm0", host="127.0.0.1", port=closed_port()),))
    inventory = take_inventory(node, [NetworkRobotChecker(), AcceleratorChecker()])
    assert [e.unit.name for e in inventory.require(["cpu"])] == ["cpu"]
    with pytest.raises(HardwareError) as err:
        inventory.require(["cpu", "arm0", "arm1"])
    message = str(err.value)
    assert "missing: arm1" in message and "unhealthy: arm0 (disconnected" in message
    assert "found: cpu, arm0" in message or "found: arm0, cpu" in message


def test_a_file_that_is_not_a_camera_is_an_unhealthy_camera(tmp_path):
    fake = tmp_path / "video0"
    fake.write_bytes(b"")
    with pytest.raises(HardwareError, match="not a V4L2 device"):
        CameraChecker().validate(Unit("video0", "camera", "n1", meta={"device": str(fake)}))
    declared = (DeclaredUnit("wrist", "camera", {"serial": "NO-SUCH-SERIAL"}),)
    entry = take_inventory(Node("n1", declared), [CameraChecker()]).get("wrist")
    assert entry.health.status is HealthStatus.FAULT and "NO-SUCH-SERIAL" in entry.health.message


def test_a_declared_unit_of_a_type_no_checker_knows_is_reported_not_dropped():
    entry = take_inventory(Node("n1", (DeclaredUnit("sonar0", "sonar"),))).get("sonar0")
    assert entry.health.status is HealthStatus.FAULT and "no checker for type 'sonar'" in (
        entry.health.message)


def test_a_third_party_checker_registers_through_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "acme_lidar.py").write_text(textwrap.dedent("""
        from hal.checker import Checker
        from hal.robot import Health, HealthStatus
        from hal.units import Unit

        class LidarChecker(Checker):
            type = "lidar"

            def discover(self, node):
                return [Unit(d.name, self.type, node.name, "acme-l1", dict(d.fields))
                        for d in node.declared_of(self.type)]

            def validate(self, unit):
                return Health(HealthStatus.OK, f"spinning at {unit.meta['rpm']} rpm")
    """))
    dist = tmp_path / "acme_lidar-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-lidar\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[robot_rl.checkers]\nlidar = acme_lidar:LidarChecker\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_lidar", raising=False)
    assert "lidar" in CHECKERS
    entry = take_inventory(Node("n1", (DeclaredUnit("lidar0", "lidar", {"rpm": 600}),))).get(
        "lidar0")
    assert entry.health.ok and entry.health.message == "spinning at 600 rpm"
    assert entry.unit.model == "acme-l1"


@pytest.mark.parametrize("text, problem", [
    ("units: [{name: arm0}]", "units[0] needs a `type` string"),
    ("units: {arm0: 1}", "a mapping with a `units:` list"),
    ("units: [{name: a, type: camera}, {name: a, type: camera}]", "declared twice"),
    ("units: [{name: a\n", "not valid YAML"),
])
def test_a_bad_hardware_file_names_the_file_and_what_is_wrong(tmp_path, text, problem):
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="lab.yaml") as err:
        load_hardware([path])
    assert problem in str(err.value)


def write_lab(tmp_path, port: int):
    path = tmp_path / "lab.yaml"
    path.write_text(f"units:\n  - {{name: arm0, type: network_robot, host: 127.0.0.1, "
                    f"port: {port}}}\n")
    return path


def test_hal_list_shows_the_cpu_the_sim_arms_and_the_declared_robot(tmp_path, capsys):
    lab = str(write_lab(tmp_path, closed_port()))
    assert main(["hal", "list", "--json", "--hardware", lab]) == 0
    units = {u["name"]: u for u in json.loads(capsys.readouterr().out)["units"]}
    assert units["cpu"]["health"] == "ok"
    assert units["sim:small_arm"]["health"] == "ok"
    assert units["sim:small_arm"]["type"] == "sim_robot"
    assert units["sim:small_arm"]["robot"] and not units["sim:small_arm"]["exclusive"]
    assert units["arm0"]["robot"] and units["arm0"]["exclusive"] and not units["cpu"]["robot"]
    assert units["arm0"]["health"] == "disconnected" and "refused" in units["arm0"]["message"]
    assert main(["hal", "list", "--hardware", lab]) == 0
    table = capsys.readouterr().out
    assert "sim:small_arm" in table and "refused the connection" in table


@pytest.fixture(autouse=True)
def lease_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBOT_RL_LEASE_DIR", str(tmp_path / "leases"))
    return tmp_path / "leases"


def test_hal_check_fails_fast_naming_the_missing_unit(tmp_path, capsys):
    lab = str(write_lab(tmp_path, closed_port()))
    assert main(["hal", "check", "cpu", "sim:small_arm", "--hardware", lab]) == 0
    assert "ok: cpu, sim:small_arm" in capsys.readouterr().out
    assert main(["hal", "check", "cpu", "arm0", "arm1", "--hardware", lab]) == 2
    err = capsys.readouterr().err
    assert "missing: arm1" in err and "unhealthy: arm0" in err and "found: cpu" in err


def test_hal_list_shows_who_holds_a_lease_and_hal_check_refuses_a_leased_unit(
        tmp_path, capsys, lease_dir):
    lab = str(write_lab(tmp_path, closed_port()))
    with Lease(FileLeaseStore(lease_dir), "sim:small_arm", Holder.this_process("reach-7")):
        assert main(["hal", "list", "--json", "--hardware", lab]) == 0
        units = {u["name"]: u for u in json.loads(capsys.readouterr().out)["units"]}
        assert units["sim:small_arm"]["lease"]["holder"].startswith("session reach-7 (pid ")
        assert units["cpu"]["lease"] is None
        assert main(["hal", "list", "--hardware", lab]) == 0
        assert "reach-7 (pid" in capsys.readouterr().out
        assert main(["hal", "check", "sim:small_arm", "--hardware", lab]) == 2
        assert "leased: sim:small_arm to session reach-7" in capsys.readouterr().err
    assert main(["hal", "check", "sim:small_arm", "--hardware", lab]) == 0


def test_input_devices_are_units_while_plugged_in(monkeypatch):
    from hal import gamepad, spacemouse
    from hal.checkers import InputDeviceChecker

    pads = [{"index": 0, "name": "Xbox Wireless Controller", "guid": "0300abcd", "axes": 6,
             "buttons": 11}]
    mice = [{"path": "/dev/hidraw3", "product": "SpaceMouse Compact", "serial": "",
             "vendor_id": 0x256F, "product_id": 0xC635}]
    monkeypatch.setattr(gamepad, "list_gamepads", lambda: pads)
    monkeypatch.setattr(spacemouse, "list_spacemice", lambda: mice)
    inventory = take_inventory(Node("n1"), [InputDeviceChecker()])
    assert [(e.unit.name, e.unit.model, e.health.ok) for e in inventory.entries] == [
        ("gamepad:0", "Xbox Wireless Controller", True),
        ("spacemouse:0", "SpaceMouse Compact", True)]
    pads.clear()  # unplugged
    health = InputDeviceChecker().validate(inventory.get("gamepad:0").unit)
    assert health.status is HealthStatus.DISCONNECTED and "no longer plugged in" in health.message


def test_a_network_robot_with_a_port_that_is_not_a_number_says_so():
    node = Node("n1", (network_robot("arm0", host="127.0.0.1", port="http"),))
    entry = take_inventory(node, [NetworkRobotChecker()]).get("arm0")
    assert entry.health.status is HealthStatus.FAULT
    assert "`port` must be a number" in entry.health.message and "'http'" in entry.health.message


def test_hal_check_with_session_overrides_checks_the_units_that_session_needs(tmp_path, capsys):
    lab = str(write_lab(tmp_path, closed_port()))
    assert main(["hal", "check", "--hardware", lab]) == 0
    out = capsys.readouterr().out
    assert "ok: the session can be placed on" in out and "robot    sim:small_arm" in out
    assert main(["hal", "check", "robot.arm=so101", "teleop=gamepad", "teleop.params.index=3",
                 "--hardware", lab]) == 2
    err = capsys.readouterr().err
    assert "missing: gamepad:3 on" in err and "unhealthy" not in err  # the so101 arm is fine


def test_cuda_gpus_become_units_with_memory_compute_capability_and_a_health_each(monkeypatch):
    """The CUDA path through torch's API, with torch.cuda answering as a two-GPU node would (this
    machine has no GPU); a CUDA error on one marks only that one faulted."""
    import torch

    from hal.placement import node_resources

    gib = 1024**3
    props = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=80 * gib, major=9, minor=0)

    def mem_get_info(index: int) -> tuple[int, int]:
        if index == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return 60 * gib, 80 * gib

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    inventory = take_inventory(Node("n1"), [AcceleratorChecker()])
    gpu0, gpu1 = inventory.get("gpu:0"), inventory.get("gpu:1")
    assert gpu0.unit.model == "NVIDIA H100 80GB HBM3" and dict(gpu0.unit.meta) == {
        "index": 0, "memory_gb": 80.0, "compute_capability": "9.0"}
    assert gpu0.health.ok and gpu0.health.message == "60.0 of 80.0 GiB free"
    assert gpu1.health.status is HealthStatus.FAULT and "illegal memory access" in (
        gpu1.health.message)
    assert node_resources(inventory).num_gpus == 2
