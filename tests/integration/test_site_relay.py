"""A site relay in front of a real gateway: four robots, one upstream transfer per version; their
transitions pass through exactly once; refusals and an unreachable cloud reach the robots."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from comms.bulk import BulkServer
from comms.connection import LoopThread
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.gateway import Gateway, GatewayThread
from comms.relay import SiteRelay
from comms.spool import Spool
from comms.weight_service import WeightService
from comms.weight_sync_sender import WeightSender
from robot_rl.core import AuthError
from robot_rl.runtime.buffer_sink import BufferSink
from tests.integration.comms_helpers import (
    ACTION_SPEC,
    DIGEST,
    FAST,
    OBS_SPEC,
    QUICK_BACKOFF,
    TOKEN,
    assert_exactly_once,
    numbered,
)

ROBOTS = ["r1", "r2", "r3", "r4"]


def layers(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"layer{i}": rng.standard_normal((100, 100)).astype(np.float32) for i in range(10)}


class Site:
    """A cloud gateway, a relay in front of it, and robots dialling the relay."""

    def __init__(self, tmp: Path, upstream_port: int | None = None, token: bytes = TOKEN) -> None:
        self.cloud_weights = WeightService(WeightSender("patch"), bulk=BulkServer())
        self.cloud = GatewayThread(Gateway(
            BufferSink(tmp / "buffer", OBS_SPEC, ACTION_SPEC), TOKEN, DIGEST, timings=FAST,
            weights=self.cloud_weights))
        port = self.cloud.port if upstream_port is None else upstream_port
        self.relay_weights = WeightService(WeightSender("patch"), bulk=BulkServer())
        self.relay = SiteRelay(f"ws://127.0.0.1:{port}", token, "relay-site",
                               self.relay_weights, timings=FAST)
        self.thread = LoopThread("relay")
        self.thread.run(self.relay.start(), 10)
        self.links: list[EdgeLink] = []
        self.tmp = tmp

    def robot(self, robot: str, token: bytes = TOKEN) -> EdgeLink:
        link = EdgeLink(f"ws://127.0.0.1:{self.relay.port}", token, robot, DIGEST,
                        Spool(self.tmp / f"{robot}.spool"), streams=[robot], timings=FAST,
                        backoff=QUICK_BACKOFF, weights=EdgeWeights())
        self.links.append(link)
        return link.start()

    def close(self) -> None:
        if not self.thread.loop.is_running():
            return
        for link in self.links:
            link.close()
            link.spool.close()
        self.thread.run(self.relay.stop(), 20)
        self.thread.stop()
        self.cloud.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(**kwargs: object) -> Site:
        sites.append(Site(tmp_path, **kwargs))  # type: ignore[arg-type]
        return sites[-1]

    yield make
    for s in sites:
        s.close()


def wait_until(cond: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_four_robots_cost_the_upstream_one_transfer_per_version(
        tmp_path: Path, site: Callable[..., Site]) -> None:
    s = site()
    wait_until(lambda: s.relay.upstream.connected)
    robots = [s.robot(r) for r in ROBOTS]
    wait_until(lambda: all(link.connected for link in robots))
    weights = layers()
    held: dict[str, int] = {}
    for version in (1, 2, 3):
        s.cloud.publish_weights(weights, version)
        deadline = time.monotonic() + 20
        while any(held.get(r) != version for r in ROBOTS):
            assert time.monotonic() < deadline, (held, s.relay_weights.edge_stats())
            for r, link in zip(ROBOTS, robots, strict=True):
                got = link.poll_weights()
                if got is not None:
                    assert got.version >= held.get(r, 0)
                    held[r] = got.version
                    for name, arr in weights.items():
                        assert got.tensors[name].tobytes() == arr.tobytes()
            time.sleep(0.005)
        weights = dict(weights)
        weights[f"layer{version}"] = weights[f"layer{version}"] + np.float32(1)
    cloud = s.cloud.weight_stats()
    assert set(cloud) == {"relay-site"}  # the robots never asked the cloud for weights
    assert cloud["relay-site"]["version"] == 3
    pushed = s.cloud_weights.stats["pushed_bulk"] + s.cloud_weights.stats["pushed_websocket"]
    assert pushed == 3  # one upstream transfer per version, for four robots
    assert cloud["relay-site"]["mode"] == "patch"  # and after the first, only the change
    local = s.relay_weights.edge_stats()
    assert {r: local[r]["version"] for r in ROBOTS} == dict.fromkeys(ROBOTS, 3)
    assert s.relay_weights.stats["pushed_bulk"] == 12

    robots[0].publish("r1", [numbered(i) for i in range(30)])  # data passes through untouched
    assert robots[0].wait_acked(20.0), robots[0].stats
    robots[0].close()
    s.close()
    assert_exactly_once(tmp_path / "buffer", 30)


def test_a_wrong_token_is_refused_end_to_end_through_the_relay(site: Callable[..., Site]) -> None:
    s = site()
    wait_until(lambda: s.relay.upstream.connected)
    link = s.robot("r1", token=b"not-the-token-at-all-0123")
    wait_until(lambda: link.fatal_error is not None)
    assert isinstance(link.fatal_error, AuthError)
    assert "wrong shared token" in str(link.fatal_error)


def test_a_relay_with_a_wrong_token_fails_its_own_link_at_once(site: Callable[..., Site]) -> None:
    s = site(token=b"not-the-token-at-all-0123")
    wait_until(lambda: s.relay.upstream.fatal_error is not None)
    assert isinstance(s.relay.upstream.fatal_error, AuthError)


def test_robots_of_a_relay_whose_cloud_is_unreachable_retry(site: Callable[..., Site]) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    s = site(upstream_port=dead)
    link = s.robot("r1")
    wait_until(lambda: link.stats["disconnects"] >= 2)
    assert link.fatal_error is None and not link.connected  # it keeps trying, nothing fatal
