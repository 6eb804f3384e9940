"""Weight sync: "the learner has version N" -> "every robot acts with version N".

A 20 MB and a 400 MB float32 model (ten equal layers), modes full / fp16 / patch (each new version
changes one layer of ten), to 1 and 4 robots, directly and through a site relay, over loopback.
Everything is the deployed path: the cloud is a real Gateway with a WeightService in a process of
its own (the relay: `robot-rl relay`'s SiteRelay in another), and each robot an EdgeLink with
EdgeWeights whose control thread swaps a version in (`poll_weights`) as soon as it is verified.
The clock starts when the cloud is told to `publish_weights(weights, N, copy=False)` (the
learner hands over what `get_weights()` returned; one row copies instead) and stops when the
last robot swapped version N in: hashing, encoding, the bulk channel (or chunks), reassembly and
verification are all inside. Each case times versions after two untimed ones (what every robot
holds, the base of patches): the very first version into a robot also pays for first-touching its
receive buffers (page faults: 1-2 s for 400 MB on this VM), reported apart as `first_seconds`;
later versions reuse buffers no version refers to any more. Baselines in the same run: raw TCP
of the same bytes into a preallocated buffer (`recv_into`, the limit), a naive sender that
pickles the weights into one websocket message, and the same bytes in bare 1 MiB websocket
messages.

Also: a 10 Hz control loop on a MuJoCo robot while 400 MB versions arrive back to back (lateness
of each step against its schedule, and the same loop with no sync), CUDA staging where a GPU is
present, and the patch payload of our RLPD learner on pick-cube after 30 updates on batches of
real sim transitions (not a session).

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
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.common import print_table, report, target
from comms.bulk import BulkServer
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.gateway import Gateway
from comms.messages import spec_digest
from comms.relay import SiteRelay
from comms.spool import Spool
from comms.weight_service import WeightService
from comms.weight_sync import CHUNK_BYTES, WeightSet, encode_transfer
from comms.weight_sync_budget import ByteBudget
from comms.weight_sync_sender import WeightSender
from robot_rl.core import ArraySpec, DictSpec
from robot_rl.runtime.buffer_sink import BufferSink

LAYERS = 10
WS_OPTIONS: dict[str, Any] = {"compression": None, "max_size": None, "ping_interval": None}
TIMEOUT = 600.0
WARMUP = 2  # untimed versions before a case's timed ones


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
SPEC = DictSpec({"state": ArraySpec((3,), "float32")})
ACTION = ArraySpec((2,), "float32", -1.0, 1.0)
DIGEST = spec_digest(SPEC, ACTION)
TOKEN = b"weight-sync-benchmark-token-0123456789"


async def _commands() -> AsyncIterator[list[str]]:
    """The words of each line from stdin, read off the event loop."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        yield line.split()


async def run_cloud(args: argparse.Namespace) -> None:
    """A real gateway with a weight service; "prepare" makes the next version (the learner's
    update, outside the clock), "publish V" hands it over as the learner would
    (`publish_weights(policy.get_weights(), V, copy=False)`), preparing it first if need be."""
    sets = versions(args.nbytes, args.versions)  # made one by one: each shares the others
    ready: list[dict[str, np.ndarray]] = []
    service = WeightService(WeightSender(args.mode), bulk=BulkServer())
    with tempfile.TemporaryDirectory() as tmp:
        gateway = Gateway(BufferSink(Path(tmp) / "buffer", SPEC, ACTION), TOKEN, DIGEST,
                          weights=service)
        await gateway.start()
        emit(port=gateway.port)
        async for cmd in _commands():
            if cmd[0] == "prepare":
                ready.append(next(sets))
                emit(prepared=len(ready))
            elif cmd[0] == "publish":
                weights = ready.pop() if ready else next(sets)
                gateway.publish_weights(weights, int(cmd[1]), copy=args.copy == "yes")
            elif cmd[0] == "stats":
                emit(stats=service.stats)
        await gateway.stop()


