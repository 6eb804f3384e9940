"""Durable file writes: data reaches the disk before it is named, so a crash leaves old or new."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries (a rename, a new file), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace `path` with `data` in one step: write a temp file, fsync it, rename it over.

    Callers that must also survive power loss of the rename itself fsync the parent directory.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
