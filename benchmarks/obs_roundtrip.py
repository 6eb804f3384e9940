"""Observation -> action round trip through the deployed gateway vs a bare websocket echo.

The cloud side runs in a process of its own, as deployed: a `Gateway` committing to a real buffer
and serving `ServedPolicy` around a real SAC policy (two 128x128 cameras + state; no `cpu_light`,
so every request goes through the gateway's policy thread, as it does in deployment) and an echo
server that answers each request with exactly as many bytes as the gateway's response. The edge
times one round trip through each in turn on the same event loop, so every pair sees the same
machine. The policy's own time (`ServedPolicy.act` in the gateway process, per request) is
measured in the same run; the plane's overhead is each round trip minus that request's inference.

Two cases: `loopback` (round trips only) and `loopback_with_stream` (after each pair the edge
publishes a transition as its control loop does, so the transition stream, its commits and its
acks share the link and the machine with the round trips; the echo socket carries the same bytes).
Targets: the overhead's p99 <= 1.5x the echo's p99 in both cases, and < 10 ms on loopback.

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
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve

from benchmarks.common import print_table, report, target
from comms.connection import LoopThread
from comms.edge_link import EdgeLink
from comms.gateway import Gateway, GatewayThread
from comms.messages import ActionRequest, ActionResponse, TransitionBatch, spec_digest
from comms.spool import Spool
from policies import SAC
from robot_rl.core import ArraySpec, DictSpec, Transition
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.gateway import ServedPolicy

TOKEN = b"benchmark-token-0123456789abcdef"
OBS_SPEC = DictSpec({
    "wrist_cam": ArraySpec((128, 128, 3), "uint8"), "side_cam": ArraySpec((128, 128, 3), "uint8"),
    "state": ArraySpec((18,), "float32"),
})
ACTION_SPEC = ArraySpec((5,), "float32", -1.0, 1.0)
STREAM, EPISODE_STEPS = "bench", 100
CASES = {"loopback": False, "loopback_with_stream": True}  # case -> transitions stream along


class TimedPolicy:
    """The deployed ServedPolicy, keeping each call's duration (the policy's in-process time)."""

    def __init__(self, served: ServedPolicy) -> None:
        self.served = served
        self.seconds: list[float] = []

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        start = time.perf_counter()
        try:
            return self.served.act(robot_id, obs)
        finally:
            self.seconds.append(time.perf_counter() - start)


def observation(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"wrist_cam": rng.integers(0, 256, (128, 128, 3), np.uint8),
            "side_cam": rng.integers(0, 256, (128, 128, 3), np.uint8),
            "state": rng.standard_normal(18).astype(np.float32)}


def transition(step: int, obs: dict[str, np.ndarray], next_obs: dict[str, np.ndarray]
               ) -> Transition:
    """One control step's transition, as the edge publishes it."""
    return Transition(obs=obs, action=np.zeros(5, np.float32), reward=0.0, next_obs=next_obs,
                      terminated=False, truncated=step % EPISODE_STEPS == EPISODE_STEPS - 1,
                      robot_id=STREAM, episode_id=step // EPISODE_STEPS,
                      step=step % EPISODE_STEPS, wall_time=time.time(),
                      mono_time=time.monotonic())


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "n": len(ms)}


# -- the cloud side: its own process ---------------------------------------------------------------
def echo_handler(request_bytes: int, response_bytes: int
                 ) -> Callable[[ServerConnection], Awaitable[None]]:
    """Answer each frame of a request's size with `response_bytes` bytes; swallow the rest (the
    transition stream's frames, which the gateway answers only with small acks)."""
    reply = bytes(response_bytes)

    async def echo(ws: ServerConnection) -> None:
        async for frame in ws:
            if len(frame) == request_bytes:
                await ws.send(reply)

    return echo


