import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hal import SafeRobot
from hal.fakes import PointRobot
from hal.left_safe import Terminated, robot_left_safe

SESSION = textwrap.dedent("""
    import itertools, signal, sys, time
    from pathlib import Path
    import numpy as np
    from hal import SafeRobot
    from hal.fakes import PointRobot
    from hal.left_safe import robot_left_safe

    # Ctrl-C raises KeyboardInterrupt even where the test runner ignores SIGINT (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    robot = SafeRobot(PointRobot(journal=Path(sys.argv[1])))
    robot.connect()
    with robot_left_safe(robot):
        for step in itertools.count():
            robot.send_action(np.full(5, 0.5, np.float32))
            if step == 2:
                print("running", flush=True)
            if sys.argv[2] == "raise" and step == 5:
                raise RuntimeError("the policy crashed")
            time.sleep(0.01)
""")


@pytest.fixture
def session(tmp_path):
    script, journal = tmp_path / "session.py", tmp_path / "journal"
    script.write_text(SESSION)

    def run(mode: str, stop_with: int | None = None) -> tuple[int, list[str], str]:
        proc = subprocess.Popen([sys.executable, str(script), str(journal), mode],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "running"
            if stop_with is not None:
                proc.send_signal(stop_with)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, journal.read_text().splitlines(), err

    return run


@pytest.mark.parametrize("stop_with, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_robot_whose_process_is_terminated_is_held_then_disconnected(session, stop_with, code):
    returncode, journal, _ = session("loop", stop_with)
    assert returncode == code
    assert journal[0] == "action 0.5 0.5 0.5 0.5 0.5"
    assert journal[-2:] == ["action 0 0 0 0 0", "disconnect"]


def test_ctrl_c_leaves_the_robot_held_and_disconnected(session):
    returncode, journal, err = session("loop", signal.SIGINT)
    assert returncode != 0 and "KeyboardInterrupt" in err
    assert journal[-2:] == ["action 0 0 0 0 0", "disconnect"]


def test_an_exception_leaves_the_robot_held_and_disconnected(session):
    returncode, journal, err = session("raise")
    assert returncode == 1 and "RuntimeError: the policy crashed" in err
    assert journal[-2:] == ["action 0 0 0 0 0", "disconnect"]
    assert journal.count("action 0.5 0.5 0.5 0.5 0.5") == 6


def test_the_previous_signal_handlers_come_back_and_a_failing_hold_still_disconnects():
    before = signal.getsignal(signal.SIGTERM)
    inner = PointRobot()
    robot = SafeRobot(inner)
    robot.connect()

    def broken(action):
        raise OSError("bus off")

    inner.send_action = broken
    with robot_left_safe(robot):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    assert not inner.connected


def test_terminated_names_its_signal_and_exits_with_128_plus_it():
    exc = Terminated(signal.SIGTERM)
    assert exc.code == 143 and exc.signal == "SIGTERM"


def test_a_sim_arm_left_by_an_exception_is_held_and_disconnected(tmp_path):
    from sim import TASKS, MujocoArm

    arm = MujocoArm(TASKS.get("reach")())
    sent = []
    real_send = arm.send_action
    arm.send_action = lambda a: sent.append(np.array(a)) or real_send(a)
    robot = SafeRobot(arm)
    robot.connect()
    robot.reset()
    with pytest.raises(RuntimeError, match="the learner died"), robot_left_safe(robot):
        robot.send_action(np.full(5, 0.5, np.float32))
        raise RuntimeError("the learner died")
    np.testing.assert_array_equal(sent[-1], arm.hold_action())
    assert arm.model is None  # disconnected: the MuJoCo model and renderers are released
