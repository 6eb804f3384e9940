"""Transitions whose values encode who/when they are, so tests can check every sampled field."""

from __future__ import annotations

import numpy as np

from robot_rl.core import ArraySpec, DictSpec, Source, Transition

OBS_SPEC = DictSpec({"state": ArraySpec((3,), "float32"), "cam": ArraySpec((6, 6, 3), "uint8")})
ACTION_SPEC = ArraySpec((2,), "float32")
ROW_BYTES = 3 * 4 + 6 * 6 * 3 + 2 * 4
SMALL_CHUNK = 16 * 6 * 6 * 3  # 16 rows per chunk: many sealed chunks in small tests


def obs(robot: int, episode: int, step: int) -> dict[str, np.ndarray]:
    return {"state": np.array([robot, episode, step], np.float32),
            "cam": np.full((6, 6, 3), (robot * 31 + episode * 7 + step) % 251, np.uint8)}


def transition(robot: int, episode: int, step: int, last: bool = False,
               intervened: bool = False, source: Source = Source.POLICY,
               policy_version: int = 0) -> Transition:
    """Step `step` of `episode` of robot `robot`; reward and action derive from the three."""
    return Transition(
        obs=obs(robot, episode, step), action=np.array([episode, step], np.float32),
        reward=float(robot * 1000 + episode * 10 + step), next_obs=obs(robot, episode, step + 1),
        terminated=last, truncated=False, intervened=intervened, source=source,
        policy_version=policy_version, robot_id=f"robot{robot}", episode_id=episode, step=step,
        wall_time=1000.0 + step,
    )


def check_batch(batch) -> None:  # type: ignore[no-untyped-def]
    """Every sampled row is consistent with how `transition` built it."""
    robot, episode, step = batch.obs["state"].T.astype(int)
    assert np.array_equal(batch.action, np.stack([episode, step], 1).astype(np.float32))
    assert np.array_equal(batch.reward, (robot * 1000 + episode * 10 + step).astype(np.float32))
    expected_next = np.stack([robot, episode, step + 1], 1).astype(np.float32)
    assert np.array_equal(batch.next_obs["state"], expected_next)
    cam = ((robot * 31 + episode * 7 + step) % 251).astype(np.uint8)
    assert np.array_equal(batch.obs["cam"][:, 0, 0, 0], cam)
    next_cam = ((robot * 31 + episode * 7 + step + 1) % 251).astype(np.uint8)
    assert np.array_equal(batch.next_obs["cam"][:, 2, 3, 1], next_cam)
