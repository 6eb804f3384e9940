"""Shared helpers of benchmark scripts: machine description, targets, tables, the JSON file."""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def machine() -> dict[str, Any]:
    """Cores, memory and library versions of the machine a benchmark ran on."""
    versions = {}
    for package in ("numpy", "torch", "mujoco", "zarr"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "memory_gib": round(memory, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions}


def target(name: str, value: float | None, goal: float, op: str) -> dict[str, Any]:
    """One entry of `targets`; a target whose measurement did not run has value None, met False."""
    met = value is not None and bool(OPS[op](value, goal))
    return {"name": name, "value": value, "target": goal, "op": op, "met": met}


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write results here")


def write_json(path: Path | None, benchmark: str, results: dict[str, Any],
               targets: list[dict[str, Any]]) -> None:
    """Write the benchmark's JSON (benchmark, machine, results, targets) if a path is given."""
    if path is None:
        return
    record = {"benchmark": benchmark, "machine": machine(), "results": results,
              "targets": targets}
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"\nresults -> {path}")
