"""Observation -> action round trip through the gateway vs a bare websocket echo of the same bytes.

An edge sends two 128x128 RGB images plus state and waits for the served action, over loopback
and through the network emulator at 50 ms RTT; the echo (same request bytes, no protocol, no
policy) is the limit. The gateway and the echo server run in a process of their own, as in
deployment (edge and gateway never share a process, so they never share an interpreter lock).
The edge times one round trip through the gateway and one through the echo in turn, on the same
event loop, so every pair sees the same machine. Targets: p99 on loopback < 10 ms, within 1.5x
the echo. A paced row (one pair per 10 ms, like a 100 Hz control loop) shows round trips from
idle, as a robot makes them; it has no target.

On a machine busy with other work, run it in real-time scheduling so that both paths see the same
quiet CPU (the JSON records the policy):  chrt -f 50 python -m benchmarks.obs_roundtrip
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve

from benchmarks.common import print_table, report, target
from comms.connection import LoopThread
from comms.edge_link import EdgeLink
from comms.gateway import Gateway, GatewayThread
from comms.messages import ActionRequest, spec_digest
from comms.netem import NetemProfile, NetemProxy
from comms.spool import Spool
from robot_rl.core import ArraySpec, DictSpec
from robot_rl.runtime.buffer_sink import BufferSink

TOKEN = b"benchmark-token-0123456789abcdef"
OBS_SPEC = DictSpec({
    "wrist_cam": ArraySpec((128, 128, 3), "uint8"), "side_cam": ArraySpec((128, 128, 3), "uint8"),
    "state": ArraySpec((18,), "float32"),
})
ACTION_SPEC = ArraySpec((5,), "float32", -1.0, 1.0)
WAN = NetemProfile(delay=0.025)  # 50 ms RTT


class ConstantPolicy:
    """The cheapest possible policy, so the benchmark measures the link, not a network."""

    cpu_light = True  # true of it: the gateway may call it on its loop (see InferenceServer)

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        return np.zeros(5, np.float32), 1


def observation(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"wrist_cam": rng.integers(0, 256, (128, 128, 3), np.uint8),
            "side_cam": rng.integers(0, 256, (128, 128, 3), np.uint8),
            "state": rng.standard_normal(18).astype(np.float32)}


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "n": len(ms)}


# -- the cloud side: its own process ---------------------------------------------------------------
async def _echo(ws: ServerConnection) -> None:
    async for frame in ws:
        await ws.send(frame)


async def _serve_echo() -> Server:
    return await serve(_echo, "127.0.0.1", 0, compression=None, max_size=None,
                       ping_interval=None)


def serve_cloud_side() -> None:
    """Gateway and echo, each also behind a 50 ms RTT emulator; ports on stdout as one JSON
    line; serve until stdin closes, then print the gateway's stats as one JSON line."""
    gateway = GatewayThread(Gateway(
        BufferSink(Path(tempfile.mkdtemp(prefix="obs-roundtrip-")) / "buffer", OBS_SPEC,
                   ACTION_SPEC), TOKEN, spec_digest(OBS_SPEC, ACTION_SPEC),
        inference=ConstantPolicy()))
    echo_thread = LoopThread("echo")  # the echo gets a loop thread of its own, as the gateway
    echo_server = echo_thread.run(_serve_echo(), 5.0)
    echo_port = int(next(iter(echo_server.sockets)).getsockname()[1])
    proxies = [NetemProxy(port, WAN).start() for port in (gateway.port, echo_port)]
    print(json.dumps({"gateway": gateway.port, "echo": echo_port,
                      "gateway_rtt50ms": proxies[0].port, "echo_rtt50ms": proxies[1].port}),
          flush=True)
    sys.stdin.read()
    for proxy in proxies:
        proxy.stop()
    echo_server.close()
    echo_thread.run(echo_server.wait_closed(), 5.0)
    echo_thread.stop()
    gateway.stop()
    print(json.dumps({"inline": gateway.gateway.inline_inference,
                      "inline_demoted": gateway.gateway.stats["inline_demoted"],
                      "actions_served": gateway.gateway.stats["actions_served"]}), flush=True)


class CloudSide:
    """The cloud side's process, started by the edge side."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.obs_roundtrip", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the cloud side exited with {self.process.wait()} before serving")
        self.ports: dict[str, int] = json.loads(line)

    def stop(self) -> dict[str, object]:
        """Stop it; the gateway's stats."""
        out, _ = self.process.communicate(timeout=30)
        return json.loads(out.splitlines()[-1])


