"""Hardware files: YAML lists of units that discovery cannot find alone (network robots, ...).

    units:
      - name: arm0             # how sessions and `robot-rl hal check` name it
        type: network_robot    # a checker type in hal.checker.CHECKERS
        model: ur5e
        host_env: ARM0_HOST    # read on the node that owns it: no IPs in committed files
        port: 30002
        node: lab-pc-1         # optional: the host that owns it (default: any that reads this)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hal.units import DeclaredUnit
from robot_rl.core import ConfigError


def _entry(path: Path, index: int, raw: Any) -> DeclaredUnit:
    where = f"{path}: units[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping with `name` and `type`, got {raw!r:.60}")
    fields = dict(raw)
    for key in ("name", "type"):
        if not isinstance(fields.get(key), str) or not fields[key]:
            raise ConfigError(f"{where} needs a `{key}` string")
    node = fields.pop("node", None)
    if node is not None and not isinstance(node, str):
        raise ConfigError(f"{where}: `node` must be a host name, got {node!r}")
    return DeclaredUnit(fields.pop("name"), fields.pop("type"), fields, node)


def load_hardware(paths: Iterable[Path]) -> tuple[DeclaredUnit, ...]:
    """The units declared in `paths`, in order; ConfigError naming the file and entry if bad."""
    units: list[DeclaredUnit] = []
    seen: dict[tuple[str, str | None], Path] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the hardware file: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("units", []), list):
            raise ConfigError(f"{path}: a hardware file is a mapping with a `units:` list")
        for i, raw in enumerate(doc.get("units") or []):
            unit = _entry(path, i, raw)
            if (unit.name, unit.node) in seen:
                raise ConfigError(f"{path}: unit {unit.name!r} is declared twice (first in "
                                  f"{seen[unit.name, unit.node]}); give each unit its own name")
            seen[unit.name, unit.node] = path
            units.append(unit)
    return tuple(units)
