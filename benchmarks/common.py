"""Shared parts of every benchmark: machine description, targets, the JSON file and the table."""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", type=Path, default=None, help="write results here")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    return p


def machine(packages: tuple[str, ...] = ("numpy", "mujoco", "torch", "zarr")) -> dict[str, Any]:
    """Cores, memory and library versions of the machine the benchmark ran on."""
    versions = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cores": os.cpu_count(), "memory_gb": round(memory / 2**30, 1),
            "python": sys.version.split()[0], "platform": platform.platform(), **versions}


def target(name: str, value: float, goal: float, op: str = ">=") -> dict[str, Any]:
    return {"name": name, "value": value, "target": goal, "op": op, "met": OPS[op](value, goal)}


def table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned text table."""
    keys = list(rows[0])
    cells = [[f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def finish(name: str, results: Any, targets: list[dict[str, Any]], path: Path | None) -> None:
    """Print the targets and write the benchmark's JSON (if asked)."""
    for t in targets:
        print(f"target {t['name']}: {t['value']:.3g} {t['op']} {t['target']} -> "
              f"{'met' if t['met'] else 'NOT met'}")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"benchmark": name, "machine": machine(), "results": results, "targets": targets}
        path.write_text(json.dumps(payload, indent=2))
        print(f"wrote {path}")