async def run_relay(args: argparse.Namespace) -> None:
    """`robot-rl relay` in front of the cloud, as a site runs it."""
    relay = SiteRelay(f"ws://127.0.0.1:{args.upstream}", TOKEN, "relay-site",
                      WeightService(WeightSender(args.mode), bulk=BulkServer()))
    await relay.start()
    while not relay.upstream.connected:
        await asyncio.sleep(0.01)
    emit(port=relay.port)
    async for _ in _commands():
        pass
    await relay.stop()


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
    """`n` robots as the edge runs them: an EdgeLink with EdgeWeights each, and a control
    thread that swaps a version in (`poll_weights`) as soon as one is ready."""

    def __init__(self, port: int, n: int, tmp: Path) -> None:
        self.applied: dict[int, list[float]] = {}
        self.changed = threading.Condition()
        self.n, self._stop = n, threading.Event()
        self.links, self._threads = [], []
        for i in range(n):
            ready = threading.Event()
            link = EdgeLink(f"ws://127.0.0.1:{port}", TOKEN, f"r{i}", DIGEST,
                            Spool(tmp / f"r{i}.spool"), streams=[f"r{i}"],
                            weights=EdgeWeights(on_ready=ready.set)).start()
            self.links.append(link)
            thread = threading.Thread(target=self._control, args=(link, ready), daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + 30
        while not all(link.connected for link in self.links):
            if time.monotonic() > deadline:
                raise RuntimeError("the robots did not connect within 30 s")
            time.sleep(0.01)

    def _control(self, link: EdgeLink, ready: threading.Event) -> None:
        while not self._stop.is_set():
            if not ready.wait(0.1):
                continue
            ready.clear()
            got = link.poll_weights()
            if got is not None:
                with self.changed:
                    self.applied.setdefault(got.version, []).append(time.perf_counter())
                    self.changed.notify_all()

    def wait(self, version: int) -> float:
        """When the last robot applied `version`."""
        with self.changed:
            if not self.changed.wait_for(
                    lambda: len(self.applied.get(version, ())) == self.n, TIMEOUT):
                raise RuntimeError(f"robots applied {sorted(self.applied)}, not {version}")
            return max(self.applied[version])

    def received_bytes(self) -> int:
        return self.links[0].weights.receiver.stats["bytes"]  # type: ignore[union-attr]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        for link in self.links:
            link.close()
            link.spool.close()


def sync_case(nbytes: int, mode: str, n: int, relayed: bool, reps: int, copy: bool = False
              ) -> dict[str, Any]:
    """Median seconds from `publish_weights` on the cloud gateway to the last robot's swap,
    over `reps` versions after two untimed ones (the second is what patches are made against;
    the first also pays for fresh receive buffers: its time is kept as `first_seconds`)."""
    cloud = Proc("cloud", nbytes=nbytes, mode=mode, versions=reps + WARMUP,
                 copy="yes" if copy else "no")
    procs = [cloud]
    robots = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            port = cloud.expect("port")
            if relayed:
                procs.append(Proc("relay", upstream=port, mode=mode))
                port = procs[-1].expect("port")
            robots = Robots(port, n, Path(tmp))
            times = []
            for version in range(1, reps + WARMUP + 1):
                if version == WARMUP + 1:
                    cloud.send("stats")
                    sent0, got0 = cloud.expect("stats")["bytes_sent"], robots.received_bytes()
                cloud.send("prepare")
                cloud.expect("prepared")
                start = time.perf_counter()
                cloud.send(f"publish {version}")
                done = robots.wait(version)
                times.append(done - start)
            first, times = times[0], times[WARMUP:]
            cloud.send("stats")
            stats = cloud.expect("stats")
            per_robot = robots.received_bytes() - got0
            seconds = statistics.median(times)
            return {"mode": mode, "robots": n, "relay": relayed, "copied": copy,
                    "seconds": seconds, "model_gb_per_s": nbytes / seconds / 1e9,
                    "first_seconds": first,
                    "wire_bytes_per_robot": per_robot // reps,
                    "upstream_transfers_per_version": (stats["bytes_sent"] - sent0) / per_robot,
                    "via": "bulk" if stats["pushed_bulk"] else "websocket", "reps": reps,
                    "device": "cpu"}
        finally:
            if robots is not None:
                robots.stop()
            for proc in reversed(procs):  # the relay before the cloud it follows
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
def sac_patch(updates: int = 30, batch: int = 256, steps_collected: int = 600) -> dict[str, Any]:
    """Patch bytes / full bytes of our RLPD learner (SAC + demo mix) on pick-cube, from state,
    before and after `updates` updates on batches of real sim transitions (random actions)."""
    import torch

    from hal import task_outcomes
    from robot_rl.config import compose_session
    from robot_rl.core import Batch
    from robot_rl.runtime.actor import Actor, ActorConfig, PolicySource, steps
    from robot_rl.runtime.build import build_algorithm, build_reward, build_robot

    torch.set_num_threads(1)
    cfg = compose_session(["task=pick_cube", "algo=rlpd", "seed=0"])
    arm, robot = build_robot(cfg)
    spec = arm.observation_spec
    algo = build_algorithm(cfg, spec, arm.action_spec)
    rng = np.random.default_rng(0)
    actor = Actor(robot, build_reward(cfg, spec), ActorConfig(
        max_steps=int(cfg.task.max_steps), task_reward=cfg.task.reward),
        outcomes=task_outcomes(arm))
    source = PolicySource(algo.policy, arm.action_spec, rng, exploring=lambda: True)
    robot.connect()
    seen = []
    while len(seen) < steps_collected:
        seen += list(steps(actor.episode(source, len(seen))))
    robot.disconnect()

    def batches() -> Iterator[Batch]:
        while True:
            rows = [seen[i] for i in rng.integers(0, len(seen), batch)]
            yield Batch({k: np.stack([t.obs[k] for t in rows]) for k in spec.fields},
                        np.stack([t.action for t in rows]).astype(np.float32),
                        np.array([t.reward for t in rows], np.float32),
                        {k: np.stack([t.next_obs[k] for t in rows]) for k in spec.fields},
                        np.array([t.terminated for t in rows], np.float32),
                        np.array([t.intervened for t in rows]),
                        np.array([int(t.source) for t in rows], np.int8),
                        np.zeros(batch, np.int64))

    before = WeightSet.of(algo.policy.get_weights(), 1)
    feed = batches()
    for _ in range(updates):
        algo.update(feed)
    after = WeightSet.of(algo.policy.get_weights(), 2)
    patch = encode_transfer(after, "patch", 1, before).offer
    full = encode_transfer(after, "full", 2).offer
    changed = sum(int(np.count_nonzero(after.tensors[k] != before.tensors[k]))
                  for k in after.tensors)
    return {"source": f"{cfg.algo.name} policy, pick_cube state spec, {updates} updates on "
                      f"batches of {batch} from {len(seen)} sim transitions",
            "full_bytes": full.total_bytes, "patch_bytes": patch.total_bytes,
            "ratio": patch.total_bytes / full.total_bytes,
            "changed_elements_share": changed / sum(a.size for a in after.tensors.values())}


# -- control-loop jitter while a large version is applied ------------------------------------------
def jitter_case(nbytes: int, steps_n: int, syncing: bool) -> dict[str, Any]:
    """A 10 Hz loop on a MuJoCo robot (observe, act, swap weights between steps) while the cloud
    pushes `nbytes` versions back to back (`syncing`) or nothing; lateness of each step's start
    against its schedule, in ms."""
    from robot_rl.config import compose_session
    from robot_rl.runtime.build import build_robot

    _, robot = build_robot(compose_session(["task=reach"]))
    robot.connect()
    hold = np.zeros(robot.action_spec.shape, np.float32)
    cloud = Proc("cloud", nbytes=nbytes, mode="full", versions=1000, copy="no")
    link = None
    period, late, applied = 0.1, [], 0
    with tempfile.TemporaryDirectory() as tmp:
        try:
            link = EdgeLink(f"ws://127.0.0.1:{cloud.expect('port')}", TOKEN, "r0", DIGEST,
                            Spool(Path(tmp) / "spool"), streams=["r0"],
                            weights=EdgeWeights()).start()
            while not link.connected:
                time.sleep(0.01)
            published, acting = 0, None
            start = time.perf_counter()
            for step in range(steps_n):
                due = start + step * period
                time.sleep(max(0.0, due - time.perf_counter()))
                late.append((time.perf_counter() - due) * 1e3)
                got = link.poll_weights()  # the swap between two steps
                if got is not None:  # a policy taking the arrays as they are (no copy)
                    acting, applied = got, applied + 1
                if syncing and published == applied:
                    published += 1
                    cloud.send(f"publish {published}")
                robot.get_observation()
                robot.send_action(hold)
        finally:
            if link is not None:
                link.close()
                link.spool.close()
            cloud.stop()
            robot.disconnect()
    return {"syncing": syncing, "model_bytes": nbytes, "steps": steps_n,
            "versions_applied": applied,
            "last_version": None if acting is None else acting.version,
            "lateness_ms_p50": float(np.percentile(late, 50)),
            "lateness_ms_p99": float(np.percentile(late, 99)), "lateness_ms_max": max(late),
            "device": "cpu"}


# -- the run ---------------------------------------------------------------------------------------
def cuda_staging(nbytes: int) -> dict[str, Any] | None:
    """Host -> device copies of a version on the low-priority stream under a 64 MB / 10 ms
    budget, where torch sees a GPU (None elsewhere)."""
    from comms.cuda_copies import CudaCopier, cuda_available

    if not cuda_available():
        return None
    import torch

    ws = WeightSet.of(next(versions(nbytes, 1)), 1)
    copier = CudaCopier(ByteBudget(64 << 20, 0.01))
    start = time.perf_counter()
    tensors = copier.to_device(ws)
    seconds = time.perf_counter() - start
    ok = all(torch.equal(tensors[k].cpu(), torch.from_numpy(np.array(a)))
             for k, a in ws.tensors.items())
    return {"seconds": seconds, "gb_per_s": nbytes / seconds / 1e9, "exact": ok,
            "device": torch.cuda.get_device_name(0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true",
                        help="one small model, one version a case, a short jitter loop")
    parser.add_argument("--role", choices=["cloud", "relay", "tcp", "websocket"],
                        help=argparse.SUPPRESS)
    for name in ("nbytes", "versions", "upstream"):
        parser.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--copy", default="no", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=CHUNK_BYTES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "tcp":
        run_tcp(args)
        return 0
    if args.role is not None:
        roles = {"cloud": run_cloud, "relay": run_relay, "websocket": run_websocket_baseline}
        asyncio.run(roles[args.role](args))
        return 0

    sizes = {"8MB": 8_000_000} if args.quick else {"20MB": 20_000_000, "400MB": 400_000_000}
    reps = {name: 1 if args.quick else 3 for name in sizes}
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
        cases = [(m, r, v, False) for m in ("full", "fp16", "patch")
                 for r, v in ((1, False), (4, False), (4, True))] + [("full", 1, False, True)]
        for mode, robots, relayed, copied in cases:
            case = sync_case(nbytes, mode, robots, relayed, n, copied)
            key = f"{name}/{mode}/{robots}robots/{'relay' if relayed else 'direct'}"
            results[key + ("/copied" if copied else "")] = case
            rows.append([name, mode + (", copied" if copied else ""), robots,
                         "relay" if relayed else "direct", case["seconds"],
                         case["model_gb_per_s"], case["model_gb_per_s"] / tcp["model_gb_per_s"],
                         case["upstream_transfers_per_version"]])
    print("weight sync: publish_weights on the gateway -> every robot's EdgeLink swapped it in "
          "(verified); loopback, bulk channel, ten-layer float32 models, one layer changed a "
          "version")
    print_table(["model", "path", "robots", "via", "seconds", "model GB/s", "vs tcp",
                 "upstream transfers"], rows)

    big_bytes = list(sizes.values())[-1]
    steps_n = 20 if args.quick else 100
    idle = results["jitter/idle"] = jitter_case(big_bytes, steps_n, syncing=False)
    busy = results["jitter/syncing"] = jitter_case(big_bytes, steps_n, syncing=True)
    print_table(["10 Hz loop", "versions applied", "late p50 ms", "late p99 ms", "max ms"],
                [[label, r["versions_applied"], r["lateness_ms_p50"], r["lateness_ms_p99"],
                  r["lateness_ms_max"]] for label, r in (("idle", idle), ("syncing", busy))],
                title=f"control-loop lateness while {big_bytes / 1e6:.0f} MB versions arrive")
    cuda = results["cuda_staging"] = cuda_staging(big_bytes)
    print(f"\nCUDA staging: {cuda}" if cuda else "\nCUDA staging: no GPU here, not measured")
    sac = results["sac_patch"] = sac_patch(steps_collected=200 if args.quick else 600)
    print(f"\nRLPD patch after 30 updates: {sac['patch_bytes']} of {sac['full_bytes']} bytes "
          f"({sac['ratio']:.3f}); {sac['changed_elements_share']:.3f} of elements changed")

    big = list(sizes)[-1]
    targets = [target(f"full_sync_vs_raw_tcp_throughput_{size}",
                      results[f"{size}/full/1robots/direct"]["model_gb_per_s"]
                      / results[f"{size}/raw_tcp"]["model_gb_per_s"], 0.5, ">=")
               for size in sizes]
    targets.append(target("relay_upstream_transfers_for_4_robots", max(
        results[f"{size}/{mode}/4robots/relay"]["upstream_transfers_per_version"]
        for size in sizes for mode in ("full", "fp16", "patch")), 1.0, "<="))
    targets.append(target(
        f"patch_vs_full_bytes_one_layer_of_ten_{big}",
        results[f"{big}/patch/1robots/direct"]["wire_bytes_per_robot"]
        / results[f"{big}/full/1robots/direct"]["wire_bytes_per_robot"], 0.10, "<="))
    targets.append(target(f"control_loop_lateness_p99_ms_10hz_during_{big}_sync",
                          busy["lateness_ms_p99"], 5.0, "<"))
    return report("weight_sync", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
