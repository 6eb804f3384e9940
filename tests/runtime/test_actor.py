"""The one control step (runtime.actor) on a real MuJoCo arm: holds, takeovers, e-stop, labels."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hal import ESTOP, TeleopCommand, task_outcomes
from hal.fakes import ReplayTeleop
from policies.rewards import TaskRuleReward
from robot_rl.commands.record_demos import demo_actor, record_demo
from robot_rl.config import compose_session
from robot_rl.core import Observation, Source, is_demo_side
from robot_rl.runtime.actor import ActionSource, Actor, ActorConfig, Nobody, steps
from robot_rl.runtime.build import build_robot

MOVE = np.array([0.5, 0.0, 0.0, 0.0, 0.0], np.float32)


@pytest.fixture
def arm_and_robot():
    cfg = compose_session(["task=reach", "task.max_steps=6"])
    arm, robot = build_robot(cfg)
    robot.connect()
    yield cfg, arm, robot
    robot.disconnect()


def actor(cfg, arm, robot, teleop=None, **config) -> Actor:
    return Actor(robot, TaskRuleReward(), ActorConfig(max_steps=6, **config),
                 outcomes=task_outcomes(arm), teleop=teleop)


def test_a_step_without_an_action_is_a_hold_scored_by_the_sims_task_rule(arm_and_robot) -> None:
    cfg, arm, robot = arm_and_robot
    episode = list(steps(actor(cfg, arm, robot).episode(Nobody(), episode_id=7)))
    assert [t.step for t in episode] == list(range(6)) and episode[-1].truncated
    assert all(t.source is Source.HOLD and not is_demo_side(t.source, t.intervened)
               for t in episode)
    np.testing.assert_array_equal(np.stack([t.action for t in episode]), 0.0)
    assert episode[-1].reward == pytest.approx(arm.outcome().dense_reward)


def test_a_takeover_is_a_human_step_and_the_e_stop_holds_and_ends_it(arm_and_robot) -> None:
    cfg, arm, robot = arm_and_robot
    teleop = ReplayTeleop([None, TeleopCommand(MOVE, takeover=True),
                           TeleopCommand(MOVE, takeover=True, buttons=frozenset({ESTOP}))])
    episode = list(steps(actor(cfg, arm, robot, teleop).episode(Nobody(), episode_id=0)))
    assert [t.source for t in episode] == [Source.HOLD, Source.HUMAN, Source.HOLD]
    assert [t.intervened for t in episode] == [False, True, False]
    np.testing.assert_array_equal(episode[1].action, MOVE)  # through the safety layer
    assert episode[-1].truncated and robot.estopped  # the e-stopped step ends the episode


def test_recording_skips_holds_and_a_failure_label_closes_the_last_demo(arm_and_robot) -> None:
    cfg, arm, robot = arm_and_robot
    drive = TeleopCommand(MOVE, takeover=True)
    teleop = ReplayTeleop([None, None, drive, drive, TeleopCommand(None, False, label=False)])
    demo = record_demo(demo_actor(arm, robot, teleop, cfg), 3, "reach")
    assert [t.step for t in demo.transitions] == [0, 1]  # waiting for the person is not recorded
    assert all(t.source is Source.DEMO and not t.intervened for t in demo.transitions)
    last = demo.transitions[-1]
    assert last.truncated and not last.terminated and not demo.success  # n: a failure
    assert teleop.reads == 5


def test_a_label_before_anyone_drove_does_not_end_a_recording(arm_and_robot) -> None:
    cfg, arm, robot = arm_and_robot
    drive, yes = TeleopCommand(MOVE, takeover=True), TeleopCommand(None, False, label=True)
    teleop = ReplayTeleop([yes, drive, yes])
    demo = record_demo(demo_actor(arm, robot, teleop, cfg), 0, "reach")
    assert len(demo.transitions) == 1 and demo.transitions[0].terminated and demo.success


class Suspends(ActionSource):
    """An action source that waits on the event loop (a remote policy)."""

    async def act(self, obs: Observation) -> np.ndarray | None:
        await asyncio.sleep(0)
        return None


def test_a_suspending_source_needs_an_event_loop(arm_and_robot) -> None:
    cfg, arm, robot = arm_and_robot
    with pytest.raises(RuntimeError, match="event loop"):
        list(steps(actor(cfg, arm, robot).episode(Suspends(), 0)))

    async def on_a_loop() -> int:
        return len([t async for t in actor(cfg, arm, robot).episode(Suspends(), 0)])

    assert asyncio.run(on_a_loop()) == 6