def serve_cloud_side(request_bytes: int, response_bytes: int) -> None:
    """Gateway and echo; ports on stdout as one JSON line; serve until stdin closes, then print
    the gateway's stats and every inference time as one JSON line."""
    # deployed, the edge and the cloud never share cores; here they share this machine's, so the
    # policy keeps to one core (at real-time priority, a second torch thread spinning for work
    # would hold off the gateway's own loop on the other)
    torch.set_num_threads(1)
    policy = TimedPolicy(ServedPolicy(SAC(OBS_SPEC, ACTION_SPEC).policy, OBS_SPEC, ACTION_SPEC))
    gateway = GatewayThread(Gateway(
        BufferSink(Path(tempfile.mkdtemp(prefix="obs-roundtrip-")) / "buffer", OBS_SPEC,
                   ACTION_SPEC), TOKEN, spec_digest(OBS_SPEC, ACTION_SPEC), inference=policy))
    echo_thread = LoopThread("echo")  # the echo gets a loop thread of its own, as the gateway

    async def start_echo() -> Server:
        return await serve(echo_handler(request_bytes, response_bytes), "127.0.0.1", 0,
                           compression=None, max_size=None, ping_interval=None)

    echo_server = echo_thread.run(start_echo(), 5.0)
    echo_port = int(next(iter(echo_server.sockets)).getsockname()[1])
    print(json.dumps({"gateway": gateway.port, "echo": echo_port}), flush=True)
    sys.stdin.read()
    echo_server.close()
    echo_thread.run(echo_server.wait_closed(), 5.0)
    echo_thread.stop()
    gateway.stop()
    stats = gateway.gateway.stats
    print(json.dumps({"inline": gateway.gateway.inline_inference,
                      "torch_threads": torch.get_num_threads(),
                      "actions_served": stats["actions_served"],
                      "transitions_committed": stats["committed"],
                      "inference_s": policy.seconds}), flush=True)


