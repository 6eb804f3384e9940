"""Keyed channels on a real two-node Ray cluster (in a private network namespace with only
loopback): a shard lives on its producer's node, a consumer on another node reads it in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("ray_channels_probe.py")


@pytest.mark.slow
def test_a_shard_lives_on_its_producers_node_and_a_remote_consumer_reads_it_in_order() -> None:
    with tempfile.TemporaryDirectory(prefix="ray-") as own:  # short: Ray's socket paths
        done = subprocess.run(  # its own session files: other Ray users here never see it
            ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {sys.executable} {PROBE}"],
            capture_output=True, text=True, timeout=240, cwd=PROBE.parents[2],
            env={**os.environ, "RAY_TMPDIR": own})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["seqs"] == list(range(20))
    assert result["shard_node"] == result["producer_node"] != result["consumer_node"]
    assert result["keys"] == ["r1"]
