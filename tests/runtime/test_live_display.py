"""What a person sees of a session: a rich table on a terminal, a plain line elsewhere, every
sample in the run's metrics log."""

from __future__ import annotations

import io
import json
import os
import pty
from pathlib import Path

import pytest

from robot_rl.runtime import live_display
from robot_rl.runtime.live_display import LiveDisplay

SAMPLE = {"env_steps": 120, "episodes": 6, "success_20": 0.5, "intervention_rate_20": 0.1,
          "updates": 80, "updates_per_s": 41.5, "policy_lag": 3, "sync_latency_s": 0.012,
          "buffer_steps": 120}


def test_without_a_terminal_a_line_at_a_fixed_interval_and_every_sample_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [0.0]
    monkeypatch.setattr(live_display.time, "monotonic", lambda: now[0])
    display = LiveDisplay(tmp_path / "metrics.jsonl", "reach (async)", 1000, stream=io.StringIO())
    for at, steps in ((100.0, 120), (101.0, 130), (111.0, 140)):
        now[0] = at
        display.show({**SAMPLE, "env_steps": steps})
    display.close()
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in lines] == ["120/1000", "140/1000"]  # not the one 1 s later
    assert "policy_lag=3" in lines[0] and "sync_latency_s=0.012" in lines[0]
    logged = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["env_steps"] for row in logged] == [120, 130, 140]


def test_on_a_terminal_a_live_table(tmp_path: Path) -> None:
    main, side = pty.openpty()
    with os.fdopen(side, "w") as terminal:
        display = LiveDisplay(tmp_path / "metrics.jsonl", "reach (async)", 1000, stream=terminal)
        display.show({**SAMPLE, "sync_latency_s": None})
        display.close()
    shown = os.read(main, 65536).decode(errors="replace")
    os.close(main)
    assert "reach (async): 120/1000 steps" in shown
    assert "updates/s" in shown and "41.5" in shown and "policy lag" in shown
