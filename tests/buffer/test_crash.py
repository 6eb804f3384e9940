"""A writer killed with SIGKILL at random moments loses nothing committed and shows nothing else."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from buffer import ReplayBuffer
from tests.buffer.helpers import check_batch

REPO = Path(__file__).resolve().parents[2]
TRIALS = 20


def start_writer(path: Path, seed: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/buffer/crash_writer.py"),
                             str(path), str(seed)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready"), line
    return proc


def check_committed(path: Path, printed: int) -> int:
    """Every committed row is readable and consistent; the count matches the commit's meta."""
    with ReplayBuffer.open_prior(path) as buf:  # read-only: sees what the commit covers
        n = len(buf)
        assert n >= printed and n == buf.commit_meta.get("rows", 0)
        info = buf.index
        rows = np.arange(n)
        data = buf.storage.read_rows(rows)
        robot, episode, step = data["obs/state"].T.astype(int)
        assert np.array_equal(info.col("robot_id")[rows], np.array(
            [buf.storage.robots.index(f"robot{r}") for r in robot]))
        assert np.array_equal(info.col("reward")[rows], robot * 1000 + episode * 10 + step)
        assert np.array_equal(data["action"][:, 1], step)
        for r in (0, 1):  # each robot's stream: no gap, no duplicate
            e, s = episode[robot == r], step[robot == r]
            follows = ((e[1:] == e[:-1]) & (s[1:] == s[:-1] + 1)) | \
                      ((e[1:] == e[:-1] + 1) & (s[1:] == 0))
            assert follows.all()
        buf.cache.fill()
        if n:
            check_batch(buf.sample(256, np.random.default_rng(0)))
    return n


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = np.random.default_rng(1234)
    path = tmp_path / "buf"
    last = 0
    for trial in range(TRIALS):
        proc = start_writer(path, trial)
        time.sleep(float(rng.uniform(0.0, 0.6)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        complete = out[: out.rfind("\n") + 1]  # a kill can cut the last line short
        counts = [int(n) for n in re.findall(r"^committed (\d+)$", complete, re.M)]
        printed = counts[-1] if counts else last
        last = check_committed(path, printed)
    assert last > 200  # the writers made real progress across the reopenings


@pytest.mark.slow
def test_readers_open_a_live_buffer_consistently(tmp_path: Path) -> None:
    path = tmp_path / "buf"
    proc = start_writer(path, 7)
    try:
        deadline, opened = time.monotonic() + 4.0, 0
        while time.monotonic() < deadline:
            check_committed(path, 0)  # each open sees one whole commit, never a torn one
            opened += 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert opened >= 3
