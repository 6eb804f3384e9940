"""End to end through the real CLI: train, inspect, replay, resume, and survive a SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import imageio.v2 as imageio
import numpy as np
import pytest

from buffer import ZarrStorage

pytestmark = pytest.mark.slow

QUICK = ["learner.warmup_steps=150", "learner.batch_size=64", "run.checkpoint_every=200",
         "algo.params.hidden=[64,64]", "seed=3"]


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True,
                            text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def info(run_dir, cwd) -> dict:
    return json.loads(cli("info", str(run_dir), "--json", cwd=cwd).stdout)


def test_train_info_replay_and_resume(tmp_path):
    run = tmp_path / "run"
    out = cli("train", f"run.dir={run}", "run.env_steps=400", *QUICK, cwd=tmp_path)
    assert f"run directory: {run}" in out.stdout and "success rate" in out.stdout
    first = info(run, tmp_path)
    assert first["env_steps"] >= 400 and first["episodes"] >= 8
    assert first["updates"] > 0
    assert first["policy_version"] == first["updates"]
    for key in ("success_rate", "success_rate_last_20", "interventions"):
        assert key in first
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "latest.json").exists()

    before = ZarrStorage.open_existing(run / "buffer").read_steps()

    out = cli("train", f"run.dir={run}", "run.env_steps=600", cwd=tmp_path)
    assert "resuming run" in out.stdout
    second = info(run, tmp_path)
    assert second["env_steps"] >= 600
    assert second["episodes"] > first["episodes"]
    assert second["updates"] > first["updates"]
    after = ZarrStorage.open_existing(run / "buffer").read_steps()
    n = len(before["reward"])
    for key, column in before.items():  # committed data is untouched by the resume
        np.testing.assert_array_equal(after[key][:n], column)

    gif = tmp_path / "ep.gif"
    out = cli("replay", str(run), "--episode", "0", "--out", str(gif), "--size", "96", cwd=tmp_path)
    frames = imageio.mimread(gif)
    lengths = ZarrStorage.open_existing(run / "buffer").read_episodes()["length"]
    assert len(frames) == int(lengths[0])
    assert frames[0].shape[:2] == (96, 96)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5  # the arm moved


def test_a_killed_session_resumes_with_every_committed_step(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "train", f"run.dir={run}", "run.env_steps=100000",
         *QUICK], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 180
    try:
        while not (run / "checkpoints" / "latest.json").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    committed = info(run, tmp_path)
    assert committed["env_steps"] > 0
    cli("train", f"run.dir={run}", f"run.env_steps={committed['env_steps'] + 120}", cwd=tmp_path)
    resumed = info(run, tmp_path)
    assert resumed["env_steps"] >= committed["env_steps"] + 120
    assert resumed["episodes"] > committed["episodes"]
    assert resumed["updates"] >= committed["updates"]
