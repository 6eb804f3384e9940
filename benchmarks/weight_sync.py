"""Weight sync: "the sender holds version N" -> "every receiver has applied version N".

A 20 MB and a 400 MB float32 model (ten equal layers) over loopback websockets in 1 MiB chunks,
modes full / fp16 / patch (each new version changes one layer of ten), to 1 and 4 receivers,
directly and through a site relay. The sender, the relay and the receivers each run in a process
of their own, as in deployment. The clock starts when the sender is told to publish a version it
holds already digested (encoding it is timed) and stops when the last receiver's `poll()` swapped
it in (verified); receivers poll as soon as a version is ready, so no control period is added.
Baselines in the same run: raw TCP of the same bytes into a preallocated buffer (`recv_into`, the
limit), a naive sender that pickles the weights into one websocket message, and the same bytes in
bare 1 MiB websocket messages (what the websocket library alone costs, without our protocol).
The patch payload on real training is measured on our SAC learner with the pick-cube observation
spec from state: its policy's weights before and after 30 updates on random batches (not a real
session).

Figures on a shared machine are noisy; on a quiet one run:  python -m benchmarks.weight_sync
--json benchmarks/results/weight_sync.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import pickle
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.common import print_table, report, target
from comms.connection import LoopThread
from comms.messages import Message, WeightApplied, WeightRequest, decode_message
from comms.relay import WeightRelay
from comms.weight_sync import CHUNK_BYTES, WeightSet, encode_transfer
from comms.weight_sync_receiver import WeightReceiver
from comms.weight_sync_sender import WeightSender

LAYERS = 10
WS_OPTIONS: dict[str, Any] = {"compression": None, "max_size": None, "ping_interval": None}
HELLO = WeightRequest(-1, -1, b"", [], "hello")
TIMEOUT = 600.0


def versions(nbytes: int, count: int) -> Iterator[dict[str, np.ndarray]]:
    """`count` versions of a model of ten equal float32 layers; each next one changes every
    element of one layer (a fine-tuned layer), sharing the other arrays with the one before."""
    rng = np.random.default_rng(0)
    rows = max(nbytes // (LAYERS * 4 * 1000), 1)
    weights = {f"layer{i}.weight": rng.random((rows, 1000), np.float32) for i in range(LAYERS)}
    for v in range(count):
        yield weights
        weights = dict(weights)
        name = f"layer{v % LAYERS}.weight"
        weights[name] = weights[name] + np.float32(1e-3)


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- the serving processes -------------------------------------------------------------------------
class Downstream:
    """A websocket server's side of weight sync: serves a WeightSender to each peer and says
    (on stdout) when all `peers` said hello and when all hold a version."""

    def __init__(self, sender: WeightSender, peers: int) -> None:
        self.sender, self.peers = sender, peers
        self.conns: dict[str, ServerConnection] = {}
        self.hello: set[str] = set()

    async def handler(self, ws: ServerConnection) -> None:
        peer = f"peer{len(self.conns)}"
        self.conns[peer] = ws
        async for frame in ws:
            msg = decode_message(frame)
            for out in self.sender.handle(peer, msg):
                await ws.send(out.encode())
            if msg == HELLO:
                self.hello.add(peer)
                if len(self.hello) == self.peers:
                    emit(ready=True)
            elif isinstance(msg, WeightApplied) and len(self.conns) == self.peers and all(
                    held[0] == msg.version for held in self.sender.peers.values()):
                emit(held=msg.version)

    async def push_all(self) -> None:
        async def push(peer: str, ws: ServerConnection) -> None:
            for msg in self.sender.push(peer):
                await ws.send(msg.encode())

        await asyncio.gather(*(push(p, ws) for p, ws in self.conns.items()))


async def _commands() -> AsyncIterator[list[str]]:
    """The words of each line from stdin, read off the event loop."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        yield line.split()


