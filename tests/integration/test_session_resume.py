"""A resumed session continues what the interrupted one counted, and says how it goes without a
terminal: the safety layer's counts and the progress lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from robot_rl.config import compose_session
from robot_rl.runtime import session as session_module
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session import Session

SMALL = ["learner.warmup_steps=40", "learner.batch_size=16", "algo.params.hidden=[16,16]",
         "task.max_steps=20", "safety.workspace_high=[0.55,0.45,0.12]"]  # a low ceiling: clips


def session_at(root: Path, env_steps: int) -> Session:
    cfg = compose_session([*SMALL, f"run.dir={root}", f"run.env_steps={env_steps}"])
    run = RunDir(root)
    if not run.exists:
        run.save_config(cfg)
    return Session(cfg, run)


@pytest.mark.slow
def test_safety_counts_and_progress_lines_go_on_after_a_resume(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "PLAIN_REPORT_S", 0.0)  # a line after every episode
    first = session_at(tmp_path / "run", 100)
    first.run_until_budget()
    counted = dict(first.robot.events)
    assert counted.get("workspace", 0) > 0  # random exploration hits the low ceiling
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("steps ")]
    assert len(lines) >= 4 and all("/100 " in ln for ln in lines)
    assert int(lines[-1].split()[1].split("/")[0]) >= 100

    second = session_at(tmp_path / "run", 140)
    second.run_until_budget()
    for kind, count in counted.items():
        assert second.robot.events[kind] >= count, kind  # continued, not restarted at 0
