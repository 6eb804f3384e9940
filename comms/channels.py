"""Keyed channels: named FIFO queues sharded by key (a robot id), each shard living where its
producer runs, so a site's observations and transitions stay on that site until a consumer
elsewhere asks for them.

A KeyedChannel sends `put(key, item)` and `get(key)` to the shard of that key; a ShardPlacement
decides where shards live and makes one the first time a producer puts to its key. LocalShards
keeps them in this process; robot_rl.runtime.ray.channels pins each to its producer's node.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import Any

from robot_rl.core import CommsError


class ChannelError(CommsError):
    """A channel cannot serve a key (no producer ever put to it within the wait)."""


class Shard(ABC):
    """One key's FIFO: items come out in the order they went in."""

    @abstractmethod
    async def put(self, item: Any) -> None:
        """Append `item`, waiting while the shard is full."""

    @abstractmethod
    async def get(self) -> Any:
        """The oldest item, waiting while the shard is empty."""

    @abstractmethod
    async def size(self) -> int: ...


class FifoShard(Shard):
    """A bounded FIFO on the event loop of its first caller (`capacity` 0: unbounded)."""

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self._queue: asyncio.Queue[Any] | None = None

    def _q(self) -> asyncio.Queue[Any]:
        if self._queue is None:
            self._queue = asyncio.Queue(self.capacity)
        return self._queue

    async def put(self, item: Any) -> None:
        await self._q().put(item)

    async def get(self) -> Any:
        return await self._q().get()

    async def size(self) -> int:
        return self._q().qsize()


class ShardPlacement(ABC):
    """Where each (channel, key) shard lives."""

    @abstractmethod
    def shard(self, channel: str, key: str, create: bool) -> Shard | None:
        """The shard of `key`; made where the caller (its producer) runs when `create` and it
        does not exist yet, else None."""

    @abstractmethod
    def keys(self, channel: str) -> list[str]:
        """The keys that have a shard."""


class LocalShards(ShardPlacement):
    """Every shard in this process."""

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self._shards: dict[tuple[str, str], FifoShard] = {}

    def shard(self, channel: str, key: str, create: bool) -> Shard | None:
        found = self._shards.get((channel, key))
        if found is None and create:
            found = self._shards[(channel, key)] = FifoShard(self.capacity)
        return found

    def keys(self, channel: str) -> list[str]:
        return sorted(k for c, k in self._shards if c == channel)


class KeyedChannel:
    """A named channel of FIFO shards, one per key."""

    def __init__(self, name: str, placement: ShardPlacement) -> None:
        self.name, self.placement = name, placement
        self._known: dict[str, Shard] = {}

    def _shard(self, key: str, create: bool) -> Shard | None:
        shard = self._known.get(key)
        if shard is None:
            shard = self.placement.shard(self.name, key, create)
            if shard is not None:
                self._known[key] = shard
        return shard

    async def put(self, key: str, item: Any) -> None:
        """Append `item` to `key`'s shard (made where this producer runs if it is the first)."""
        shard = self._shard(key, create=True)
        assert shard is not None
        await shard.put(item)

    async def get(self, key: str, wait_s: float = 10.0) -> Any:
        """The oldest item of `key`; ChannelError if no producer made its shard within
        `wait_s` (a consumer never makes one: that would put a site's data elsewhere)."""
        deadline = time.monotonic() + wait_s
        while (shard := self._shard(key, create=False)) is None:
            if time.monotonic() > deadline:
                raise ChannelError(f"channel {self.name!r} has no shard {key!r} (no producer "
                                   f"put to it within {wait_s:g} s); keys: {self.keys()}")
            await asyncio.sleep(0.05)
        return await shard.get()

    async def size(self, key: str) -> int:
        shard = self._shard(key, create=False)
        return 0 if shard is None else await shard.size()

    def keys(self) -> list[str]:
        return self.placement.keys(self.name)
