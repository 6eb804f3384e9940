"""Placement on Ray: a node's robots and GPUs as its Ray resources, each part's actor options.

Each robot is a custom resource `robot:<unit>` of the node that hosts it; each GPU counts in Ray's
own GPUs and as `gpu:<index>`, so a part gets the very GPU it was placed on; `host:<node>` pins a
part to its node (`hal.placement` names them all). A part's options ask for exactly its units
and give its process only them: CUDA_VISIBLE_DEVICES, the unit it owns, its robot's endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from hal.inventory import Inventory
from hal.placement import Assignment, Placement, PlacementError, requests

UNIT_ENV = "ROBOT_RL_UNIT"  # the unit a part's process owns: its robot, its GPU, or `cpu`
ENDPOINT_ENV = "ROBOT_RL_ROBOT_ENDPOINT"  # host:port of a network robot's controller
GPUS_ENV = "CUDA_VISIBLE_DEVICES"
KEEP_GPUS_ENV = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"  # Ray leaves ours as it is


def process_env(assignment: Assignment) -> dict[str, str]:
    """The environment of a part's process: only its GPU visible (none for a robot or a CPU
    learner), the unit it owns, and a network robot's endpoint."""
    unit = assignment.unit
    gpus, _ = requests(assignment)
    env = {UNIT_ENV: unit.name, GPUS_ENV: str(unit.meta["index"]) if gpus else ""}
    if gpus:
        env[KEEP_GPUS_ENV] = "1"
    if unit.robot and "host" in unit.meta and "port" in unit.meta:
        env[ENDPOINT_ENV] = f"{unit.meta['host']}:{unit.meta['port']}"
    return env


def actor_options(assignment: Assignment) -> dict[str, Any]:
    """`SomeActor.options(**actor_options(a))`: the resources a part asks for (its robot or its
    GPU, on its node) and its process's environment."""
    gpus, resources = requests(assignment)
    return {"num_gpus": gpus, "resources": resources,
            "runtime_env": {"env_vars": process_env(assignment)}}


def check_ray_resources(placement: Placement) -> None:
    """PlacementError unless the cluster offers every resource the plan asks for: a node whose
    Ray started without its units' resources would leave a part waiting forever."""
    offered = ray.cluster_resources()
    missing = sorted({f"{name} (for the {a.part} on {a.unit.node})"
                      for a in (*placement.robots, placement.learner)
                      for name in requests(a)[1] if name not in offered})
    if missing:
        raise PlacementError(
            f"placement: Ray offers no {', '.join(missing)}; start Ray on that node with "
            "`ray start --address=HEAD:PORT $(robot-rl hal resources)`")


def cluster_inventories(probe: Callable[[], Inventory]) -> list[Inventory]:
    """Every live node's inventory, taken on the node itself by `probe` (so fields left to its
    environment variables resolve there), one Ray task per node."""
    remote = ray.remote(num_cpus=0)(probe)
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    return ray.get([remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node, soft=False)).remote() for node in nodes])
