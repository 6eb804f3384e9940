"""Run by tests/runtime/test_ray_channels.py in a private network namespace: a two-node local
Ray cluster, a producer pinned to the second node, a consumer on the first; prints one JSON."""

from __future__ import annotations

import asyncio
import json
import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray socket on 127.0.0.1

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from comms.channels import KeyedChannel  # noqa: E402
from robot_rl.runtime.ray.channels import NAMESPACE, RayShards  # noqa: E402


@ray.remote(num_cpus=0, resources={"site_b": 0.01})
class Producer:
    """A robot's side on the second node: puts its transitions to its own key (and holds the
    channel, which keeps its shard alive)."""

    def __init__(self) -> None:
        self.channel = KeyedChannel("transitions", RayShards())

    async def run(self, key: str, n: int) -> str:
        for i in range(n):
            await self.channel.put(key, {"seq": i})
        return str(ray.get_runtime_context().get_node_id())


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, resources={"site_b": 1}, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        producer = Producer.remote()  # type: ignore[attr-defined]
        producer_node = ray.get(producer.run.remote("r1", 20))
        channel = KeyedChannel("transitions", RayShards())

        async def consume() -> list[int]:
            return [(await channel.get("r1"))["seq"] for _ in range(20)]

        seqs = asyncio.run(consume())
        shard = ray.get_actor("transitions/r1", namespace=NAMESPACE)
        print(json.dumps({
            "seqs": seqs, "producer_node": producer_node,
            "shard_node": ray.get(shard.node_id.remote()),
            "consumer_node": str(ray.get_runtime_context().get_node_id()),
            "keys": channel.keys()}), flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
