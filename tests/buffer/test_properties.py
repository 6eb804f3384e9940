"""Property tests: whatever is inserted (interleaved robots, any commit points), batches return
exactly it, through cache eviction and reopening."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buffer import CacheConfig, ReplayBuffer
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, SMALL_CHUNK, check_batch, transition

ops = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 25), st.booleans(), st.booleans(),
                         st.booleans()), min_size=1, max_size=8)


def open_buffer(path: Path, slots: int) -> ReplayBuffer:
    cache = CacheConfig(max_transitions=16 * slots, background=False)
    return ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK, fsync=False,
                        cache=cache)


def coverage(buf: ReplayBuffer, rounds: int) -> set[tuple[int, int, int]]:
    """(robot, episode, step) of every row resident at some point over `rounds` rotations."""
    seen: set[tuple[int, int, int]] = set()
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        batch = buf.sample(64, rng)
        check_batch(batch)
        with buf.cache.lock:
            rows = buf._resident_candidates()
            data = buf.cache.pool["obs/state"][buf.cache.positions(rows)]
        seen.update(map(tuple, data.astype(int).tolist()))
    return seen


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, slots=st.integers(2, 5))
def test_batches_match_inserted_across_eviction_and_reopen(
        ops: list[tuple[int, int, bool, bool, bool]], slots: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b"
        buf = open_buffer(path, slots)
        committed: set[tuple[int, int, int]] = set()
        pending: set[tuple[int, int, int]] = set()
        cursor = {r: [0, 0] for r in range(3)}
        for robot, n, end, commit, reopen in ops:
            episode, step = cursor[robot]
            buf.append([transition(robot, episode, step + i) for i in range(n)])
            pending |= {(robot, episode, step + i) for i in range(n)}
            cursor[robot] = [episode, step + n]
            if end:
                buf.end_episode(True, robot_id=f"robot{robot}")
                cursor[robot] = [episode + 1, 0]
            if commit or reopen:
                buf.commit()
                committed |= pending
                pending = set()
            if reopen:
                buf.close()
                buf = open_buffer(path, slots)
                # open episodes continue after the reopen with the same cursor
        buf.commit()
        committed |= pending
        assert len(buf) == len(committed)
        rounds = 2 * -(-len(buf) // 16) + 2
        assert coverage(buf, rounds) == committed
        buf.close()
        with open_buffer(path, slots) as again:
            assert coverage(again, rounds) == committed
