"""A run's life as a newcomer lives it, through the real `robot-rl` command: the README's command
sequences verbatim (budgets shrunk), Ctrl-C and resume, and two writers on one run directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buffer import ZarrStorage

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["learner.warmup_steps=60", "learner.batch_size=32", "algo.params.hidden=[32,32]"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "robot_rl.cli", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def committed_steps(run: Path) -> int:
    try:
        record = json.loads((run / "buffer" / "commit.json").read_text())
    except (OSError, ValueError):
        return 0
    return int(record["tables"]["steps"]["rows"])


def wait_for_steps(run: Path, steps: int, proc: subprocess.Popen[str], limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while committed_steps(run) < steps:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{run} never reached {steps} committed steps"
        time.sleep(0.2)


def info(run: Path) -> dict:
    result = cli("info", str(run), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def verified_episodes(run: Path) -> int:
    result = cli("buffer", "info", str(run), "--verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["problems"] == []
    return int(summary["episodes"])


@pytest.mark.slow
def test_the_readme_rlpd_recipe_then_classifier_reward_on_the_resumed_run(tmp_path: Path) -> None:
    run = tmp_path / "pick"
    made = cli("record-demos", "task=pick_cube", "algo=rlpd", "episodes=3", "into=demos",
               f"run.dir={run}")
    assert made.returncode == 0, made.stderr
    trained = cli("train", "task=pick_cube", "algo=rlpd", "teleop=scripted",
                  "teleop.params.budget=3000", "run.env_steps=30000", f"run.dir={run}",
                  "run.env_steps=150", *SMALL)  # the README's command, a test-sized budget
    assert trained.returncode == 0, trained.stderr
    assert "resuming run" in trained.stdout
    saved = (run / "config.yaml").read_text()
    assert "name: scripted" in saved and "budget: 3000" in saved and "teleop: scripted" in saved
    assert info(run)["interventions"] > 0  # the scripted person took over

    # a second look through the cameras, then the README's classifier recipe on the same run
    cams = ["robot.cameras=[side_cam]", "robot.image_size=32"]
    pixels = tmp_path / "pix"
    assert cli("record-demos", "task=reach", "episodes=4", *cams, f"run.dir={pixels}",
               ).returncode == 0  # successes (each demo's end) and failures (the steps before)
    model = pixels / "reward.npz"
    fitted = cli("train-reward", str(pixels), "--camera", "side_cam", "--size", "32",
                 "--steps", "20", "--holdout", "0", "--out", str(model))
    assert fitted.returncode == 0, fitted.stderr
    resumed = cli("train", "reward=classifier", f"reward.params.path={model}",
                  "reward.params.threshold=0.5", "run.env_steps=120", *SMALL, f"run.dir={pixels}")
    assert resumed.returncode == 0, resumed.stderr
    saved = (pixels / "config.yaml").read_text()
    assert "reward: classifier" in saved and f"path: {model}" in saved
    assert info(pixels)["env_steps"] >= 120


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_checkpoints_and_run_dir_alone_resumes(tmp_path: Path,
                                                         sig: signal.Signals) -> None:
    run = tmp_path / "pick"
    proc = start("train", "task=pick_cube", "run.env_steps=400", "run.checkpoint_every=100000",
                 "runtime.max_lead=20",  # the learner has trained before the signal at 150 steps
                 *SMALL, f"run.dir={run}")
    wait_for_steps(run, 150, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"robot-rl train run.dir={run}" in out  # the exact command that resumes
    assert "Traceback" not in err
    stopped = info(run)
    assert stopped["updates"] > 0  # the learner's progress was checkpointed at the interrupt
    resumed = cli("train", f"run.dir={run}")  # nothing else: its own task, algo and budget
    assert resumed.returncode == 0, resumed.stderr
    after = info(run)
    assert after["env_steps"] >= 400 and after["episodes"] > stopped["episodes"]
    assert after["updates"] > stopped["updates"]
    assert "task: pick_cube" in (run / "config.yaml").read_text()


@pytest.mark.slow
def test_a_second_train_on_a_run_is_refused_and_the_run_survives(tmp_path: Path) -> None:
    run = tmp_path / "r"
    first = start("train", "run.env_steps=100000", *SMALL, f"run.dir={run}")
    try:
        wait_for_steps(run, 60, first)
        before = (run / "config.yaml").read_text()
        second = cli("train", f"run.dir={run}", "seed=7", timeout=120)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"is being written by pid {first.pid}" in lines[0]
        assert (run / "config.yaml").read_text() == before  # the refused one wrote nothing
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert verified_episodes(run) == info(run)["episodes"] > 0


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("a-test-token-that-is-long-enough-for-hmac-0123456789")
    path.chmod(0o600)
    return path


@pytest.mark.slow
def test_train_on_a_run_a_gateway_writes_is_refused_and_every_edge_episode_stays(
        tmp_path: Path) -> None:
    run, token = tmp_path / "cloud", token_file(tmp_path)
    gateway = start("gateway", "--port", "0", "--token-file", str(token), "--run-dir", str(run),
                    "task=reach", "task.max_steps=10")
    try:
        assert gateway.stdout is not None
        line = gateway.stdout.readline()
        assert "gateway listening on" in line, gateway.communicate()
        url = "ws://" + line.split("ws://")[1].split()[0]
        edge = cli("edge", "--gateway", url, "--token-file", str(token), "--episodes", "3",
                   "--no-pace", "--spool-dir", str(tmp_path / "spool"), "task=reach",
                   "task.max_steps=10")
        assert edge.returncode == 0, edge.stderr
        assert "unacked in spool: 0" in edge.stdout
        assert f"edge sim0: connected to {url}" in edge.stdout  # what happens, as it happens
        assert sum("edge sim0: episode " in ln and " steps, " in ln
                   for ln in edge.stdout.splitlines()) == 3
        refused = cli("train", f"run.dir={run}", timeout=120)
        assert refused.returncode == 2 and f"pid {gateway.pid}" in refused.stderr
        assert "gateway" in refused.stderr  # the holder's command line is named
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.communicate(timeout=30)
    assert verified_episodes(run) == 3
    assert ZarrStorage.open_existing(run / "buffer").tasks == ["reach"]  # as configured


def test_a_gateway_on_a_port_in_use_says_so_and_creates_nothing(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = cli("gateway", "--port", str(port), "--token-file", str(token_file(tmp_path)),
                     "--run-dir", str(tmp_path / "run"), timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "--port" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["buffer.sampler=prioritized"], "unknown sampler 'prioritized'"),
    (["algo.params.learning_rate=3e-4"], "did you mean algo.params.lr"),
    (["teleop=null", "task=nowhere"], "choose task= one of"),
])
def test_a_bad_config_on_a_new_run_creates_nothing(tmp_path: Path, args: list[str],
                                                   expected: str) -> None:
    result = cli("train", *args, f"run.dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_bad_override_on_a_resumed_run_leaves_its_config_alone(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli("train", "run.env_steps=70", *SMALL, f"run.dir={run}").returncode == 0
    before = (run / "config.yaml").read_text()
    for bad in (["buffer.sampler=prioritized"], ["teleop=gamepadz"], ["task=push"],
                ["robot.cameras=[side_cam]"]):  # a buffer that holds other observations
        result = cli("train", f"run.dir={run}", *bad, timeout=120)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (run / "config.yaml").read_text() == before
    assert not os.path.exists(run / "config.tmp")
