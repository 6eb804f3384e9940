"""A site relay: each version crosses the upstream link once, however many robots it serves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from comms.messages import Message, decode_message
from comms.relay import WeightRelay
from comms.weight_sync import WeightSet
from comms.weight_sync_receiver import WeightReceiver
from comms.weight_sync_sender import WeightSender

CHUNK = 4096
ROBOTS = [f"robot{i}" for i in range(4)]


def model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"layer{i}.weight": rng.standard_normal((40, 50)).astype(np.float32)
            for i in range(10)}


class Site:
    """A cloud sender, one relay and four robots, every message carried through its bytes."""

    def __init__(self) -> None:
        self.cloud = WeightSender("patch", chunk_bytes=CHUNK)
        self.lock = threading.Lock()
        self.to_cloud: list[Message] = []
        self.to_relay: dict[str, list[Message]] = {r: [] for r in ROBOTS}
        self.relay = WeightRelay(self._queue(self.to_cloud), mode="patch", chunk_bytes=CHUNK)
        self.robots = {r: WeightReceiver(self._queue(self.to_relay[r])) for r in ROBOTS}
        self.upstream_chunks = 0

    def _queue(self, box: list[Message]) -> Callable[[Message], None]:
        def put(msg: Message) -> None:
            with self.lock:
                box.append(decode_message(msg.encode()))
        return put

    def _to_relay(self, messages: Iterable[Message]) -> None:
        for msg in messages:
            self.upstream_chunks += msg.kind == "weight_chunk"
            self.relay.handle_upstream(decode_message(msg.encode()))

    def _to_robot(self, robot: str, messages: Iterable[Message]) -> None:
        for msg in messages:
            self.robots[robot].handle(decode_message(msg.encode()))

    def sync(self, robots: list[str], timeout: float = 20.0) -> dict[str, WeightSet]:
        """Push the cloud's newest version through the relay to `robots`; what each applied."""
        self._to_relay(self.cloud.push("relay"))
        applied: dict[str, WeightSet] = {}
        deadline = time.monotonic() + timeout
        while len(applied) < len(robots):
            assert time.monotonic() < deadline, f"robots applied only {sorted(applied)}"
            with self.lock:
                up, self.to_cloud[:] = list(self.to_cloud), []
                down = {r: list(box) for r, box in self.to_relay.items()}
                for box in self.to_relay.values():
                    box.clear()
            for msg in up:
                self._to_relay(self.cloud.handle("relay", msg))
            if self.relay.advance() is not None:
                for robot in robots:
                    self._to_robot(robot, self.relay.push(robot))
            for robot, msgs in down.items():
                for msg in msgs:
                    self._to_robot(robot, self.relay.handle_downstream(robot, msg))
            for robot in robots:
                ws = self.robots[robot].poll()
                if ws is not None:
                    applied[robot] = ws
            time.sleep(0.005)
        return applied

    def close(self) -> None:
        self.relay.close()
        for robot in self.robots.values():
            robot.close()


def test_a_relay_serves_four_robots_with_one_upstream_transfer_per_version() -> None:
    site = Site()
    try:
        v1 = WeightSet.of(model(0), 1)
        site.cloud.publish(v1, 1)
        applied = site.sync(ROBOTS)
        full_chunks = -(-v1.nbytes // CHUNK)
        assert site.upstream_chunks == full_chunks  # once, not four times
        assert site.relay.downstream.stats["chunks_sent"] == 4 * full_chunks
        assert site.relay.downstream.stats["encoded"] == 1  # encoded once for all four
        assert {r: ws.digest for r, ws in applied.items()} == {r: v1.digest for r in ROBOTS}

        w2 = model(0)
        w2["layer2.weight"] += 1  # one layer of ten: a patch, upstream and downstream
        v2 = site.cloud.publish(w2, 2)
        site.upstream_chunks = 0
        applied = site.sync(ROBOTS)
        assert site.upstream_chunks == -(-w2["layer2.weight"].nbytes // CHUNK)
        assert all(ws.digest == v2.digest and ws.intact() for ws in applied.values())
    finally:
        site.close()


def test_a_relay_serves_each_robot_from_the_version_it_holds() -> None:
    """Robot 0 misses version 2; at version 3 it gets a patch against version 1 from the relay
    (which holds the last two versions), the others a patch against version 2."""
    site = Site()
    try:
        weights = model(1)
        site.cloud.publish(weights, 1)
        site.sync(ROBOTS)
        for version in (2, 3):
            weights = {k: a.copy() for k, a in weights.items()}
            weights[f"layer{version}.weight"][0, :5] = version
            site.cloud.publish(weights, version)
            applied = site.sync(ROBOTS[1:] if version == 2 else ROBOTS)
        assert {ws.version for ws in applied.values()} == {3}
        assert len({ws.digest for ws in applied.values()}) == 1
        assert site.relay.downstream.stats["encoded"] == 4  # v1 full, v2 vs v1, v3 vs v1 and v2
        assert all(site.robots[r].stats["refused"] == 0 for r in ROBOTS)
    finally:
        site.close()
