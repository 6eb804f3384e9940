"""Fixtures of the comms integration tests: in-process gateways and edge links on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comms.edge_link import EdgeLink
from comms.gateway import Gateway, GatewayThread, InferenceServer
from comms.spool import Spool
from robot_rl.runtime.buffer_sink import BufferSink
from tests.integration.comms_helpers import (
    ACTION_SPEC,
    DIGEST,
    FAST,
    OBS_SPEC,
    QUICK_BACKOFF,
    TOKEN,
)


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayThread]]:
    """Start in-process gateways over the buffer in tmp_path/buffer; all are stopped at the end."""
    started: list[GatewayThread] = []

    def start(port: int = 0, inference: InferenceServer | None = None, **kwargs: object
              ) -> GatewayThread:
        sink = BufferSink(tmp_path / "buffer", OBS_SPEC, ACTION_SPEC)
        gw = GatewayThread(Gateway(sink, kwargs.pop("token", TOKEN), DIGEST,  # type: ignore[arg-type]
                                   inference=inference, port=port, timings=FAST, **kwargs))
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def make_link(tmp_path: Path) -> Iterator[Callable[..., EdgeLink]]:
    """Start edge links spooling to tmp_path/spool; all are closed at the end."""
    links: list[EdgeLink] = []

    def make(url: str, **kwargs: object) -> EdgeLink:
        spool = Spool(tmp_path / "edge.spool")
        token = kwargs.pop("token", TOKEN)
        link = EdgeLink(url, token, "edge-1", DIGEST, spool, streams=["r1"],  # type: ignore[arg-type]
                        timings=FAST, backoff=QUICK_BACKOFF, **kwargs)
        links.append(link)
        return link.start()

    yield make
    for link in links:
        link.close()
        link.spool.close()


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One private Ray instance (every socket on 127.0.0.1) for the suite's in-process sessions;
    each session finds it started and keeps it, as in a notebook."""
    import ray

    from hal.placement import node_resources
    from robot_rl.runtime.build import local_inventory
    from robot_rl.runtime.ray.cluster import start_local_ray

    offered = node_resources(local_inventory())  # every unit of this node, as a session's Ray
    start_local_ray(tmp_path_factory.mktemp("ray") / "ray.log", offered)
    yield
    ray.shutdown()
