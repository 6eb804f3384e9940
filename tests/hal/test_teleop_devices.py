from pathlib import Path

import numpy as np
import pytest
import yaml

from hal import ESTOP, TELEOPS
from hal.device_teleop import DeviceMapping, Takeover
from hal.fakes import FakeHidDevice, FakeJoystick, PointRobot, spacemouse_reports
from hal.gamepad import GamepadTeleop, open_gamepad
from hal.spacemouse import SpaceMouseState, SpaceMouseTeleop, open_spacemouse
from robot_rl.core import ArraySpec, ConfigError, HardwareError

LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "teleop"
SPEC = ArraySpec((5,), "float32", -1.0, 1.0)


def mapping_of(device: str) -> DeviceMapping:
    """The mapping the shipped launch/teleop/<device>.yaml configures."""
    params = yaml.safe_load((LAUNCH / f"{device}.yaml").read_text())["params"]
    return DeviceMapping.from_params(params["axes"], params["buttons"], params["dead_zone"],
                                     params["scale"])


def test_the_dead_zone_zeroes_small_readings_and_the_rest_is_rescaled_signed_and_clipped():
    mapping = DeviceMapping.from_params({0: "x", 1: "-y", 2: "yaw"}, dead_zone=0.2, scale=2.0)
    np.testing.assert_allclose(mapping.motion([0.1, -0.2, 0.0]), [0, 0, 0, 0])
    np.testing.assert_allclose(mapping.motion([0.6, 0.6, -1.0]), [1.0, -1.0, 0, -1.0])
    np.testing.assert_allclose(mapping.motion([0.3, 0.0, 0.0]), [0.25, 0, 0, 0])


@pytest.mark.parametrize("axes, buttons, problem", [
    ({0: "roll"}, {}, "'roll' is not one of x, y, z, yaw"),
    ({0: "x"}, {3: "fire"}, "'fire' is not one of close, estop"),
])
def test_a_bad_mapping_names_the_axis_or_button(axes, buttons, problem):
    with pytest.raises(ConfigError, match=problem):
        DeviceMapping.from_params(axes, buttons)


def test_takeover_survives_brief_zero_readings_and_returns_after_release_after_idle_reads():
    takeover = Takeover(release_after=3)
    readings = [True, False, False, True, False, False, False, False]
    assert [takeover.update(r) for r in readings] == [
        True, True, True, True, True, True, False, False]


def gamepad(joystick: FakeJoystick) -> GamepadTeleop:
    return GamepadTeleop(SPEC, mapping_of("gamepad"), joystick, pump=lambda: None,
                         release_after=3)


def test_the_gamepad_mapping_drives_the_end_effector_and_hands_back_with_hysteresis():
    pad = FakeJoystick()
    teleop = gamepad(pad)
    assert teleop.read() is None  # sticks centred: the policy drives
    pad.axes[1] = -1.0  # left stick fully up
    command = teleop.read()
    assert command.takeover
    np.testing.assert_allclose(command.action, [1.0, 0, 0, 0, -1.0])
    pad.axes[1] = -0.1  # inside the 0.15 dead zone: a brief zero while the stick recentres
    for _ in range(2):
        command = teleop.read()
        assert command.takeover
        np.testing.assert_allclose(command.action, [0, 0, 0, 0, -1.0])
    assert teleop.read() is None  # third idle reading: back to the policy


def test_gamepad_buttons_close_the_gripper_label_once_per_press_and_estop():
    pad = FakeJoystick()
    teleop = gamepad(pad)
    pad.pressed = {0}  # A: close
    assert teleop.read().action[4] == 1.0
    pad.pressed = {2}  # X: success, held down over two reads
    assert teleop.read().label is True
    assert teleop.read().label is None
    pad.pressed = {6}  # Back: e-stop
    assert ESTOP in teleop.read().buttons
    pad.pressed = {5}  # RB: hold to take over without moving
    for _ in range(5):
        command = teleop.read()
        np.testing.assert_allclose(command.action, [0, 0, 0, 0, 1.0])


def test_the_real_pygame_path_on_sdl_dummy_drivers_names_the_missing_joystick():
    with pytest.raises(HardwareError, match="no joystick 99; SDL sees"):
        open_gamepad(99)
    with pytest.raises(HardwareError, match="no joystick 99"):
        TELEOPS.get("gamepad").for_robot(PointRobot(), 0, index=99, axes={0: "x"})


def spacemouse(device: FakeHidDevice) -> SpaceMouseTeleop:
    return SpaceMouseTeleop(SPEC, mapping_of("spacemouse"), device, release_after=3)


@pytest.mark.parametrize("combined", [False, True])
def test_spacemouse_reports_in_bytes_become_actions(combined):
    device = FakeHidDevice()
    teleop = spacemouse(device)
    assert teleop.read() is None
    device.send(spacemouse_reports(translation=(0, -350, 0), rotation=(0, 0, 175),
                                   combined=combined))
    command = teleop.read()
    assert command.takeover
    expected_yaw = -(0.5 - 0.1) / 0.9  # half a twist right, past the dead zone, reversed
    np.testing.assert_allclose(command.action, [1.0, 0, 0, expected_yaw, -1.0], rtol=1e-6)
    device.send(spacemouse_reports())  # the cap released: zeros, then back to the policy
    assert [teleop.read() is None for _ in range(3)] == [False, False, True]


def test_spacemouse_buttons_and_odd_reports():
    state = SpaceMouseState()
    state.update(bytes([3, 0b10, 0]))
    assert state.buttons == {1}
    state.update(bytes([1, 0x10, 0x27]))  # too short for an axis report: ignored
    state.update(bytes([23, 1, 2, 3, 4, 5, 6]))  # a report id this decoder does not know
    np.testing.assert_array_equal(state.axes, np.zeros(6))
    state.update(spacemouse_reports(translation=(10000, 0, 0))[0])
    assert state.axes[0] == 1.0  # beyond full scale clips
    device = FakeHidDevice()
    teleop = spacemouse(device)
    device.send(spacemouse_reports(buttons=0b01))
    assert teleop.read().action[4] == 1.0  # left button closes
    teleop.close()
    assert device.closed


def test_the_real_hidapi_path_names_the_missing_spacemouse():
    with pytest.raises(HardwareError, match="no SpaceMouse 99; hidapi sees"):
        open_spacemouse(99)


def test_device_teleops_refuse_a_robot_of_another_action_layout():
    with pytest.raises(ConfigError, match="drives \\[dx, dy, dz, dyaw, gripper\\]"):
        SpaceMouseTeleop(ArraySpec((7,), "float32"), mapping_of("spacemouse"), FakeHidDevice())
