"""algo=rlpd_frozen on pick_cube_pixels: encoder pretrained on the demos, features stored."""

from __future__ import annotations

import numpy as np
import pytest

from buffer import ReplayBuffer, ZarrStorage
from policies import FrozenCameraFeatures
from robot_rl.cli import main
from robot_rl.commands.record_demos import record_episode
from robot_rl.config import compose_session
from robot_rl.core import ConfigError, Source
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.learner_service import LearnerService
from robot_rl.runtime.ray.session import RaySession
from robot_rl.runtime.run_dir import RunDir
from sim.experts import EXPERTS
from tests.integration.sessions import new_session as session_at

TINY = ["task=pick_cube_pixels", "algo=rlpd_frozen", "robot.image_size=32", "task.max_steps=10",
        "algo.features.channels=8", "algo.features.feature_dim=8",
        "algo.features.pretrain_steps=5", "learner.warmup_steps=10", "learner.batch_size=8",
        "algo.params.hidden=[16,16]", "run.env_steps=30",
        "runtime.max_lead=5"]  # the robot waits for the learner well inside the budget
FEATURES = ["feat/wrist_cam", "feat/side_cam"]


def record_raw_demos(root, episodes: int) -> int:
    """Scripted pick-cube demos with raw camera frames into <run>/demos (a new run); their
    steps."""
    run = RunDir(root)
    cfg = compose_session([*TINY, f"run.dir={root}"])
    run.save_config(cfg)
    arm, robot = build_robot(cfg)
    robot.connect()
    expert = EXPERTS.get("pick_cube")(arm, seed=0)
    with ReplayBuffer(run.demos, robot.observation_spec, robot.action_spec) as demos:
        for e in range(episodes):
            demos.add_episode(record_episode(arm, robot, expert, -1 - e, cfg))
        return len(demos)


def new_session(root, *overrides: str) -> RaySession:
    return session_at(root, *TINY, *overrides)


@pytest.mark.slow
def test_pretrained_frozen_features_are_stored_with_every_transition(tmp_path, ray_local) -> None:
    demo_steps = record_raw_demos(tmp_path / "run", 2)
    session = new_session(tmp_path / "run", "algo.features.keep_images=true")
    assert session.run_until_budget()["updates"] > 0
    run = session.run
    encoder = FrozenCameraFeatures.load(run.root / "encoder.npz")
    steps = ZarrStorage.open_existing(run.buffer).read_steps()
    again = encoder.features({c: np.asarray(steps[f"obs/{c}"]) for c in encoder.cameras})
    for key in FEATURES:
        stored = np.asarray(steps[f"obs/{key}"])
        assert stored.shape == (len(steps["action"]), 8, 4, 4)  # 32 px maps: 8 channels, 4x4
        # the actor's maps, cached (float16: one step's and a batch's convolutions round apart)
        np.testing.assert_allclose(stored.astype(np.float32), again[key].astype(np.float32),
                                   atol=2e-3)
    assert "object_pos" not in session.obs_spec  # pixels only: no object pose
    demo_side = ZarrStorage.open_existing(run.feature_demos).read_steps()
    assert len(demo_side["action"]) >= demo_steps  # demos, plus any takeovers
    assert set(FEATURES) <= {k.removeprefix("obs/") for k in demo_side}
    learner = LearnerService(session.cfg, run, session.obs_spec, session.action_spec)
    batch = next(learner._batches())
    assert int((batch.source == Source.DEMO).sum()) == 4 and set(FEATURES) <= set(batch.obs)


@pytest.mark.slow
def test_dropping_images_stores_features_only_and_resumes_with_the_saved_encoder(
    tmp_path, ray_local,
) -> None:
    record_raw_demos(tmp_path / "run", 1)
    session = new_session(tmp_path / "run")
    session.run_until_budget()
    stored = ZarrStorage.open_existing(session.run.buffer).obs_spec
    assert set(FEATURES) <= set(stored) and not {"wrist_cam", "side_cam"} & set(stored)
    saved = (session.run.root / "encoder.npz").read_bytes()
    resumed = new_session(tmp_path / "run", "run.env_steps=45")
    assert resumed.run_until_budget()["env_steps"] >= 45  # no second pretraining:
    assert (session.run.root / "encoder.npz").read_bytes() == saved  # <run>/encoder.npz loaded


def test_without_weights_or_demos_the_session_says_what_to_do(tmp_path) -> None:
    with pytest.raises(ConfigError, match="algo.features.weights"):
        new_session(tmp_path / "run")
    with pytest.raises(ConfigError, match="no file"):
        new_session(tmp_path / "other", "algo.features.weights=/nonexistent.npz")
    assert not (tmp_path / "run").exists() and not (tmp_path / "other").exists()


@pytest.mark.slow
def test_cli_record_demos_into_the_demo_side_then_train_on_frozen_features(
        tmp_path, ray_local) -> None:
    run = RunDir(tmp_path / "run")
    assert main(["record-demos", *TINY, "episodes=2", "into=demos", f"run.dir={run.root}"]) == 0
    assert not run.buffer.exists() and len(ZarrStorage.open_existing(run.demos).read_steps()[
        "action"]) > 0
    assert main(["train", "task=pick_cube_pixels", "algo=rlpd_frozen", f"run.dir={run.root}"]) == 0
    assert (run.root / "encoder.npz").exists()
    assert set(FEATURES) <= set(ZarrStorage.open_existing(run.buffer).obs_spec)
