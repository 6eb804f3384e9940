"""A running session's state in its run directory (`<run>/status.json`), rewritten at each sample
by the session, read by `robot-rl status` from any shell: each part's state and restarts, each
robot's health, lease and weights version. No Ray, no lock: a file replaced atomically."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from robot_rl.core.durable import write_file_atomic
from robot_rl.runtime.run_dir import RunDir

STATUS = "status.json"


def write_status(run: RunDir, status: dict[str, Any]) -> None:
    """Replace the run's status (no fsync: it is rewritten every half second)."""
    body = {**status, "updated": time.time(), "pid": os.getpid()}
    write_file_atomic(run.root / STATUS, json.dumps(body).encode(), fsync=False)


def read_status(run: RunDir) -> dict[str, Any] | None:
    """The last status a session wrote, with `running` (its process is alive), or None."""
    path: Path = run.require().root / STATUS
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    status["running"] = status.get("state") == "running" and _alive(int(status.get("pid", -1)))
    return status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return pid > 0


def describe(status: dict[str, Any]) -> list[str]:
    """The lines `robot-rl status` prints."""
    ago = time.time() - float(status.get("updated", 0))
    state = "running" if status["running"] else (
        f"not running ({status.get('state', 'stopped')}, last seen {ago:.0f} s ago)")
    lines = [f"session {state}: {status.get('env_steps', 0)}/{status.get('budget', '?')} steps, "
             f"{status.get('updates', 0)} updates, policy version {status.get('policy_version')}"]
    lines.append("parts:")
    for name, part in status.get("parts", {}).items():
        lines.append(f"  {name:<16} {part['state']:<14} pid {part['pid']}  restarts "
                     f"{part['restarts']}")
    lines.append("robots:")
    for robot, info in status.get("robots", {}).items():
        latency = info.get("sync_latency_s")
        lines.append(
            f"  {robot:<16} {info.get('kind', 'sim'):<5} health {info.get('health', '-'):<8} "
            f"lease {info.get('lease', '-'):<10} version {info.get('version', '-')}  sync "
            f"{'-' if latency is None else f'{latency:.3f} s'}")
    for line in status.get("events", [])[-5:]:
        lines.append(f"  {line}")
    return lines
