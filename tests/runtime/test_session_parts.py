"""The session's parts without Ray: the update-to-data gate, per-robot configs, the knobs."""

from __future__ import annotations

import pytest

from robot_rl.config import compose_session
from robot_rl.core import ConfigError
from robot_rl.runtime.build import session_robots
from robot_rl.runtime.env_worker import SessionStart


def test_the_gate_counts_from_where_the_session_started() -> None:
    start = SessionStart(stored=5000, updates=4000)  # a resumed run
    assert start.ahead(5000, 4000, ratio=1.0, warmup=500) == 0  # no backlog to catch up
    assert start.ahead(5100, 4000, ratio=1.0, warmup=500) == 100  # data 100 steps ahead
    assert start.ahead(5100, 4150, ratio=1.0, warmup=500) == -50  # the learner ahead
    assert start.ahead(5100, 4000, ratio=2.0, warmup=500) == 100  # 200 updates owed = 100 steps


def test_during_warm_up_the_data_is_never_ahead() -> None:
    start = SessionStart(stored=0, updates=0)
    assert start.ahead(400, 0, ratio=1.0, warmup=500) == 0
    assert start.ahead(600, 0, ratio=1.0, warmup=500) == 100


def test_robots_override_the_robot_section_each_with_its_own_id_and_seed() -> None:
    one = session_robots(compose_session([]))
    assert list(one) == ["sim0"]
    cfg = compose_session(["robots={arm0: {}, arm1: {arm: so101, cameras: [wrist_cam]}}",
                           "seed=3"])
    robots = session_robots(cfg)
    assert list(robots) == ["arm0", "arm1"]
    assert robots["arm0"].robot.id == "arm0" and robots["arm0"].robot.arm == "small_arm"
    assert robots["arm1"].robot.arm == "so101" and list(robots["arm1"].robot.cameras) == [
        "wrist_cam"]
    assert robots["arm0"].seed == 3 and robots["arm1"].seed != 3
    assert cfg.robot.id == "sim0"  # the session's own config is untouched


def test_a_robot_entry_with_an_unknown_key_names_the_keys_it_may_set() -> None:
    cfg = compose_session(["robots={arm0: {wheels: 4}}"])
    with pytest.raises(ConfigError, match="robots.arm0: .*wheels.*its keys are those of `robot`"):
        session_robots(cfg)


@pytest.mark.parametrize(("overrides", "message"), [
    (["runtime.mode=inline"], "runtime.mode must be one of async, sync"),
    (["runtime.sync_every=0"], "runtime.sync_every must be positive"),
    (["learner.updates_per_step=0"], "learner.updates_per_step must be positive"),
    (["learner.max_updates_per_step=0.5"], r"learner.max_updates_per_step \(0.5\) is below"),
    (["learner.nice=20"], r"learner.nice must be 0 \(the robots' priority\) to 19"),
    (["learner.nice=-1"], r"learner.nice must be 0 .* got -1"),
    (["runtime.max_restarts=0"], "runtime.max_restarts must be >= 1"),
])
def test_runtime_knobs_are_checked_when_composed(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_session(overrides)
