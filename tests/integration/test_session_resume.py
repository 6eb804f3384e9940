"""A resumed session continues what the interrupted one counted, and says how it goes without a
terminal: the safety layer's counts, the session's clock and the progress lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from robot_rl.runtime import live_display
from robot_rl.runtime.checkpoint import load_latest
from tests.integration.sessions import new_session

SMALL = ["learner.warmup_steps=40", "learner.batch_size=16", "algo.params.hidden=[16,16]",
         "task.max_steps=20", "safety.workspace_high=[0.55,0.45,0.12]"]  # a low ceiling: clips


@pytest.mark.slow
def test_counts_clock_and_progress_lines_go_on_after_a_resume(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, ray_local: None) -> None:
    monkeypatch.setattr(live_display, "PLAIN_REPORT_S", 0.0)  # a line at every sample
    root = tmp_path / "run"
    new_session(root, *SMALL, "run.env_steps=100").run_until_budget()
    first = load_latest(root / "checkpoints")
    counted = first["safety"]["sim0"]
    assert counted.get("workspace", 0) > 0  # random exploration hits the low ceiling
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("steps ")]
    assert len(lines) >= 2 and all("/100 " in ln for ln in lines)
    assert int(lines[-1].split()[1].split("/")[0]) >= 100

    new_session(root, "run.env_steps=140").run_until_budget()
    second = load_latest(root / "checkpoints")
    for kind, count in counted.items():
        assert second["safety"]["sim0"][kind] >= count, kind  # continued, not restarted at 0
    for key in ("env_steps", "updates", "policy_version", "elapsed_s"):
        assert second["counters"][key] > first["counters"][key], key
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("steps ")]
    assert lines and all("/140 " in ln for ln in lines)