async def run_sender(args: argparse.Namespace) -> None:
    sets = [WeightSet.of(w, v + 1) for v, w in enumerate(versions(args.nbytes, args.versions))]
    sender = WeightSender(args.mode, args.chunk)
    down = Downstream(sender, args.peers)
    async with serve(down.handler, "127.0.0.1", 0, **WS_OPTIONS) as server:
        emit(port=next(iter(server.sockets)).getsockname()[1])
        async for cmd in _commands():
            if cmd[0] == "publish":
                version = int(cmd[1])
                sender.publish(sets[version - 1], version)
                await down.push_all()
            elif cmd[0] == "stats":
                emit(stats=sender.stats)


async def run_relay(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    ready = asyncio.Event()
    relay = WeightRelay(lambda m: loop.call_soon_threadsafe(outbox.put_nowait, m), args.mode,
                        args.chunk, on_ready=lambda: loop.call_soon_threadsafe(ready.set))
    down = Downstream(relay.downstream, args.peers)
    async with connect(f"ws://127.0.0.1:{args.upstream}", proxy=None, **WS_OPTIONS) as up, \
            serve(down.handler, "127.0.0.1", 0, **WS_OPTIONS) as server:
        await up.send(HELLO.encode())

        async def read() -> None:
            async for frame in up:
                relay.handle_upstream(decode_message(frame))

        async def write() -> None:
            while True:
                await up.send((await outbox.get()).encode())

        async def advance() -> None:
            while True:
                await ready.wait()
                ready.clear()
                if relay.advance() is not None:
                    await down.push_all()

        tasks = [asyncio.create_task(c()) for c in (read, write, advance)]
        emit(port=next(iter(server.sockets)).getsockname()[1])
        async for _ in _commands():
            pass
        for task in tasks:
            task.cancel()
    relay.close()


async def run_websocket_baseline(args: argparse.Namespace) -> None:
    """On each "go": the model pickled into one message (pickle), or its bytes in 1 MiB
    messages with no protocol, hash or copy of ours (chunks: the websocket library's limit)."""
    weights = next(versions(args.nbytes, 1))
    conns: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        conns.append(ws)
        emit(ready=True)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, **WS_OPTIONS) as server:
        emit(port=next(iter(server.sockets)).getsockname()[1])
        async for _ in _commands():
            if args.mode == "pickle":
                await conns[0].send(pickle.dumps(weights, protocol=pickle.HIGHEST_PROTOCOL))
                continue
            for arr in weights.values():
                data = memoryview(arr).cast("B")
                for start in range(0, len(data), args.chunk):
                    await conns[0].send(data[start:start + args.chunk])


def run_tcp(args: argparse.Namespace) -> None:
    weights = next(versions(args.nbytes, 1))
    with socket.create_connection(("127.0.0.1", args.upstream)) as sock:
        while sys.stdin.readline():  # "go": the same bytes as the full transfer, by tensor
            for arr in weights.values():
                sock.sendall(memoryview(arr).cast("B"))


class Proc:
    """One serving process of this script, spoken to by stdin lines and JSON lines back."""

    def __init__(self, role: str, **options: Any) -> None:
        argv = [sys.executable, "-m", "benchmarks.weight_sync", "--role", role]
        for key, value in options.items():
            argv += [f"--{key}", str(value)]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, key: str, value: Any = None) -> Any:
        """The value of the next JSON line that has `key` (equal to `value` when given)."""
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            fields = json.loads(line)
            if key in fields and (value is None or fields[key] == value):
                return fields[key]
        raise RuntimeError(f"the {self.process.args[4]} process exited with "
                           f"{self.process.wait()} before saying {key}")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the receiving side: this process --------------------------------------------------------------
