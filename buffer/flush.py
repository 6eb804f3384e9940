"""Many files made durable at once: their fsyncs run side by side, so the file system commits
them in one go instead of one journal commit after another."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from robot_rl.core.durable import fsync_path

_POOL = ThreadPoolExecutor(8, thread_name_prefix="buffer-fsync")


def fsync_all(paths: Iterable[Path]) -> None:
    """Return once every file (or directory) in `paths` is on the disk; the first error raises."""
    unique = list(dict.fromkeys(paths))
    if len(unique) == 1:
        fsync_path(unique[0])
        return
    for done in [_POOL.submit(fsync_path, p) for p in unique]:
        done.result()
