"""Exclusive writer locks: an OS file lock the kernel drops when its process dies.

A crash never leaves a stale lock. The lock file also records who holds it (pid, command, start
time), so a refused writer can say which process is in the way.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from robot_rl.core.errors import StorageError


class LockedError(StorageError):
    """Another process holds the writer lock of a run directory or buffer."""


def holder_of(path: Path) -> dict[str, Any] | None:
    """Who last took the lock at `path` (pid, command, since), or None when unknown."""
    try:
        info = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def describe_holder(info: dict[str, Any] | None) -> str:
    """One phrase naming a lock holder: 'pid 123 (robot-rl train ..., since 14:02:11)'."""
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("since", 0))))
    return f"pid {info.get('pid')} ({info.get('command', '?')}, since {since})"


class WriterLock:
    """An exclusive, non-blocking lock on `path` held until `release()` or process death."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = Path(path), what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> WriterLock:
        """Take the lock now or raise LockedError naming the holder; idempotent while held."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"{self.what} is being written by {describe_holder(holder_of(self.path))}: one "
                "writer at a time. Stop that process first, or use another run.dir; read-only "
                "commands (info, replay, buffer info/export) work while it runs") from None
        command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
        record = {"pid": os.getpid(), "command": command[:300], "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; its content is only a hint for the next refusal)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
