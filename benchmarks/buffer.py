"""Replay buffer: insert and sample throughput against a RAM ring and TorchRL's memmap buffer,
ingest of a fleet's interleaved streams (straight into the buffer, and through the gateway's
commit path: frames decoded and checked, one commit per batch vs group commit), the share of the
buffer a run of batches covers, commit (checkpoint) cost against buffer size, disk bytes per
transition and recovery time after a crash.

Two 128x128 cameras + a 7-D state, batches of 256 with next_obs. Every sampler is timed on the
same data over runs of `BATCHES` batches, and each run's coverage (distinct rows drawn / rows
stored) is reported with its rate. Uniform samplers (the RAM ring, TorchRL, ours with the whole
buffer cached) are compared with each other only at equal coverage. With a cache smaller than the
data, ours samples uniformly from the rows resident in RAM while chunks rotate in from disk: that
is its own mode (a working set, as RLinf-USER samples a recent window), reported with its coverage
and never put against a uniform sampler.

    PIP_CONSTRAINT=constraints.txt pip install -e '.[bench]'   # TorchRL, the peer
    python -m benchmarks.buffer [--quick] [--json benchmarks/results/buffer.json]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import print_table, report, target
from buffer import CacheConfig, ReplayBuffer
from buffer.schema import chunk_rows, heavy_step_specs
from comms.group_commit import GroupCommitter
from comms.messages import TransitionBatch, decode_message
from robot_rl.core import ArraySpec, DictSpec, Transition
from robot_rl.runtime.buffer_sink import WRITER_CACHE, BufferSink

CAM = (128, 128, 3)
OBS = DictSpec({"wrist": ArraySpec(CAM, "uint8"), "side": ArraySpec(CAM, "uint8"),
                "state": ArraySpec((7,), "float32")})
STATE_ONLY = DictSpec({"state": ArraySpec((7,), "float32")})
ACTION = ArraySpec((7,), "float32")
EP_LEN, BATCH = 100, 256
BATCHES = 100  # batches per timed run; a run's coverage is over these
RATIOS = (1.0, 0.5, 0.25)  # cache size / data size
EQUAL_COVERAGE = 0.02  # uniform samplers are compared when their coverages differ less
ROW_BYTES = sum(s.nbytes for s in OBS.fields.values()) + ACTION.nbytes
FLEET, FLEET_HZ = 64, 10  # ingest: robots streaming one transition each per round (10 Hz)


def frame_pool(n: int = 64, seed: int = 0) -> np.ndarray:
    """Camera-like frames: smooth gradients with sensor noise (they compress like real ones)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:128, 0:128]
    frames = [(np.stack([x * (i % 5 + 1), y * (i % 3 + 1), (x + y) * 2], -1) // 3 + i * 9)
              % 256 + rng.integers(0, 8, CAM) for i in range(n)]
    return np.asarray(frames, np.uint8)


def make_episodes(n: int, spec: DictSpec) -> list[list[Transition]]:
    """n transitions in episodes of EP_LEN; observations share arrays from a small pool."""
    pool = frame_pool() if "side" in spec else None
    states = np.random.default_rng(1).standard_normal((n + n // EP_LEN + 1, 7)).astype(np.float32)
    obs = [{k: (pool[(i * (2 if k == "side" else 1)) % 64] if pool is not None and k != "state"
                else states[i]) for k in spec} for i in range(len(states))]
    episodes, i = [], 0
    for start in range(0, n, EP_LEN):
        length = min(EP_LEN, n - start)
        episodes.append([Transition(obs[i + s], states[i + s], 0.1 * s, obs[i + s + 1],
                                    s == length - 1, False, robot_id="arm", episode_id=start,
                                    wall_time=float(i + s)) for s in range(length)])
        i += length + 1
    return episodes


class RingBuffer:
    """The RAM limit: preallocated numpy arrays, next_obs read at index + 1."""

    def __init__(self, capacity: int) -> None:
        self.obs = {k: np.zeros((capacity + 1, *s.shape), s.dtype) for k, s in OBS.items()}
        self.action = np.zeros((capacity, 7), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.n = 0

    def add_episode(self, ep: list[Transition]) -> None:
        for t in ep:
            for k in self.obs:
                self.obs[k][self.n] = t.obs[k]
            self.action[self.n], self.reward[self.n] = t.action, t.reward
            self.n += 1

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Gather a batch (obs, next_obs, action, reward) into `last_batch`; its row numbers."""
        idx = rng.integers(0, self.n - 1, BATCH)
        self.last_batch = ({k: v[idx] for k, v in self.obs.items()},
                           {k: v[idx + 1] for k, v in self.obs.items()}, self.action[idx],
                           self.reward[idx])
        return idx


def torchrl_peer(capacity: int, scratch: Path) -> tuple[Callable, Callable] | None:
    """TorchRL's ReplayBuffer over LazyMemmapStorage (next obs stored as TorchRL does): an
    `add(episode)` and a `draw()` returning the batch's row numbers; None if not installed."""
    try:
        import torch
        from tensordict import TensorDict
        from torchrl.data import LazyMemmapStorage
        from torchrl.data import ReplayBuffer as TorchRLBuffer
    except ImportError:
        print("torchrl is not installed: skipping the TorchRL LazyMemmapStorage peer "
              "(PIP_CONSTRAINT=constraints.txt pip install -e '.[bench]')")
        return None
    rb = TorchRLBuffer(storage=LazyMemmapStorage(capacity, scratch_dir=str(scratch)),
                       batch_size=BATCH)

    def add(ep: list[Transition]) -> None:
        def obs(key: str) -> dict[str, torch.Tensor]:
            return {k: torch.from_numpy(np.stack([getattr(t, key)[k] for t in ep])) for k in OBS}
        rb.extend(TensorDict({"obs": obs("obs"), "next": {"obs": obs("next_obs")},
                              "action": torch.from_numpy(np.stack([t.action for t in ep])),
                              "reward": torch.tensor([t.reward for t in ep])},
                             batch_size=[len(ep)]))

    def draw() -> np.ndarray:
        return rb.sample(return_info=True)[1]["index"].numpy()

    return add, draw


def ours_insert(path: Path, episodes: list[list[Transition]], cache_mb: int) -> tuple[float,
                                                                                       list[float]]:
    """Transitions/s through append + end_episode + commit (fsync on), and each commit's time."""
    commit_s = []
    with ReplayBuffer(path, OBS, ACTION, cache=CacheConfig(max_bytes=cache_mb << 20)) as buf:
        t0 = time.perf_counter()
        for ep in episodes:
            buf.append(ep)
            buf.end_episode(True)
            c0 = time.perf_counter()
            buf.commit()
            commit_s.append(time.perf_counter() - c0)
        elapsed = time.perf_counter() - t0
    return sum(map(len, episodes)) / elapsed, commit_s


def fleet_round(k: int, pool: np.ndarray) -> list[Transition]:
    """Transition k of each of FLEET robots; a robot's observations follow each other."""
    def obs(r: int, i: int) -> dict[str, np.ndarray]:
        return {"wrist": pool[(r + i) % 64], "side": pool[(r + 2 * i) % 64],
                "state": np.full(7, r + i, np.float32)}
    return [Transition(obs(r, k), np.full(7, 0.1, np.float32), 0.0, obs(r, k + 1), False, False,
                       robot_id=f"r{r}", step=k, wall_time=float(k)) for r in range(FLEET)]


def ingest_rates(root: Path, rounds: int) -> dict[str, dict[str, float]]:
    """Transitions/s (and this process's CPU ms per transition: what a path costs whatever else
    runs on the machine) of FLEET robots' interleaved streams, a round (a transition per robot)
    at a time: appended and committed straight into the buffer once per round; and through
    the gateway's commit path (edge frames decoded with every field checked, then committed),
    one commit per batch as before group commit, and one group commit per round."""
    pool, rates = frame_pool(), {}

    def rate(elapsed: float, cpu: float) -> dict[str, float]:
        return {"per_s": FLEET * rounds / elapsed, "cpu_ms": 1e3 * cpu / (FLEET * rounds)}

    with ReplayBuffer(root / "bare", OBS, ACTION, cache=WRITER_CACHE) as buf:  # as the sinks
        elapsed = cpu = 0.0
        for k in range(rounds):
            transitions = fleet_round(k, pool)
            t0, c0 = time.perf_counter(), time.process_time()
            buf.append(transitions)
            buf.commit()
            elapsed, cpu = elapsed + time.perf_counter() - t0, cpu + time.process_time() - c0
        rates["buffer_one_commit_per_round"] = rate(elapsed, cpu)

    async def unused(fn: Callable[[], Any]) -> Any:  # (commit() runs on the caller's thread)
        return fn()

    for name, grouped in (("gateway_one_commit_per_batch", False), ("gateway_group_commit", True)):
        sink = BufferSink(root / name, OBS, ACTION)
        committer, elapsed, cpu = GroupCommitter(sink, unused, Counter()), 0.0, 0.0
        for k in range(rounds):
            frames = [TransitionBatch(t.robot_id, k, (t,)).encode() for t in fleet_round(k, pool)]
            t0, c0 = time.perf_counter(), time.process_time()
            batches = [decode_message(f) for f in frames]
            for group in [batches] if grouped else [[b] for b in batches]:
                if any(isinstance(v, Exception) for v in committer.commit(group).values()):
                    raise RuntimeError(f"{name}: a commit failed: {committer.stats}")
            elapsed, cpu = elapsed + time.perf_counter() - t0, cpu + time.process_time() - c0
        sink.close()
        rates[name] = rate(elapsed, cpu)
    return rates


def sample_runs(draws: dict[str, Callable[[], np.ndarray]], rows: int, runs: int
                ) -> dict[str, dict[str, float]]:
    """`runs` runs of BATCHES batches from each `draw` (which returns a batch's row numbers), the
    samplers taking turns run by run so that all see the same machine: per sampler, the median
    rate in batches/s and the median share of the `rows` stored that a run drew."""
    for draw in draws.values():
        draw()
    rates: dict[str, list[float]] = {name: [] for name in draws}
    coverage: dict[str, list[float]] = {name: [] for name in draws}
    for i in range(runs):
        names = list(draws)
        for name in names[i % len(names):] + names[:i % len(names)]:
            seen = np.zeros(rows, bool)
            t0 = time.perf_counter()
            for _ in range(BATCHES):
                seen[draws[name]()] = True
            rates[name].append(BATCHES / (time.perf_counter() - t0))
            coverage[name].append(float(seen.mean()))
    return {name: {"batches_per_s": float(np.median(rates[name])),
                   "coverage": float(np.median(coverage[name])), "batches_per_run": BATCHES,
                   "runs": runs} for name in draws}


def open_ours(path: Path, ratio: float, data_bytes: int) -> tuple[ReplayBuffer, dict[str, Any]]:
    """Our buffer reopened with a cache of `ratio` x the data and filled; how the cache is laid."""
    rpc = chunk_rows(heavy_step_specs(OBS, ACTION))
    chunks = int(np.ceil(ratio * data_bytes / (rpc * ROW_BYTES)))  # the cache holds whole chunks
    buf = ReplayBuffer(path, cache=CacheConfig(max_transitions=chunks * rpc), fsync=False)
    t0 = time.perf_counter()
    buf.cache.fill()
    return buf, {"fill_s": time.perf_counter() - t0, "slots": buf.cache.n_slots,
                 "slots_kept_for_newest": buf.cache.recent,
                 "resident_share": buf.cache.capacity_rows / len(buf)}


def drawing(buf: ReplayBuffer, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    """A batch from `buf`; its row numbers."""

    def draw() -> np.ndarray:
        buf.sample(BATCH, rng)
        return buf.last_rows

    return draw


def working_set(path: Path, ratio: float, data_bytes: int, runs: int) -> dict[str, Any]:
    """Ours with a cache of `ratio` x the data: its rate and coverage while chunks rotate in."""
    buf, facts = open_ours(path, ratio, data_bytes)
    with buf:
        loads = buf.cache.loads
        measured = sample_runs({"ours": drawing(buf, np.random.default_rng(0))}, len(buf), runs)
        return {**measured["ours"], **facts, "chunks_rotated_in": buf.cache.loads - loads}


def crash_then_recover(path: Path, episodes: list[list[Transition]], spec: DictSpec) -> dict:
    """Write, leave an unfinished commit behind (as a SIGKILL would), time the reopening."""
    cache = CacheConfig(max_bytes=256 << 20)
    with ReplayBuffer(path, spec, ACTION, cache=cache) as buf:
        for ep in episodes[:-1]:
            buf.append(ep)
            buf.end_episode(True)
            buf.commit()
        buf.append(episodes[-1])
        for table in buf.storage.tables.values():  # data written, commit record not replaced
            table.write(buf.storage.commit_no + 1)
        disk = buf.storage.disk_bytes()
    t0 = time.perf_counter()
    with ReplayBuffer(path, spec, ACTION, cache=cache) as buf:
        buf.sample(BATCH, np.random.default_rng(0))
        seconds = time.perf_counter() - t0
        rows = len(buf)
    return {"transitions": rows, "recovery_s": seconds, "disk_bytes_per_transition": disk / rows}


def uniform_ratio(ours: dict[str, Any], peer: dict[str, Any] | None) -> float | None:
    """ours' rate / the peer's, if both were measured at equal coverage (else not comparable)."""
    if peer is None or abs(ours["coverage"] - peer["coverage"]) > EQUAL_COVERAGE:
        return None
    return ours["batches_per_s"] / peer["batches_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    n_recover_img = 2_000 if args.quick else 100_000
    n_recover_state = 20_000 if args.quick else 1_000_000
    runs = 1 if args.quick else 3
    rounds = 2 if args.quick else 10
    root = Path(tempfile.mkdtemp(prefix="buffer-bench-"))
    try:
        episodes = make_episodes(n, OBS)
        data_bytes = n * ROW_BYTES
        rng = np.random.default_rng(0)
        ring = RingBuffer(n)
        t0 = time.perf_counter()
        for ep in episodes:
            ring.add_episode(ep)
        ring_insert = n / (time.perf_counter() - t0)
        peer = torchrl_peer(n, root / "torchrl")
        trl_insert = None
        if peer is not None:
            t0 = time.perf_counter()
            for ep in episodes:
                peer[0](ep)
            trl_insert = n / (time.perf_counter() - t0)
        ours_rate, commits = ours_insert(root / "ours", episodes, cache_mb=data_bytes >> 20)
        ingest = ingest_rates(root / "ingest", rounds)
        shutil.rmtree(root / "ingest")
        full, full_facts = open_ours(root / "ours", 1.0, data_bytes)
        with full:
            draws = {"ring": lambda: ring.sample(rng), "ours_cache_1.0": drawing(full, rng)}
            if peer is not None:
                draws["torchrl"] = peer[1]
            uniform = sample_runs(draws, n, runs)
        ring = peer = None  # free their memory before the working sets load theirs
        ring_sample, trl_sample = uniform["ring"], uniform.get("torchrl")
        uniform["ours_cache_1.0"].update(full_facts)
        caches = {1.0: uniform["ours_cache_1.0"],
                  **{r: working_set(root / "ours", r, data_bytes, runs) for r in RATIOS[1:]}}
        disk = sum(f.stat().st_size for f in (root / "ours").rglob("*") if f.is_file())
        tenth = max(1, len(commits) // 10)
        commit_small = float(np.median(commits[:tenth]))
        commit_large = float(np.median(commits[-tenth:]))
        del episodes
        shutil.rmtree(root / "ours")
        rec_img = crash_then_recover(root / "rec_img", make_episodes(n_recover_img, OBS), OBS)
        shutil.rmtree(root / "rec_img")
        rec_state = crash_then_recover(root / "rec_state",
                                       make_episodes(n_recover_state, STATE_ONLY), STATE_ONLY)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def row(name: str, insert: float | None, sampled: dict[str, Any] | None) -> list[Any]:
        if sampled is None:
            return [name, "n/a", "n/a", "n/a", "n/a"]
        return [name, "-" if insert is None else insert, sampled["batches_per_s"],
                sampled["batches_per_s"] / ring_sample["batches_per_s"], sampled["coverage"]]

    uniform = caches[1.0]
    print_table(["uniform sampler", "insert/s", "batches/s", "x ring", f"coverage/{BATCHES}"],
                [row("numpy ring (RAM limit)", ring_insert, ring_sample),
                 row("torchrl LazyMemmapStorage", trl_insert, trl_sample),
                 row("ours, cache 1.0", ours_rate, uniform)],
                title=f"uniform over all {n} transitions (two 128x128 cameras): insert "
                      f"(transitions/s) and sample (batches of {BATCH} with next_obs)")
    print_table(["working set", "resident", "batches/s", "x ring", f"coverage/{BATCHES}",
                 "chunks in"],
                [[f"ours, cache {r}", caches[r]["resident_share"], caches[r]["batches_per_s"],
                  caches[r]["batches_per_s"] / ring_sample["batches_per_s"],
                  caches[r]["coverage"], caches[r]["chunks_rotated_in"]] for r in RATIOS[1:]],
                title="ours with a cache smaller than the data: uniform over the resident rows, "
                      "chunks rotating in (not a uniform sampler: compare coverage, not speed)")
    offered = FLEET * FLEET_HZ
    print_table(["path", "transitions/s", f"x {offered}/s ({FLEET} robots at {FLEET_HZ} Hz)",
                 "cpu ms/transition"],
                [[name.replace("_", " "), r["per_s"], r["per_s"] / offered, r["cpu_ms"]]
                 for name, r in ingest.items()]
                + [["(one robot, a commit per 100-step episode)", ours_rate, ours_rate / offered,
                    "-"]],
                title=f"ingest of {FLEET} interleaved streams, a transition per robot per round "
                      f"({rounds} rounds; two 128x128 cameras)")
    print_table(["buffer size", "commit ms"],
                [[f"first {tenth * EP_LEN} steps", 1e3 * commit_small],
                 [f"last {tenth * EP_LEN} of {n}", 1e3 * commit_large]],
                title="commit (checkpoint) cost against buffer size (one 100-step episode)")
    print_table(["buffer", "transitions", "bytes/transition", "recovery s"],
                [["two cameras", rec_img["transitions"], rec_img["disk_bytes_per_transition"],
                  rec_img["recovery_s"]],
                 ["state only", rec_state["transitions"],
                  rec_state["disk_bytes_per_transition"], rec_state["recovery_s"]]],
                title="disk and recovery after a crash")
    results = {
        "transitions": n, "batch": BATCH,
        "uniform": {"ring": {"insert_per_s": ring_insert, **ring_sample},
                    "torchrl": trl_sample and {"insert_per_s": trl_insert, **trl_sample},
                    "ours_cache_1.0": {"insert_per_s": ours_rate, **uniform}},
        "working_set": {f"ours_cache_{r}": caches[r] for r in RATIOS[1:]},
        "disk_bytes_per_transition": disk / n,
        "commit_ms": {"small": 1e3 * commit_small, "large": 1e3 * commit_large},
        "ingest_per_s": {**ingest, "robots": FLEET, "rounds": rounds},
        "recovery": {"images": rec_img, "state_only": rec_state}}
    if trl_sample is None:
        results["uniform"]["torchrl"] = {"skipped": "torchrl is not installed: "
                                         "pip install -e '.[bench]'"}
    targets = [
        target("cache 1.0 sample rate / RAM ring (equal coverage)",
               uniform_ratio(uniform, ring_sample), 0.8, ">="),
        target("cache 1.0 sample rate / TorchRL memmap (equal coverage)",
               uniform_ratio(uniform, trl_sample), 1.0, ">="),
        target("commit cost, large / small buffer (flat)", commit_large / commit_small, 2.0,
               "<="),
        target(f"gateway-path ingest, {FLEET} streams with group commit, transitions/s",
               ingest["gateway_group_commit"]["per_s"], offered, ">="),
    ]
    return report("buffer", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
