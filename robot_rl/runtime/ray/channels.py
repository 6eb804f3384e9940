"""Keyed channels on Ray: each shard an async actor pinned to the node of the producer that
first put to its key (comms.channels), so a site's data stays on its node until a consumer
elsewhere asks for it."""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from comms.channels import FifoShard, Shard, ShardPlacement

NAMESPACE = "robot_rl.channels"


@ray.remote(num_cpus=0)
class ShardActor:
    """One key's FIFO, living on its producer's node."""

    def __init__(self, capacity: int) -> None:
        self.fifo = FifoShard(capacity)

    async def put(self, item: Any) -> None:
        await self.fifo.put(item)

    async def get(self) -> Any:
        return await self.fifo.get()

    async def size(self) -> int:
        return await self.fifo.size()

    def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


class RayShard(Shard):
    """A handle to a ShardActor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def put(self, item: Any) -> None:
        await self.actor.put.remote(item)

    async def get(self) -> Any:
        return await self.actor.get.remote()

    async def size(self) -> int:
        return int(await self.actor.size.remote())


class RayShards(ShardPlacement):
    """Shards as named Ray actors, each made on the node of the process that first puts to its
    key (hard node affinity: it never moves to another node). A shard is owned by that
    producer: it lives while the producer holds its channel, and goes with it."""

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity

    @staticmethod
    def _name(channel: str, key: str) -> str:
        return f"{channel}/{key}"

    def shard(self, channel: str, key: str, create: bool) -> Shard | None:
        name = self._name(channel, key)
        try:
            return RayShard(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:
            if not create:
                return None
        here = ray.get_runtime_context().get_node_id()
        actor = ShardActor.options(  # type: ignore[attr-defined]
            name=name, namespace=NAMESPACE, get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        ).remote(self.capacity)
        return RayShard(actor)

    def keys(self, channel: str) -> list[str]:
        prefix = f"{channel}/"
        named = ray.util.list_named_actors(all_namespaces=True)
        return sorted(a["name"][len(prefix):] for a in named
                      if a["namespace"] == NAMESPACE and a["name"].startswith(prefix))
