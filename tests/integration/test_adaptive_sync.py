"""Adaptive weight sync on a real link: a slow emulated WAN (comms.netem) gets patches, loopback
gets whole versions; each choice is logged with its reason."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pytest

from comms.adaptive import SyncBounds
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.gateway import GatewayThread
from comms.netem import NetemProfile, NetemProxy
from comms.weight_service import WeightService
from comms.weight_sync_sender import WeightSender

SLOW = NetemProfile(delay=0.03, bandwidth=2e6)  # 60 ms round trip, 2 MB/s


def layers(version: int) -> dict[str, np.ndarray]:
    """Ten 80 kB layers; version v changes layer v-1 only."""
    return {f"layer{i}": np.full((100, 200), min(version, i + 1), np.float32) for i in range(10)}


def sync(gw: GatewayThread, link: EdgeLink, version: int) -> dict[str, object]:
    gw.publish_weights(layers(version), version)
    deadline = time.monotonic() + 30
    while (got := link.poll_weights()) is None or got.version != version:
        assert time.monotonic() < deadline, gw.weight_stats()
        time.sleep(0.01)
    assert got.intact() and got.exact
    return gw.weight_stats()["edge-1"]


def adaptive_gateway(start_gateway: Callable[..., GatewayThread]) -> GatewayThread:
    return start_gateway(weights=WeightService(WeightSender("full"), bounds=SyncBounds()))


def wait_rtt(gw: GatewayThread, link: EdgeLink) -> float:
    link.weights.receiver.subscribe("test")  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while (gw.weight_stats().get("edge-1") or {}).get("rtt_s") is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return float(gw.weight_stats()["edge-1"]["rtt_s"])  # type: ignore[arg-type]


def test_a_slow_emulated_link_gets_patches(start_gateway: Callable[..., GatewayThread],
                                           make_link: Callable[..., EdgeLink],
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "comms.weight_service")
    gw = adaptive_gateway(start_gateway)
    proxy = NetemProxy(gw.port, SLOW).start()
    try:
        link = make_link(f"ws://127.0.0.1:{proxy.port}", weights=EdgeWeights())
        assert wait_rtt(gw, link) >= 0.06
        first = sync(gw, link, 1)
        assert str(first["plan"]).startswith("patch: slow link, nothing held to patch yet")
        second = sync(gw, link, 2)
        assert second["mode"] == "patch"  # only layer 1 crossed the link
        assert second["bytes_per_s"] is not None and second["bytes_per_s"] < 10e6
        assert any("patch: slow link" in r.message for r in caplog.records)
    finally:
        proxy.stop()


def test_loopback_gets_whole_versions(start_gateway: Callable[..., GatewayThread],
                                      make_link: Callable[..., EdgeLink]) -> None:
    gw = adaptive_gateway(start_gateway)
    link = make_link(f"ws://127.0.0.1:{gw.port}", weights=EdgeWeights())
    assert wait_rtt(gw, link) < 0.02
    first = sync(gw, link, 1)
    assert first["mode"] == "full" and str(first["plan"]).startswith("full: fast link")
