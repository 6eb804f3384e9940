"""Replay buffer: insert and sample throughput against a RAM ring and TorchRL's memmap buffer,
cache coverage, commit (checkpoint) cost against buffer size, disk bytes per transition and
recovery time after a crash.

Two 128x128 cameras + a 7-D state, batches of 256 with next_obs. TorchRL is a peer installed for
the benchmark only (`pip install torchrl` with the torch pin); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import print_table, report, target
from buffer import CacheConfig, ReplayBuffer
from buffer.schema import chunk_rows, heavy_step_specs
from robot_rl.core import ArraySpec, DictSpec, Transition

CAM = (128, 128, 3)
OBS = DictSpec({"wrist": ArraySpec(CAM, "uint8"), "side": ArraySpec(CAM, "uint8"),
                "state": ArraySpec((7,), "float32")})
STATE_ONLY = DictSpec({"state": ArraySpec((7,), "float32")})
ACTION = ArraySpec((7,), "float32")
EP_LEN, BATCH = 100, 256
ROW_BYTES = sum(s.nbytes for s in OBS.fields.values()) + ACTION.nbytes


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

    def sample(self, rng: np.random.Generator) -> Any:
        idx = rng.integers(0, self.n - 1, BATCH)
        return ({k: v[idx] for k, v in self.obs.items()},
                {k: v[idx + 1] for k, v in self.obs.items()}, self.action[idx], self.reward[idx])


def torchrl_peer(capacity: int, scratch: Path) -> tuple[Callable, Callable] | None:
    """TorchRL's ReplayBuffer over LazyMemmapStorage (next obs stored as TorchRL does)."""
    try:
        import torch
        from tensordict import TensorDict
        from torchrl.data import LazyMemmapStorage
        from torchrl.data import ReplayBuffer as TorchRLBuffer
    except ImportError:
        print("torchrl is not installed: skipping the TorchRL LazyMemmapStorage peer "
              "(PIP_CONSTRAINT=constraints.txt pip install torchrl)")
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

    return add, lambda rng: rb.sample()


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


def rate(fn: Callable[[], Any], seconds: float) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def ours_sample(path: Path, ratio: float, data_bytes: int, seconds: float,
                coverage_batches: int) -> dict[str, float]:
    """Reopen with a cache of `ratio` x the data, fill it, then sample; and coverage over time."""
    rpc = chunk_rows(heavy_step_specs(OBS, ACTION))
    chunks = int(np.ceil(ratio * data_bytes / (rpc * ROW_BYTES)))  # the cache holds whole chunks
    cache = CacheConfig(max_transitions=chunks * rpc)
    with ReplayBuffer(path, cache=cache, fsync=False) as buf:
        t0 = time.perf_counter()
        buf.cache.fill()
        fill_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        per_s = rate(lambda: buf.sample(BATCH, rng), seconds)
        seen = np.zeros(len(buf), bool)
        for _ in range(coverage_batches):
            buf.sample(BATCH, rng)
            seen[buf.last_rows] = True
        return {"batches_per_s": per_s, "fill_s": fill_s, "slots": buf.cache.n_slots,
                "coverage": float(seen.mean()), "loads": buf.cache.loads}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    n_recover_img = 2_000 if args.quick else 100_000
    n_recover_state = 20_000 if args.quick else 1_000_000
    seconds = 1.0 if args.quick else 4.0
    cover = 50 if args.quick else 400
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
        ring_sample = rate(lambda: ring.sample(rng), seconds)
        peer = torchrl_peer(n, root / "torchrl")
        trl_insert = trl_sample = None
        if peer is not None:
            t0 = time.perf_counter()
            for ep in episodes:
                peer[0](ep)
            trl_insert = n / (time.perf_counter() - t0)
            trl_sample = rate(lambda: peer[1](rng), seconds)
        ring = peer = None  # free their memory before ours runs
        ours_rate, commits = ours_insert(root / "ours", episodes, cache_mb=data_bytes >> 20)
        caches = {r: ours_sample(root / "ours", r, data_bytes, seconds, cover)
                  for r in (1.0, 0.25, 0.0)}
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

    rows = [["numpy ring (RAM limit)", ring_insert, ring_sample, 1.0, "-"],
            ["torchrl LazyMemmapStorage", trl_insert or "n/a", trl_sample or "n/a",
             (trl_sample / ring_sample) if trl_sample else "n/a", "-"],
            *[[f"ours, cache ratio {r}", ours_rate if r == 1.0 else "-", c["batches_per_s"],
               c["batches_per_s"] / ring_sample, f"{c['coverage']:.2f}"]
              for r, c in caches.items()]]
    print_table(["buffer", "insert/s", "batches/s", "x ring", f"seen in {cover} batches"], rows,
                title=f"insert (transitions/s) and sample (batches of {BATCH} with next_obs), "
                      f"{n} transitions, two 128x128 cameras")
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
    results = {"transitions": n, "ring": {"insert_per_s": ring_insert, "batches_per_s":
                                          ring_sample},
               "torchrl": {"insert_per_s": trl_insert, "batches_per_s": trl_sample},
               "ours": {"insert_per_s": ours_rate, "disk_bytes_per_transition": disk / n,
                        **{f"cache_{r}": c for r, c in caches.items()}},
               "commit_ms": {"small": 1e3 * commit_small, "large": 1e3 * commit_large},
               "recovery": {"images": rec_img, "state_only": rec_state}}
    targets = [
        target("cache 1.0 sample rate / RAM ring", caches[1.0]["batches_per_s"] / ring_sample,
               0.8, ">="),
        target("cache 0.25 sample rate / TorchRL memmap",
               caches[0.25]["batches_per_s"] / trl_sample if trl_sample else None, 1.0, ">="),
        target("commit cost, large / small buffer (flat)", commit_large / commit_small, 2.0,
               "<="),
    ]
    return report("buffer", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
