"""Samplers, provenance filters, n-step returns and prior buffers mixed in without copying."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from buffer import SAMPLERS, CacheConfig, Provenance, ReplayBuffer
from buffer.mixing import DemoMix
from robot_rl.core import ConfigError, Source
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, SMALL_CHUNK, check_batch, transition


def fill(path: Path, **kw) -> ReplayBuffer:  # type: ignore[no-untyped-def]
    """Robot 0: policy episodes 0-3 (versions 0-3); robot 1: episode 4 by a human, on 'push'."""
    buf = ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK, fsync=False, **kw)
    for e in range(4):
        buf.append([transition(0, e, s, last=s == 9, policy_version=e) for s in range(10)],
                   task="reach")
        buf.end_episode(e % 2 == 0)
    buf.append([transition(1, 4, s, last=s == 9, source=Source.HUMAN, intervened=s < 5)
                for s in range(10)], task="push")
    buf.end_episode(True)
    buf.commit()
    return buf


def draw(buf: ReplayBuffer, n: int = 4000) -> np.ndarray:
    batch = buf.sample(n, np.random.default_rng(0))
    check_batch(batch)
    return batch.obs["state"].astype(int)


def test_registry_knows_every_sampler() -> None:
    assert SAMPLERS.names() == ["balanced", "policy_version", "recent", "uniform"]


def test_recent_window(tmp_path: Path) -> None:
    with fill(tmp_path / "b", sampler=SAMPLERS.get("recent")(window=15)) as buf:
        state = draw(buf)
    assert set(map(tuple, state[:, :2])) == {(1, 4), (0, 3)}
    assert state[state[:, 0] == 0][:, 2].min() == 5


def test_policy_version_staleness_and_weighting(tmp_path: Path) -> None:
    with fill(tmp_path / "b", sampler=SAMPLERS.get("policy_version")(max_staleness=1)) as buf:
        assert set(draw(buf)[:, 1]) == {2, 3}  # versions 2, 3; the human episode is version 0
    sampler = SAMPLERS.get("policy_version")(temperature=0.5)
    with fill(tmp_path / "c", sampler=sampler) as buf:
        counts = np.bincount(draw(buf)[:, 1], minlength=5)
    assert counts[3] > counts[2] > counts[1] > counts[0] > 0


def test_balanced_by_task_and_robot(tmp_path: Path) -> None:
    for by in ("task", "robot_id"):
        with fill(tmp_path / by, sampler=SAMPLERS.get("balanced")(by=by)) as buf:
            share = (draw(buf)[:, 0] == 1).mean()
        assert share == pytest.approx(0.5, abs=0.03)  # 10 of 50 rows, half the batch


def test_provenance_filter(tmp_path: Path) -> None:
    only = Provenance(intervened=True, robots=("robot1",))
    with fill(tmp_path / "b", filter=only) as buf:
        state = draw(buf, 500)
    assert set(state[:, 2]) == {0, 1, 2, 3, 4}
    with fill(tmp_path / "c", filter=Provenance(sources=(Source.POLICY,), tasks=("reach",),
                                                min_policy_version=3)) as buf:
        assert set(draw(buf, 500)[:, 1]) == {3}


def test_n_step_returns(tmp_path: Path) -> None:
    with fill(tmp_path / "b", n_step=3, gamma=0.5) as buf:
        batch = buf.sample(2000, np.random.default_rng(0))
    robot, episode, step = batch.obs["state"].T.astype(int)
    k = np.minimum(3, 10 - step)  # steps left in the episode (the last one terminates)
    r = lambda s: robot * 1000 + episode * 10 + s  # noqa: E731
    expected = sum(np.where(i < k, 0.5 ** i * r(step + i), 0.0) for i in range(3))
    assert np.allclose(batch.reward, expected)
    assert np.array_equal(batch.next_obs["state"][:, 2], step + k)
    assert np.allclose(batch.discount, 0.5 ** (k - 1))
    assert np.array_equal(batch.terminated, (step + k == 10).astype(np.float32))


def test_prior_buffers_are_demo_side_read_only_without_copying(tmp_path: Path) -> None:
    fill(tmp_path / "prior").close()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "prior").rglob("*")}
    online = ReplayBuffer(tmp_path / "online", OBS_SPEC, ACTION_SPEC, fsync=False)
    online.append([transition(2, 9, s, last=s == 19) for s in range(20)])
    online.end_episode(True)
    online.commit()
    prior = ReplayBuffer.open_prior(tmp_path / "prior", filter=Provenance(intervened=True))
    mixed = DemoMix(online, [prior], demo_fraction=0.5)
    batch = mixed.sample(512, np.random.default_rng(0))
    check_batch(batch)
    robots = batch.obs["state"][:, 0].astype(int)
    assert (robots == 2).sum() == 256 and (robots == 1).sum() == 256 and len(mixed) == 70
    assert batch.intervened[robots == 1].all()
    online.close()
    prior.close()
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "prior").rglob("*")}
    assert before == after


def test_a_sample_looks_again_when_the_loader_brought_everything_in_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The filtered rows lie in an old chunk. The sampler finds none resident and asks for a
    rotation; the background loader has just loaded every chunk, so nothing is left to rotate.
    The rows are resident now: the batch comes from them, not a NothingToSampleError."""
    fill(tmp_path / "prior").close()
    prior = ReplayBuffer.open_prior(tmp_path / "prior", filter=Provenance(intervened=True),
                                    cache=CacheConfig(background=False))
    assert not prior.cache.is_resident(np.array([40]))[0]  # only the newest chunk is loaded
    cache, rotate_once = prior.cache, prior.cache.rotate_once

    def loader_finished_first() -> bool:
        while rotate_once():  # the loader thread, between the sampler's look and its rotation
            pass
        return rotate_once()

    monkeypatch.setattr(cache, "rotate_once", loader_finished_first)
    batch = prior.sample(64, np.random.default_rng(0))
    check_batch(batch)
    assert batch.intervened.all()
    prior.close()


