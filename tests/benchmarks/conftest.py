"""Runs a benchmark's `--quick` mode as CI does: any non-zero exit fails, the JSON must be
well-formed (benchmarks.common.schema_errors); what it measured is never judged here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.common import schema_errors

QuickRun = Callable[..., tuple[dict[str, Any], str]]


@pytest.fixture
def run_quick(tmp_path: Path) -> QuickRun:
    """`run_quick("buffer", *extra_args)` -> (the JSON it wrote, its stdout)."""

    def run(benchmark: str, *extra: str, timeout: float = 600) -> tuple[dict[str, Any], str]:
        out = tmp_path / f"{benchmark}.json"
        done = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{benchmark}", "--quick", "--json", str(out),
             *extra], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "MUJOCO_GL": "egl"})
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr}"
        payload = json.loads(out.read_text())
        assert schema_errors(payload) == []
        assert payload["benchmark"] == benchmark
        return payload, done.stdout

    return run