class CloudSide:
    """The cloud side's process, started by the edge side."""

    def __init__(self, request_bytes: int, response_bytes: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.obs_roundtrip", "--serve",
             str(request_bytes), str(response_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the cloud side exited with {self.process.wait()} before serving")
        self.ports: dict[str, int] = json.loads(line)

    def stop(self) -> dict[str, object]:
        """Stop it; the gateway's stats and inference times."""
        out, _ = self.process.communicate(timeout=60)
        return json.loads(out.splitlines()[-1])


# -- the edge side ---------------------------------------------------------------------------------
class Edge:
    """One edge link and one echo connection, timed in pairs; publishes as the control loop does
    when asked to stream."""

    def __init__(self, link: EdgeLink, echo: ClientConnection, request: bytes,
                 stream_frame: bytes) -> None:
        self.link, self.echo, self.request, self.stream_frame = link, echo, request, stream_frame
        self.rng = np.random.default_rng(0)
        self.obs = observation(self.rng)
        self.steps = 0

    async def pairs(self, rounds: int, stream: bool) -> tuple[list[float], list[float]]:
        """`rounds` round trips through each path in turn (which goes first alternates)."""
        samples: tuple[list[float], list[float]] = ([], [])
        for i in range(rounds):
            for path in (i % 2, 1 - i % 2):
                t0 = time.perf_counter()
                if path == 0:
                    await self.echo.send(self.request)
                    await self.echo.recv()
                elif await self.link.act("bench", self.obs, 2.0) is None:
                    raise RuntimeError(f"round trip {i} missed a 2 s deadline: {self.link.stats}")
                samples[path].append(time.perf_counter() - t0)
            if stream:
                await self.publish()
        return samples

    async def publish(self) -> None:
        """The control loop's publish (spooled durably off the loop, then streamed by the link);
        a frame of the same size goes over the echo socket."""
        next_obs = observation(self.rng)
        done = transition(self.steps, self.obs, next_obs)
        ends = {0: False} if done.truncated else None
        await asyncio.to_thread(self.link.publish, STREAM, [done], ends)
        await self.echo.send(self.stream_frame)
        self.obs, self.steps = next_obs, self.steps + 1


def measure(ports: dict[str, int], request: bytes, stream_frame: bytes, rounds: int,
            warmup: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each case's echo and gateway round trips, paired; warm-up pairs are left out."""
    with tempfile.TemporaryDirectory(prefix="obs-roundtrip-edge-") as tmp:
        spool = Spool(Path(tmp) / "edge.spool")
        link = EdgeLink(f"ws://127.0.0.1:{ports['gateway']}", TOKEN, "bench",
                        spec_digest(OBS_SPEC, ACTION_SPEC), spool, streams=[STREAM]).start()

        async def run() -> dict[str, tuple[list[float], list[float]]]:
            connect_by = time.monotonic() + 10
            while not link.connected:
                if time.monotonic() > connect_by or link.fatal_error is not None:
                    raise RuntimeError(f"the edge link did not connect to port "
                                       f"{ports['gateway']}: {link.fatal_error or link.stats}")
                await asyncio.sleep(0.01)
            async with connect(f"ws://127.0.0.1:{ports['echo']}", compression=None,
                               max_size=None, proxy=None, ping_interval=None) as echo:
                edge = Edge(link, echo, request, stream_frame)
                timed = {}
                for case, stream in CASES.items():
                    await edge.pairs(warmup, stream)
                    timed[case] = await edge.pairs(rounds, stream)
                return timed

        try:
            timed = link.run(asyncio.wait_for(run(), 900))
            if not link.wait_acked(30):
                raise RuntimeError(f"the gateway did not ack the stream: {link.stats}")
            return timed
        finally:
            link.close()
            spool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)  # the cloud side
    args = parser.parse_args()
    if args.serve:
        serve_cloud_side(*args.serve)
        return 0
    rounds, warmup = (60, 10) if args.quick else (3000, 100)
    obs = observation(np.random.default_rng(0))
    request = ActionRequest(0, "bench", obs, 2.0).encode()
    # the gateway's answer to a request numbered like the measured ones (ids take 3 bytes)
    response = ActionResponse(1000, np.zeros(5, np.float32), 0).encode()
    stream_frame = TransitionBatch(STREAM, 1000, (transition(0, obs, obs),)).encode()
    cloud = CloudSide(len(request), len(response))
    try:
        timed = measure(cloud.ports, request, stream_frame, rounds, warmup)
    finally:
        served = cloud.stop()
    inference = served.pop("inference_s")
    assert isinstance(inference, list)
    if len(inference) != len(CASES) * (warmup + rounds):
        raise RuntimeError(f"{len(inference)} inferences for {len(CASES) * (warmup + rounds)} "
                           "requests: the gateway dropped or failed some")

    results: dict[str, object] = {}
    rows = []
    for i, (case, (echo, gateway)) in enumerate(timed.items()):
        first = i * (warmup + rounds) + warmup  # this case's measured requests, in order
        own = np.asarray(inference[first: first + rounds])
        overhead = list(np.asarray(gateway) - own)
        results[case] = {"echo": percentiles(echo), "gateway": percentiles(gateway),
                         "inference": percentiles(list(own)), "overhead": percentiles(overhead)}
        r = results[case]
        rows.append([case, r["gateway"]["p50_ms"], r["gateway"]["p99_ms"],
                     r["inference"]["p50_ms"], r["inference"]["p99_ms"],
                     r["overhead"]["p50_ms"], r["overhead"]["p99_ms"], r["echo"]["p50_ms"],
                     r["echo"]["p99_ms"], r["overhead"]["p99_ms"] / r["echo"]["p99_ms"], rounds])
    print(f"observation -> action round trip: request {len(request)} bytes, response "
          f"{len(response)} bytes (the echo answers with as many); one transition frame "
          f"{len(stream_frame)} bytes per pair when streaming; gateway and echo in their own "
          "process, timed in turn")
    print_table(["case", "rtt p50", "rtt p99", "policy p50", "policy p99", "overhead p50",
                 "overhead p99", "echo p50", "echo p99", "p99 ratio", "n"], rows)
    results["served"] = served  # inline False: the policy thread, as ServedPolicy is deployed
    results["frame_bytes"] = {"request": len(request), "response": len(response),
                              "transition": len(stream_frame)}
    results["scheduler"] = {os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}.get(
        os.sched_getscheduler(0), "other")
    targets = [
        target("overhead p99 / echo p99, loopback", rows[0][9], 1.5, "<="),
        target("overhead p99 / echo p99, loopback with the transition stream", rows[1][9], 1.5,
               "<="),
        target("overhead p99 ms, loopback", rows[0][6], 10.0, "<"),
    ]
    return report("obs_roundtrip", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