def test_the_demo_side_splits_by_size_and_fills_a_batch_alone(tmp_path: Path) -> None:
    online = ReplayBuffer(tmp_path / "online", OBS_SPEC, ACTION_SPEC, fsync=False)
    demos = fill(tmp_path / "demos")  # 50 rows: robots 0 and 1
    prior = ReplayBuffer(tmp_path / "prior", OBS_SPEC, ACTION_SPEC, fsync=False)
    prior.append([transition(3, 0, s, last=s == 49, source=Source.DEMO) for s in range(50)])
    prior.end_episode(True)
    prior.commit()
    mix = DemoMix(online, [demos, prior], demo_fraction=0.25)
    robots = mix.sample(400, np.random.default_rng(0)).obs["state"][:, 0].astype(int)
    assert len(robots) == 400 and 2 not in robots  # nothing online yet: all from the demo side
    assert 150 < (robots == 3).sum() < 250  # split by the sizes of the two demo buffers
    online.append([transition(2, 9, s, last=s == 19) for s in range(20)])
    online.end_episode(True)
    online.commit()
    robots = mix.sample(400, np.random.default_rng(1)).obs["state"][:, 0].astype(int)
    assert (robots == 2).sum() == 300  # the one knob: a quarter demo side
    with pytest.raises(ConfigError, match="demo_fraction must be in"):
        DemoMix(online, [demos], demo_fraction=1.5)
    mix.close()


def test_a_filter_matching_nothing_is_a_clear_error(tmp_path: Path) -> None:
    from buffer import CacheConfig
    from robot_rl.core import StorageError

    with fill(tmp_path / "b", filter=Provenance(robots=("nobody",)),
              cache=CacheConfig(max_transitions=32, background=False)) as buf:
        with pytest.raises(StorageError, match="nothing to sample .50 committed rows"):
            buf.sample(8, np.random.default_rng(0))
