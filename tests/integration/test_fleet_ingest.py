"""Many edges into one gateway: their batches share commits (group commit), every stream lands
exactly once, a hostile edge among them costs only itself, and a gateway SIGKILLed while commits
of several edges are in flight loses nothing acked and stores nothing twice."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from comms.edge_link import EdgeLink
from comms.gateway import GatewayThread
from comms.messages import spec_digest, transition_to_body
from comms.spool import Spool
from robot_rl.core import Transition
from tests.integration.comms_helpers import (
    DIGEST,
    FAST,
    QUICK_BACKOFF,
    TOKEN,
    numbered,
    open_buffer,
)
from tests.integration.test_comms_restarts import (
    free_port,
    reach_specs,
    start_gateway_process,
)
from tests.integration.test_hostile_edges import batch_frame, of_m, send_and_close

EDGES, PER_EDGE = 8, 40


def of(stream: str, i: int) -> Transition:
    """Transition `i` of `stream`'s robot (robot id = stream id; wall_time carries i)."""
    return dataclasses.replace(numbered(i), robot_id=stream)


def links(tmp_path: Path, url: str, digest: str = DIGEST, n: int = EDGES) -> list[EdgeLink]:
    return [EdgeLink(url, TOKEN, f"edge-{k}", digest, Spool(tmp_path / f"e{k}.spool"),
                     streams=[f"s{k}"], timings=FAST, backoff=QUICK_BACKOFF).start()
            for k in range(n)]


def stream_rows(path: Path) -> dict[str, np.ndarray]:
    """Each robot's rows' wall_time, in row order."""
    buffer = open_buffer(path)
    steps = buffer.storage.read_steps()
    return {name: steps["timestamp"][steps["robot_id"] == i]
            for i, name in enumerate(buffer.storage.robots)}


def publish_all(edges: list[EdgeLink], count: int, make: Callable[[str, int], Transition],
                pause: float = 0.002) -> None:
    """Each edge publishes `count` transitions one at a time, all edges at once."""
    def run(link: EdgeLink, stream: str) -> None:
        for i in range(count):
            link.publish(stream, [make(stream, i)], {0: True} if i % 10 == 9 else None)
            time.sleep(pause)

    threads = [threading.Thread(target=run, args=(link, f"s{k}")) for k, link in enumerate(edges)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def close(edges: list[EdgeLink]) -> None:
    for link in edges:
        link.close()
        link.spool.close()


def test_edges_streaming_together_share_commits_and_each_stream_lands_exactly_once(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread]) -> None:
    gw = start_gateway()
    edges = links(tmp_path, f"ws://127.0.0.1:{gw.port}")
    try:
        publish_all(edges, PER_EDGE, of)
        assert all(link.wait_acked(30.0) for link in edges), [link.stats for link in edges]
        assert all(link.stats["disconnects"] == 0 for link in edges)
    finally:
        close(edges)
    gw.stop()
    rows = stream_rows(tmp_path / "buffer")
    assert set(rows) == {f"s{k}" for k in range(EDGES)}
    for stream, wall in rows.items():
        np.testing.assert_array_equal(wall, np.arange(PER_EDGE, dtype=np.float64), stream)
    buffer = open_buffer(tmp_path / "buffer")
    assert buffer.commit_meta["streams"] == {f"s{k}": PER_EDGE - 1 for k in range(EDGES)}
    assert buffer.num_episodes == EDGES * PER_EDGE // 10
    assert gw.gateway.stats["committed"] == EDGES * PER_EDGE
    # 320 batches were sent one transition each; their edges shared commits
    assert buffer.storage.commit_no < EDGES * PER_EDGE / 2, buffer.storage.commit_no


def test_a_hostile_edge_among_streaming_ones_costs_only_itself(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread]) -> None:
    gw = start_gateway()
    edges = links(tmp_path, f"ws://127.0.0.1:{gw.port}", n=4)
    bad = transition_to_body(of_m(0))
    bad["reward"] = math.nan
    off_spec = transition_to_body(dataclasses.replace(
        of_m(0), obs={"state": np.full(3, np.inf, np.float32),
                      "image": np.zeros((16, 16, 3), np.uint8)}))
    refusals: list[tuple[int, str]] = []

    def hostile() -> None:  # bad batches arriving while the honest edges' batches are committed
        for body in [bad, off_spec] * 5:
            refusals.append(asyncio.run(send_and_close(gw.port, batch_frame(0, [body]))))

    attacker = threading.Thread(target=hostile)
    try:
        attacker.start()
        publish_all(edges, PER_EDGE, of, pause=0.01)
        attacker.join()
        assert all(link.wait_acked(30.0) for link in edges), [link.stats for link in edges]
        assert all(link.stats["disconnects"] == 0 for link in edges)
    finally:
        close(edges)
    assert [code for code, _ in refusals] == [1002] * 10
    assert all("reward must be a finite number" in reason for _, reason in refusals[::2])
    assert all(reason.startswith("batch refused: stream m seq 0 obs['state']: contains NaN")
               for _, reason in refusals[1::2])
    assert gw.gateway.stats["commit_errors"] == 0
    gw.stop()
    rows = stream_rows(tmp_path / "buffer")
    assert set(rows) == {f"s{k}" for k in range(4)}  # nothing of the hostile robot m
    for wall in rows.values():
        np.testing.assert_array_equal(wall, np.arange(PER_EDGE, dtype=np.float64))


@pytest.mark.slow
def test_a_gateway_sigkilled_while_several_edges_commit_loses_nothing_acked(
        tmp_path: Path) -> None:
    obs_spec, action_spec = reach_specs()
    digest = spec_digest(obs_spec, action_spec)
    port = free_port()
    rng = np.random.default_rng(20)

    def make(stream: str, i: int) -> Transition:
        obs = obs_spec.zeros()
        return Transition(obs=obs, action=action_spec.zeros(), reward=float(i), next_obs=obs,
                          terminated=False, truncated=False, robot_id=stream, wall_time=float(i))

    edges = links(tmp_path, f"ws://127.0.0.1:{port}", digest, n=4)
    produced = 0
    gateway = start_gateway_process(tmp_path, port)
    try:
        for _ in range(3):  # kill it at a random moment while all four stream, then restart
            killer = threading.Timer(float(rng.uniform(0.2, 0.8)), gateway.send_signal,
                                     (signal.SIGKILL,))
            killer.start()
            publish_all(edges, 60, lambda s, i, base=produced: make(s, base + i), pause=0.01)
            produced += 60
            killer.join()
            gateway.wait(10)
            gateway = start_gateway_process(tmp_path, port)
        assert all(link.wait_acked(60.0) for link in edges), [link.stats for link in edges]
    finally:
        close(edges)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(10)
    rows = stream_rows(tmp_path / "run" / "buffer")
    for k in range(4):
        np.testing.assert_array_equal(rows[f"s{k}"], np.arange(produced, dtype=np.float64))
    marks = open_buffer(tmp_path / "run" / "buffer").commit_meta["streams"]
    assert marks == {f"s{k}": produced - 1 for k in range(4)}
