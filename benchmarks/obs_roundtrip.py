"""Observation -> action round trip through the gateway vs a bare websocket echo of the same bytes.

An edge sends two 128x128 RGB images plus state and waits for the served action, over loopback
and through the network emulator at 50 ms RTT; the echo (same request bytes, no protocol, no
policy) in the same run is the limit. Targets: p99 on loopback < 10 ms, within 1.5x the echo.

On a machine busy with other work, run it in real-time scheduling so that both paths see the same
quiet CPU (the JSON records the policy):  chrt -f 50 python -m benchmarks.obs_roundtrip
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

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


class LinkTimer:
    """Round trips through an EdgeLink to the gateway, the way the edge's control loop makes
    them: on the link's event loop."""

    def __init__(self, port: int, tmp: Path) -> None:
        self.spool = Spool(tmp / f"edge-{port}.spool")
        self.link = EdgeLink(f"ws://127.0.0.1:{port}", TOKEN, "bench",
                             spec_digest(OBS_SPEC, ACTION_SPEC), self.spool,
                             streams=["bench"]).start()
        deadline = time.monotonic() + 10
        while not self.link.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        self.obs = observation(np.random.default_rng(0))

    async def _block(self, rounds: int) -> list[float]:
        samples = []
        for i in range(rounds):
            t0 = time.perf_counter()
            if await self.link.act("bench", self.obs, 2.0) is None:
                raise RuntimeError(f"round trip {i} missed a 2 s deadline: {self.link.stats}")
            samples.append(time.perf_counter() - t0)
        return samples

    def time(self, rounds: int) -> list[float]:
        return self.link.run(self._block(rounds))

    def close(self) -> None:
        self.link.close()
        self.spool.close()


async def _echo(ws: ServerConnection) -> None:
    async for frame in ws:
        await ws.send(frame)


async def _serve_echo() -> int:
    server = await serve(_echo, "127.0.0.1", 0, compression=None, max_size=None,
                         ping_interval=None)
    return int(next(iter(server.sockets)).getsockname()[1])


def start_echo() -> tuple[LoopThread, int]:
    """A bare websocket echo server on its own loop thread, as the gateway has."""
    thread = LoopThread("echo")
    return thread, thread.run(_serve_echo(), 5.0)


class EchoTimer:
    """Round trips of the same request bytes to the echo: plain asyncio, no protocol, no policy."""

    def __init__(self, port: int, frame: bytes) -> None:
        self.frame, self.loop = frame, asyncio.new_event_loop()
        self.ws = self.loop.run_until_complete(connect(
            f"ws://127.0.0.1:{port}", compression=None, max_size=None, proxy=None,
            ping_interval=None))

    async def _block(self, rounds: int) -> list[float]:
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await self.ws.send(self.frame)
            await self.ws.recv()
            samples.append(time.perf_counter() - t0)
        return samples

    def time(self, rounds: int) -> list[float]:
        return self.loop.run_until_complete(self._block(rounds))

    def close(self) -> None:
        self.loop.run_until_complete(self.ws.close())
        self.loop.close()


def compare(echo_port: int, gateway_port: int, frame: bytes, rounds: int, warmup: int,
            tmp: Path) -> tuple[list[float], list[float]]:
    """Echo and gateway timed in alternating blocks, so both see the same machine load."""
    echo, link = EchoTimer(echo_port, frame), LinkTimer(gateway_port, tmp)
    try:
        echo.time(warmup)
        link.time(warmup)
        echo_samples: list[float] = []
        link_samples: list[float] = []
        block = max(1, rounds // 10)
        for _ in range(0, rounds, block):
            echo_samples += echo.time(block)
            link_samples += link.time(block)
        return echo_samples, link_samples
    finally:
        echo.close()
        link.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    rounds, warmup = (60, 10) if args.quick else (1000, 50)
    wan_rounds = 30 if args.quick else 200
    frame = ActionRequest(0, "bench", observation(np.random.default_rng(0)), 2.0).encode()

    tmp = Path(tempfile.mkdtemp(prefix="obs-roundtrip-"))
    sink = BufferSink(tmp / "buffer", OBS_SPEC, ACTION_SPEC)
    gateway = GatewayThread(Gateway(sink, TOKEN, spec_digest(OBS_SPEC, ACTION_SPEC),
                                    inference=ConstantPolicy()))
    echo_thread, echo_port = start_echo()
    results: dict[str, dict[str, float | bool]] = {}
    proxies: list[NetemProxy] = []
    try:
        for name, profile, n in (("loopback", None, rounds),
                                 ("rtt50ms", NetemProfile(delay=0.025), wan_rounds)):
            ports = [echo_port, gateway.port]
            if profile is not None:
                proxies += [NetemProxy(p, profile).start() for p in ports]
                ports = [proxies[-2].port, proxies[-1].port]
            echo, link = compare(ports[0], ports[1], frame, n, warmup, tmp)
            results[f"echo_{name}"] = percentiles(echo)
            results[f"gateway_{name}"] = percentiles(link)
        # where the policy ran: on the gateway loop unless a slow call demoted it to its thread
        results["policy_placement"] = {
            "inline": gateway.gateway.inline_inference,
            "inline_demoted": gateway.gateway.stats["inline_demoted"]}
    finally:
        for proxy in proxies:
            proxy.stop()
        gateway.stop()
        echo_thread.stop()

    print(f"observation -> action round trip, request frame {len(frame)} bytes")
    rows = []
    for name in ("loopback", "rtt50ms"):
        g, e = results[f"gateway_{name}"], results[f"echo_{name}"]
        rows.append([name, g["p50_ms"], g["p99_ms"], e["p50_ms"], e["p99_ms"],
                     g["p99_ms"] / e["p99_ms"], g["n"]])
    print_table(["path", "p50 ms", "p99 ms", "echo p50", "echo p99", "p99 ratio", "n"], rows)
    results["frame_bytes"] = {"request": len(frame)}
    results["scheduler"] = {os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}.get(
        os.sched_getscheduler(0), "other")
    targets = [
        target("p99_loopback_ms", results["gateway_loopback"]["p99_ms"], 10.0, "<"),
        target("p99_ratio_to_echo_loopback", rows[0][5], 1.5, "<="),
        target("p99_ratio_to_echo_rtt50ms", rows[1][5], 1.5, "<="),
    ]
    return report("obs_roundtrip", results, targets, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