# -- the edge side ---------------------------------------------------------------------------------
async def _pairs(link: EdgeLink, echo: ClientConnection, frame: bytes,
                 obs: dict[str, np.ndarray], rounds: int, period: float
                 ) -> tuple[list[float], list[float]]:
    """`rounds` round trips through each path in turn (which goes first alternates)."""
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds):
        for path in (i % 2, 1 - i % 2):
            t0 = time.perf_counter()
            if path == 0:
                await echo.send(frame)
                await echo.recv()
            elif await link.act("bench", obs, 2.0) is None:
                raise RuntimeError(f"round trip {i} missed a 2 s deadline: {link.stats}")
            samples[path].append(time.perf_counter() - t0)
            if period:
                await asyncio.sleep(period / 2)
    return samples


def compare(link_port: int, echo_port: int, frame: bytes, rounds: int, warmup: int,
            period: float = 0.0) -> tuple[list[float], list[float]]:
    """Echo and gateway round trips, paired; warm-up pairs are left out."""
    with tempfile.TemporaryDirectory(prefix="obs-roundtrip-edge-") as tmp:
        spool = Spool(Path(tmp) / "edge.spool")
        link = EdgeLink(f"ws://127.0.0.1:{link_port}", TOKEN, "bench",
                        spec_digest(OBS_SPEC, ACTION_SPEC), spool, streams=["bench"]).start()

        async def measure() -> tuple[list[float], list[float]]:
            connect_by = time.monotonic() + 10
            while not link.connected:
                if time.monotonic() > connect_by or link.fatal_error is not None:
                    raise RuntimeError(f"the edge link did not connect to port {link_port}: "
                                       f"{link.fatal_error or dict(link.stats)}")
                await asyncio.sleep(0.01)
            async with connect(f"ws://127.0.0.1:{echo_port}", compression=None, max_size=None,
                               proxy=None, ping_interval=None) as echo:
                obs = observation(np.random.default_rng(0))
                await _pairs(link, echo, frame, obs, warmup, period)
                return await _pairs(link, echo, frame, obs, rounds, period)

        try:
            return link.run(asyncio.wait_for(measure(), 600))
        finally:
            link.close()
            spool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the cloud side
    args = parser.parse_args()
    if args.serve:
        serve_cloud_side()
        return 0
    rounds, warmup, wan_rounds, paced_rounds = (
        (60, 10, 20, 20) if args.quick else (3000, 100, 200, 500))
    frame = ActionRequest(0, "bench", observation(np.random.default_rng(0)), 2.0).encode()
    runs = {"loopback": ("", rounds, 0.0), "rtt50ms": ("_rtt50ms", wan_rounds, 0.0),
            "loopback_paced_100hz": ("", paced_rounds, 0.01)}
    cloud = CloudSide()
    results: dict[str, object] = {}
    try:
        for name, (suffix, n, period) in runs.items():
            echo, link = compare(cloud.ports["gateway" + suffix], cloud.ports["echo" + suffix],
                                 frame, n, warmup, period)
            results[f"echo_{name}"] = percentiles(echo)
            results[f"gateway_{name}"] = percentiles(link)
    finally:
        # where the policy ran: on the gateway loop unless a slow call demoted it to its thread
        results["policy_placement"] = cloud.stop()

    print(f"observation -> action round trip, request frame {len(frame)} bytes; gateway and "
          "echo in their own process, edge paths timed in turn")
    rows = []
    for name in runs:
        g, e = results[f"gateway_{name}"], results[f"echo_{name}"]
        assert isinstance(g, dict) and isinstance(e, dict)
        rows.append([name, g["p50_ms"], g["p99_ms"], e["p50_ms"], e["p99_ms"],
                     g["p50_ms"] / e["p50_ms"], g["p99_ms"] / e["p99_ms"], g["n"]])
    print_table(["path", "p50 ms", "p99 ms", "echo p50", "echo p99", "p50 ratio", "p99 ratio",
                 "n"], rows)
    results["frame_bytes"] = {"request": len(frame)}
    results["scheduler"] = {os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}.get(
        os.sched_getscheduler(0), "other")
    targets = [
        target("p99_loopback_ms", rows[0][2], 10.0, "<"),
        target("p99_ratio_to_echo_loopback", rows[0][6], 1.5, "<="),
        target("p99_ratio_to_echo_rtt50ms", rows[1][6], 1.5, "<="),
    ]
    return report("obs_roundtrip", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