class Robots:
    """`n` robots, each a websocket client feeding a WeightReceiver, on a loop thread; a robot's
    control task polls as soon as its receiver has a version ready."""

    def __init__(self, port: int, n: int) -> None:
        self.thread = LoopThread("robots")
        self.receivers: list[WeightReceiver] = []
        self.applied: dict[int, list[float]] = {}
        self.changed = threading.Condition()
        self.n = n
        self.tasks = self.thread.run(self._start(port), 30)

    async def _start(self, port: int) -> list[asyncio.Task[None]]:
        conns = [await connect(f"ws://127.0.0.1:{port}", proxy=None, **WS_OPTIONS)
                 for _ in range(self.n)]
        return [asyncio.create_task(self._robot(ws)) for ws in conns]

    async def _robot(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[Message] = asyncio.Queue()
        ready = asyncio.Event()
        rx = WeightReceiver(lambda m: loop.call_soon_threadsafe(outbox.put_nowait, m),
                            on_ready=lambda: loop.call_soon_threadsafe(ready.set))
        self.receivers.append(rx)
        await ws.send(HELLO.encode())

        async def read() -> None:
            async for frame in ws:
                rx.handle(decode_message(frame))

        async def write() -> None:
            while True:
                await ws.send((await outbox.get()).encode())

        async def control() -> None:
            while True:
                await ready.wait()
                ready.clear()
                got = rx.poll()
                if got is not None:
                    with self.changed:
                        self.applied.setdefault(got.version, []).append(time.perf_counter())
                        self.changed.notify_all()

        try:
            await asyncio.gather(read(), write(), control())
        finally:
            rx.close()
            await ws.close()

    def wait(self, version: int) -> float:
        """When the last robot applied `version`."""
        with self.changed:
            if not self.changed.wait_for(
                    lambda: len(self.applied.get(version, ())) == self.n, TIMEOUT):
                raise RuntimeError(f"robots applied {self.applied.keys()}, not {version}")
            return max(self.applied[version])

    def received_bytes(self) -> int:
        return self.receivers[0].stats["bytes"]

    def stop(self) -> None:
        async def cancel() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        self.thread.run(cancel(), 30)
        self.thread.stop()


def sync_case(nbytes: int, mode: str, n: int, relayed: bool, reps: int, chunk: int
              ) -> dict[str, Any]:
    """Median seconds from publish to the last robot's swap, over `reps` versions after one
    untimed version every robot holds first (the base of patches)."""
    sender = Proc("sender", nbytes=nbytes, mode=mode, peers=1 if relayed else n,
                  versions=reps + 1, chunk=chunk)
    procs = [sender]
    robots = None
    try:
        port = sender.expect("port")
        relay = None
        if relayed:
            relay = Proc("relay", upstream=port, mode=mode, peers=n, chunk=chunk)
            procs.append(relay)
            port = relay.expect("port")
        robots = Robots(port, n)
        for proc in reversed(procs):
            proc.expect("ready")
        times = []
        for version in range(1, reps + 2):
            if version == 2:
                sender.send("stats")
                sent0, got0 = sender.expect("stats")["bytes_sent"], robots.received_bytes()
            start = time.perf_counter()
            sender.send(f"publish {version}")
            done = robots.wait(version)
            if version > 1:
                times.append(done - start)
            for proc in reversed(procs):
                proc.expect("held", version)
        sender.send("stats")
        upstream = sender.expect("stats")["bytes_sent"] - sent0
        per_robot = robots.received_bytes() - got0
        return {"mode": mode, "robots": n, "relay": relayed, "seconds": statistics.median(times),
                "model_gb_per_s": nbytes / statistics.median(times) / 1e9,
                "wire_bytes_per_robot": per_robot // reps,
                "upstream_transfers_per_version": upstream / per_robot, "reps": reps}
    finally:
        if robots is not None:
            robots.stop()
        for proc in procs:
            proc.stop()
        gc.collect()


def tcp_case(nbytes: int, reps: int) -> dict[str, Any]:
    total = sum(a.nbytes for a in next(versions(nbytes, 1)).values())
    buffer = memoryview(bytearray(total))
    with socket.create_server(("127.0.0.1", 0)) as server:
        proc = Proc("tcp", nbytes=nbytes, upstream=server.getsockname()[1])
        conn, _ = server.accept()
        times = []
        with conn:
            for _ in range(reps):
                start = time.perf_counter()
                proc.send("go")
                got = 0
                while got < total:
                    got += conn.recv_into(buffer[got:])
                times.append(time.perf_counter() - start)
        proc.stop()
    return {"seconds": statistics.median(times), "model_gb_per_s": total / statistics.median(
        times) / 1e9, "bytes": total, "reps": reps}


def websocket_baseline(nbytes: int, kind: str, reps: int, chunk: int) -> dict[str, Any]:
    """The pickle-in-one-message sender, or bare 1 MiB messages copied into one buffer."""
    proc = Proc("websocket", nbytes=nbytes, mode=kind, chunk=chunk)
    port = proc.expect("port")
    sizes = [a.nbytes for a in next(versions(nbytes, 1)).values()]
    messages = 1 if kind == "pickle" else sum(-(-n // chunk) for n in sizes)

    async def receive() -> list[float]:
        times = []
        buffer = bytearray(sum(sizes)) if kind == "chunks" else None
        async with connect(f"ws://127.0.0.1:{port}", proxy=None, **WS_OPTIONS) as ws:
            proc.expect("ready")  # the server has taken the connection
            for _ in range(reps):
                start = time.perf_counter()
                proc.send("go")
                at = 0
                for _ in range(messages):
                    frame = await ws.recv()
                    if buffer is None:
                        pickle.loads(frame)  # noqa: S301 - the naive baseline, on loopback
                    else:
                        buffer[at:at + len(frame)] = frame
                        at += len(frame)
                times.append(time.perf_counter() - start)
        return times

    try:
        times = asyncio.run(asyncio.wait_for(receive(), TIMEOUT))
    finally:
        proc.stop()
        gc.collect()
    return {"seconds": statistics.median(times),
            "model_gb_per_s": nbytes / statistics.median(times) / 1e9, "reps": reps}


# -- the patch payload of real training ------------------------------------------------------------
def sac_patch(updates: int = 30, batch: int = 256) -> dict[str, Any]:
    """Patch bytes / full bytes of our SAC policy on pick-cube (from state) after `updates`."""
    import torch

    from policies.sac import SAC
    from robot_rl.core import Batch
    from sim.arm import MujocoArm
    from sim.tasks.registry import TASKS

    torch.set_num_threads(1)
    arm = MujocoArm(TASKS.get("pick_cube")())
    spec, action_spec = arm.observation_spec, arm.action_spec
    rng = np.random.default_rng(0)

    def obs() -> dict[str, np.ndarray]:
        return {k: rng.normal(size=(batch, *s.shape)).astype(np.float32) for k, s in spec.items()}

    def batches() -> Iterator[Batch]:
        while True:
            yield Batch(obs(), rng.uniform(-1, 1, (batch, *action_spec.shape)).astype(np.float32),
                        rng.normal(size=batch).astype(np.float32), obs(),
                        (rng.random(batch) < 0.1).astype(np.float32), np.zeros(batch, bool),
                        np.zeros(batch, np.int8), np.zeros(batch, np.int64))

    algo = SAC(spec, action_spec, seed=0)
    before = WeightSet.of(algo.policy.get_weights(), 1)
    source = batches()
    for _ in range(updates):
        algo.update(source)
    after = WeightSet.of(algo.policy.get_weights(), 2)
    patch = encode_transfer(after, "patch", 1, before).offer
    full = encode_transfer(after, "full", 2).offer
    changed = sum(int(np.count_nonzero(after.tensors[k] != before.tensors[k]))
                  for k in after.tensors)
    return {"source": f"SAC policy, pick_cube state spec, {updates} updates on random batches "
                      f"of {batch}", "full_bytes": full.total_bytes,
            "patch_bytes": patch.total_bytes, "ratio": patch.total_bytes / full.total_bytes,
            "changed_elements_share": changed / sum(a.size for a in after.tensors.values())}


# -- the run ---------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="small models, one version each")
    parser.add_argument("--role", choices=["sender", "relay", "tcp", "websocket"],
                        help=argparse.SUPPRESS)
    for name in ("nbytes", "peers", "versions", "upstream"):
        parser.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=CHUNK_BYTES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "tcp":
        run_tcp(args)
        return 0
    if args.role is not None:
        roles = {"sender": run_sender, "relay": run_relay, "websocket": run_websocket_baseline}
        asyncio.run(roles[args.role](args))
        return 0

    sizes = {"2MB": 2_000_000, "8MB": 8_000_000} if args.quick else {
        "20MB": 20_000_000, "400MB": 400_000_000}
    reps = {name: 1 if args.quick or nbytes > 100e6 else 3 for name, nbytes in sizes.items()}
    results: dict[str, Any] = {"sizes": sizes, "chunk_bytes": CHUNK_BYTES, "device": "cpu"}
    rows = []
    for name, nbytes in sizes.items():
        n = reps[name]
        tcp = results[f"{name}/raw_tcp"] = tcp_case(nbytes, n)
        rows.append([name, "raw tcp", 1, "-", tcp["seconds"], tcp["model_gb_per_s"], 1.0, "-"])
        for kind, label in (("pickle", "pickle, 1 msg"), ("chunks", "bare ws 1 MiB")):
            base = websocket_baseline(nbytes, kind, n, CHUNK_BYTES)
            results[f"{name}/{'pickle_one_message' if kind == 'pickle' else 'bare_ws_chunks'}"
                    ] = base
            rows.append([name, label, 1, "-", base["seconds"], base["model_gb_per_s"],
                         base["model_gb_per_s"] / tcp["model_gb_per_s"], "-"])
        for mode in ("full", "fp16", "patch"):
            for robots, relayed in ((1, False), (4, False), (4, True)):
                case = sync_case(nbytes, mode, robots, relayed, n, CHUNK_BYTES)
                results[f"{name}/{mode}/{robots}robots/{'relay' if relayed else 'direct'}"] = case
                rows.append([name, mode, robots, "relay" if relayed else "direct",
                             case["seconds"], case["model_gb_per_s"],
                             case["model_gb_per_s"] / tcp["model_gb_per_s"],
                             case["upstream_transfers_per_version"]])
    print("weight sync, sender holds version N -> every robot applied it; loopback websockets, "
          f"{CHUNK_BYTES >> 20} MiB chunks, ten-layer float32 models, one layer changed a version")
    print_table(["model", "path", "robots", "via", "seconds", "model GB/s", "vs tcp",
                 "upstream transfers"], rows)
    sac = results["sac_patch"] = sac_patch()
    print(f"\nSAC patch after 30 updates: {sac['patch_bytes']} of {sac['full_bytes']} bytes "
          f"({sac['ratio']:.3f}); {sac['changed_elements_share']:.3f} of elements changed")

    small, big = list(sizes)
    targets = [target(f"full_sync_vs_raw_tcp_throughput_{size}",
                      results[f"{size}/full/1robots/direct"]["model_gb_per_s"]
                      / results[f"{size}/raw_tcp"]["model_gb_per_s"], 0.5, ">=")
               for size in (small, big)]
    targets.append(target("relay_upstream_transfers_for_4_robots", max(
        results[f"{size}/{mode}/4robots/relay"]["upstream_transfers_per_version"]
        for size in sizes for mode in ("full", "fp16", "patch")), 1.0, "<="))
    targets.append(target(
        f"patch_vs_full_bytes_one_layer_of_ten_{big}",
        results[f"{big}/patch/1robots/direct"]["wire_bytes_per_robot"]
        / results[f"{big}/full/1robots/direct"]["wire_bytes_per_robot"], 0.10, "<="))
    return report("weight_sync", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
