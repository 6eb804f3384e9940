"""Shared helpers of the benchmark scripts: machine description, targets, a table, the JSON file.

Exit codes, the same for every benchmark: 0 the run finished (and, in a full run, every target is
met); 1 it crashed (an uncaught exception); 2 bad arguments (argparse); 3 a full run finished but
missed a target. A `--quick` run judges and prints its targets like a full one but exits 0: its
figures come from too few samples to mean anything, and CI runs it to check that the benchmark
works and writes a well-formed JSON, never what it measured.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

OPS = {"<": lambda v, t: v < t, "<=": lambda v, t: v <= t,
       ">": lambda v, t: v > t, ">=": lambda v, t: v >= t}


PACKAGES = ("numpy", "torch", "mujoco", "zarr", "msgpack", "websockets", "torchrl")


def machine(packages: Sequence[str] = PACKAGES) -> dict:
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


def loopback_only(command: Sequence[str]) -> list[str]:
    """`command` inside a private network namespace with only loopback up, where this process can
    make one (root, with `unshare` and `ip`): what anything that starts Ray runs in on this
    machine. Elsewhere the command as it is, and Ray's own loopback setting applies."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return list(command)
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *command]


MISSED_TARGET = 3  # the exit code of a full run that missed a target (see the module docstring)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


TARGET_FIELDS: dict[str, Callable[[Any], bool]] = {
    "name": lambda v: isinstance(v, str) and bool(v),
    "value": lambda v: v is None or _number(v),
    "target": _number,
    "op": lambda v: v in OPS,
    "met": lambda v: isinstance(v, bool),
}


def schema_errors(payload: Any) -> list[str]:
    """What is wrong with a benchmark's JSON; empty when it has the shape every benchmark writes
    (benchmark, machine, results, and targets of exactly name/value/target/op/met)."""
    if not isinstance(payload, dict):
        return [f"the payload is a {type(payload).__name__}, not an object"]
    missing = [f"missing key {k!r}" for k in ("benchmark", "machine", "results", "targets")
               if k not in payload]
    if missing:
        return missing
    errors = []
    if not isinstance(payload["benchmark"], str) or not payload["benchmark"]:
        errors.append("'benchmark' is not a non-empty string")
    if not isinstance(payload["machine"], dict) or "cores" not in payload["machine"]:
        errors.append("'machine' does not describe the machine (no 'cores')")
    if not isinstance(payload["results"], dict):
        errors.append("'results' is not an object")
    if not isinstance(payload["targets"], list):
        return [*errors, "'targets' is not a list"]
    for i, t in enumerate(payload["targets"]):
        if not isinstance(t, dict) or set(t) != set(TARGET_FIELDS):
            errors.append(f"target {i} does not have exactly the fields {sorted(TARGET_FIELDS)}")
            continue
        errors += [f"target {i} ({t['name']!r}): {field} is {t[field]!r}"
                   for field, valid in TARGET_FIELDS.items() if not valid(t[field])]
    return errors


def report(benchmark: str, results: dict[str, Any], targets: list[dict[str, Any]],
           json_path: Path | None, *, quick: bool) -> int:
    """Print the targets, write the JSON when asked; the exit code (see the module docstring)."""
    print()
    print_table(["target", "value", "op", "goal", "met"],
                [[t["name"], t["value"], t["op"], t["target"], t["met"]] for t in targets])
    if json_path is not None:
        payload = {"benchmark": benchmark, "machine": machine(), "results": results,
                   "targets": targets}
        Path(json_path).write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {json_path}")
    missed = [t["name"] for t in targets if not t["met"]]
    if missed and quick:
        print(f"quick run: {len(missed)} target(s) missed, as a short run may; exit 0")
    elif missed:
        print(f"missed: {', '.join(missed)}")
        return MISSED_TARGET
    return 0


def die_with_parent() -> None:
    """In a benchmark's child (a worker process, or a command about to exec): be sent SIGTERM
    when the thread that started it ends, so a benchmark killed outright leaves nothing behind
    still training or streaming into a machine the next run measures."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_on_sigterm() -> None:
    """SIGTERM ends a benchmark like Ctrl-C (its `finally` blocks stop its workers), not at once."""
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
