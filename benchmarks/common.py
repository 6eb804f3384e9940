"""Shared helpers of the benchmark scripts: machine description, targets, a table, the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

OPS = {"<": lambda v, t: v < t, "<=": lambda v, t: v <= t,
       ">": lambda v, t: v > t, ">=": lambda v, t: v >= t}


def machine(packages: Sequence[str] = ("numpy", "msgpack", "websockets", "torch")) -> dict:
    """Cores, memory and versions of the machine the numbers were measured on."""
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"cores": os.cpu_count(), "memory_gb": round(pages * page_size / 2**30, 1),
            "platform": platform.platform(), "python": sys.version.split()[0],
            "versions": versions}


def target(name: str, value: float | None, goal: float, op: str) -> dict[str, Any]:
    """One target of the issue, judged on the measured value (None: not measured, not met)."""
    met = value is not None and bool(OPS[op](value, goal))
    return {"name": name, "value": value, "target": goal, "op": op, "met": met}


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    """A plain fixed-width table on stdout, under an optional title."""
    if title:
        print(f"\n{title}")
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def report(benchmark: str, results: dict[str, Any], targets: list[dict[str, Any]],
           json_path: Path | None) -> int:
    """Print the targets, write the JSON when asked; exit code 0 when every target is met."""
    print()
    print_table(["target", "value", "op", "goal", "met"],
                [[t["name"], t["value"], t["op"], t["target"], t["met"]] for t in targets])
    if json_path is not None:
        payload = {"benchmark": benchmark, "machine": machine(), "results": results,
                   "targets": targets}
        Path(json_path).write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {json_path}")
    return 0 if all(t["met"] for t in targets) else 1
