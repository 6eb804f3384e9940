"""Keyed channels in one process: FIFO per key, bounded shards push back, a consumer never makes
a shard (it waits for the producer's, then says which keys exist)."""

from __future__ import annotations

import asyncio

import pytest

from comms.channels import ChannelError, KeyedChannel, LocalShards


def test_each_key_is_its_own_fifo() -> None:
    async def run() -> tuple[list[int], list[int], list[str]]:
        channel = KeyedChannel("transitions", LocalShards())
        for i in range(5):
            await channel.put("r1", i)
            await channel.put("r2", 100 + i)
        first = [await channel.get("r1") for _ in range(5)]
        second = [await channel.get("r2") for _ in range(5)]
        return first, second, channel.keys()

    first, second, keys = asyncio.run(run())
    assert first == [0, 1, 2, 3, 4] and second == [100, 101, 102, 103, 104]
    assert keys == ["r1", "r2"]


def test_a_full_shard_makes_its_producer_wait_for_a_consumer() -> None:
    async def run() -> tuple[bool, int]:
        channel = KeyedChannel("obs", LocalShards(capacity=2))
        await channel.put("r1", "a")
        await channel.put("r1", "b")
        third = asyncio.ensure_future(channel.put("r1", "c"))
        await asyncio.sleep(0.05)
        waited = not third.done()
        assert await channel.get("r1") == "a"
        await asyncio.wait_for(third, 1.0)
        return waited, await channel.size("r1")

    assert asyncio.run(run()) == (True, 2)


def test_a_consumer_waits_for_the_producers_shard_and_never_makes_one() -> None:
    async def run() -> object:
        channel = KeyedChannel("obs", LocalShards())
        getter = asyncio.ensure_future(channel.get("r9", wait_s=5.0))
        await asyncio.sleep(0.1)
        assert channel.keys() == []  # waiting made no shard
        await channel.put("r9", "late")
        return await getter

    assert asyncio.run(run()) == "late"

    async def missing() -> None:
        channel = KeyedChannel("obs", LocalShards())
        await channel.put("r1", 1)
        await channel.get("nobody", wait_s=0.1)

    with pytest.raises(ChannelError, match=r"no shard 'nobody' .* keys: \['r1'\]"):
        asyncio.run(missing())
