"""The edge imports light, and the gateway speaks the specs of the buffer it writes to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from buffer import ReplayBuffer
from comms.messages import spec_digest
from robot_rl.config import compose_session
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.gateway import build_gateway
from robot_rl.runtime.run_dir import RunDir
from tests.integration.comms_helpers import TOKEN

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "zarr", "hydra")


def loaded_after(code: str) -> list[str]:
    """Which of torch, zarr and Hydra a fresh interpreter holds after running `code`."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True, env=dict(os.environ, MUJOCO_GL="egl"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_edge_loads_no_torch_zarr_or_hydra() -> None:
    assert loaded_after("import robot_rl.runtime.edge, robot_rl.commands.edge") == []


def test_an_edge_with_a_remote_policy_runs_without_torch_or_zarr(tmp_path: Path) -> None:
    def edge(policy: str) -> str:
        return ("from pathlib import Path\n"
                "from robot_rl.config import compose_session\n"
                "from robot_rl.runtime.edge import EdgeAgent, EdgeOptions\n"
                "EdgeAgent(compose_session(['task=reach']), b'x' * 32, EdgeOptions("
                f"gateway_url='ws://127.0.0.1:1', spool_dir=Path({str(tmp_path / policy)!r}), "
                f"policy={policy!r}))")

    assert loaded_after(edge("remote")) == ["hydra"]  # composing the config needs it
    assert "torch" in loaded_after(edge("local"))  # the policy itself needs torch


def test_the_gateway_takes_its_specs_from_the_runs_buffer(tmp_path: Path) -> None:
    recorded = compose_session(["task=reach", "robot.cameras=[side_cam]", "robot.image_size=16"])
    arm, _ = build_robot(recorded)
    run = RunDir(tmp_path / "run")
    ReplayBuffer(run.buffer, arm.observation_spec, arm.action_spec).close()
    plain = compose_session(["task=reach"])  # a config that describes the robot differently
    gateway = build_gateway(plain, run, TOKEN, host="127.0.0.1", port=0, ssl_context=None,
                            serve_policy=False)
    assert gateway.spec_digest == spec_digest(arm.observation_spec, arm.action_spec)
