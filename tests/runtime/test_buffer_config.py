"""The session's buffer config: cache size, sampler by name, read-only priors, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from buffer import DemoMix, ReplayBuffer
from buffer.samplers import RecentSampler
from robot_rl.config import compose_session
from robot_rl.core import ConfigError, Episode
from robot_rl.runtime.build import build_buffer, build_replay
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, ROW_BYTES, transition


def test_sampler_cache_and_priors_from_config(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path / "prior", OBS_SPEC, ACTION_SPEC, fsync=False) as prior:
        prior.add_episode(Episode(0, "robot1", "reach", [transition(1, 0, s) for s in range(8)]))
    cfg = compose_session(["algo=rlpd", "buffer.sampler=recent", "+buffer.sampler_params.window=9",
                           "buffer.cache_mb=64", f"buffer.priors=[{tmp_path / 'prior'}]"])
    buf = build_buffer(cfg, tmp_path / "own", OBS_SPEC, ACTION_SPEC, 0.99)
    assert isinstance(buf.sampler, RecentSampler) and buf.sampler.window == 9
    assert 0.9 * (64 << 20) <= buf.cache.capacity_rows * ROW_BYTES <= 64 << 20
    buf.add_episode(Episode(0, "robot0", "reach", [transition(0, 0, s) for s in range(8)]))
    replay = build_replay(cfg, buf, None, 0.99, fraction=0.3)
    assert isinstance(replay, DemoMix) and len(replay) == 16
    state = replay.sample(100, np.random.default_rng(0)).obs["state"]
    assert (state[:, 0] == 1).sum() == 30  # the priors are the demo side: 30 % of each batch
    replay.close()
    with pytest.raises(ConfigError, match="priors are the demo side of algo=rlpd"):
        build_replay(cfg, buf, None, 0.99, fraction=0.0)


@pytest.mark.parametrize("overrides", [
    ["buffer.prior_fraction=0.3"], ["+buffer.prior_fraction=0.3"],
    ["buffer.sampler=mixed"], ["+buffer.sampler_params.prior_fraction=0.3"],
])
def test_the_removed_mixing_knobs_say_what_to_use_instead(tmp_path: Path, overrides) -> None:
    with pytest.raises(ConfigError, match="removed: .*algo.params.demo_fraction, with algo=rlpd"):
        build_buffer(compose_session(overrides), tmp_path / "b", OBS_SPEC, ACTION_SPEC, 0.99)


def test_a_stored_config_with_the_old_default_prior_fraction_still_loads() -> None:
    from omegaconf import OmegaConf

    from robot_rl.config import validate

    stored = OmegaConf.to_container(compose_session([]))
    stored["buffer"]["prior_fraction"] = 0.5  # what every run stored before the knob went
    assert "prior_fraction" not in validate(stored).buffer


@pytest.mark.parametrize(("override", "message"), [
    ("buffer.sampler=fancy", "unknown sampler 'fancy'"),
    ("+buffer.sampler_params.window=0", "window must be >= 1"),
    ("buffer.n_step=0", "n_step must be >= 1"),
])
def test_bad_buffer_config_is_a_clear_error(tmp_path: Path, override: str, message: str) -> None:
    overrides = [override] + (["buffer.sampler=recent"] if "window" in override else [])
    with pytest.raises(ConfigError, match=message):
        build_buffer(compose_session(overrides), tmp_path / "b", OBS_SPEC, ACTION_SPEC, 0.99)
