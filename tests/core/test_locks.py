"""The writer lock: one holder at a time, the holder named in the refusal, gone with its process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robot_rl.core.locks import LockedError, WriterLock

HOLD = """
import sys, time
from pathlib import Path
from robot_rl.core.locks import WriterLock
WriterLock(Path(sys.argv[1]), "run x").acquire()
print("held", flush=True)
time.sleep(60)
"""


def hold_in_child(path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[2])
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path / "w.lock")
    try:
        with pytest.raises(LockedError) as refused:
            WriterLock(tmp_path / "w.lock", "run x").acquire()
        message = str(refused.value)
        assert f"pid {child.pid}" in message and "run x is being written by" in message
        assert "since" in message and "Stop that process first" in message
    finally:
        child.kill()
        child.wait()


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path / "w.lock")
    child.kill()  # kill -9: no cleanup ran, the kernel drops the lock
    child.wait()
    lock = WriterLock(tmp_path / "w.lock", "run x").acquire()
    assert lock.held
    lock.release()


def test_release_lets_the_next_writer_in_and_acquire_is_idempotent(tmp_path: Path) -> None:
    first = WriterLock(tmp_path / "w.lock", "run x")
    assert first.acquire() is first.acquire()
    with pytest.raises(LockedError):  # a second open file in the same process is a second writer
        WriterLock(tmp_path / "w.lock", "run x").acquire()
    first.release()
    with WriterLock(tmp_path / "w.lock", "run x") as second:
        assert second.held
    assert not second.held
