"""The periods `benchmarks.async_vs_sync` reads from a run's metrics log."""

import json
from pathlib import Path

from benchmarks.async_vs_sync import periods


def write_log(run: Path, rows: list[tuple[float, int, int, int]]) -> None:
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"t": t, "env_steps": s, "episodes": e, "updates": u}) + "\n"
        for t, s, e, u in rows))


def test_periods_start_at_the_first_episode_and_update_and_skip_a_resumed_runs_idle_rows(
        tmp_path: Path) -> None:
    write_log(tmp_path / "run", [
        (5.0, 0, 0, 0),  # the parts start up
        (10.0, 100, 2, 0),  # two robots' first episodes end
        (12.0, 150, 2, 10),  # the learner's first updates
        (30.0, 500, 10, 300),
        (32.0, 520, 10, 330),  # the run's last update
        (40.0, 520, 10, 330),  # the run resumed (finished already): nothing done
    ])
    got = periods(tmp_path / "run", robots=2)
    assert got["wall_s"] == 32.0 and got["episodes"] == 10 and got["updates"] == 330
    assert got["generation_s_per_episode"] == (30.0 - 10.0) / ((10 - 2) / 2)
    assert got["training_s_per_update"] == (32.0 - 12.0) / (330 - 10)
