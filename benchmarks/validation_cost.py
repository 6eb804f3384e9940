"""What the gateway's checks of untrusted input cost, measured in one run: decoding a transition
batch with every field checked against building the same Transitions unchecked, set against the
fsynced commit of that batch; and the copy that makes a received observation writable for torch,
set against the round trip's p50 stored by benchmarks.obs_roundtrip.

    python -m benchmarks.validation_cost [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, report, target
from comms.codec import decode
from comms.messages import ActionRequest, TransitionBatch, decode_message
from robot_rl.core import ArraySpec, DictSpec, Source, Transition
from robot_rl.runtime.buffer_sink import BufferSink

SPEC = DictSpec({"state": ArraySpec((20,), "float32"),
                 "wrist_cam": ArraySpec((128, 128, 3), "uint8"),
                 "side_cam": ArraySpec((128, 128, 3), "uint8")})
ACTION = ArraySpec((5,), "float32", -1.0, 1.0)
ROUNDTRIP = Path(__file__).parent / "results" / "obs_roundtrip.json"


def observation(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: rng.integers(0, 256, s.shape, dtype=np.uint8) if s.dtype == "uint8"
            else rng.normal(size=s.shape).astype(np.float32) for k, s in SPEC.items()}


def transition(i: int, rng: np.random.Generator) -> Transition:
    return Transition(observation(rng), np.zeros(5, np.float32), 0.1, observation(rng), False,
                      False, robot_id="sim0", step=i, wall_time=float(i), mono_time=float(i))


def unchecked(frame: bytes) -> list[Transition]:
    """The batch's transitions built with no check at all: the path before validation."""
    out = []
    for item in decode(frame)["body"]["transitions"]:
        fields = dict(decode(item))
        fields["source"] = Source(fields["source"])
        out.append(Transition(**fields))
    return out


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def batch_costs(sizes: tuple[int, ...], repeats: int, commits: int) -> dict[str, dict]:
    rng, rows = np.random.default_rng(0), {}
    with tempfile.TemporaryDirectory() as scratch:
        sink, seq = BufferSink(Path(scratch) / "buffer", SPEC, ACTION), 0
        try:
            for size in sizes:
                frame = TransitionBatch("sim0", 0, tuple(transition(i, rng) for i in range(size)),
                                        ()).encode()
                checked = median_s(lambda f=frame: decode_message(f), repeats)
                raw = median_s(lambda f=frame: unchecked(f), repeats)
                spent = []
                for _ in range(commits):
                    batch = [transition(i, rng) for i in range(size)]
                    start = time.perf_counter()
                    sink.commit("sim0", seq, batch, ())
                    spent.append(time.perf_counter() - start)
                    seq += size
                commit = float(np.median(spent))
                rows[str(size)] = {"decode_checked_us": checked * 1e6, "decode_unchecked_us":
                                   raw * 1e6, "commit_ms": commit * 1e3,
                                   "checks_share_of_commit": max(checked - raw, 0.0) / commit}
        finally:
            sink.close()
    return rows


def writable_copy_us(repeats: int) -> float:
    """Decode an observation request and make its arrays writable, as ServedPolicy does."""
    frame = ActionRequest(1, "sim0", observation(np.random.default_rng(1)), 0.1).encode()
    request = decode_message(frame)
    assert isinstance(request, ActionRequest)
    return 1e6 * median_s(lambda: {k: np.require(v, requirements="W")
                                   for k, v in request.obs.items()}, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args()
    repeats, commits = (20, 3) if args.quick else (300, 30)
    rows = batch_costs((1, 10), repeats, commits)
    copy = writable_copy_us(repeats)
    print_table(["batch", "decode checked µs", "unchecked µs", "commit ms", "checks / commit"],
                [[k, r["decode_checked_us"], r["decode_unchecked_us"], r["commit_ms"],
                  r["checks_share_of_commit"]] for k, r in rows.items()],
                title="transition batches of two 128x128 cameras + state")
    p50 = json.loads(ROUNDTRIP.read_text())["results"]["loopback"]["gateway"]["p50_ms"]
    share = copy / (p50 * 1000)
    print(f"\nwritable copy of a received observation: {copy:.1f} µs = {share:.2%} of the "
          f"round trip's p50 ({p50:.2f} ms, {ROUNDTRIP.name})")
    worst = max(r["checks_share_of_commit"] for r in rows.values())
    targets = [target("field checks / commit time, worst batch size", worst, 0.05, "<="),
               target("writable copy / round-trip p50", share, 0.05, "<=")]
    results = {"batches": rows, "writable_copy_us": copy, "roundtrip_p50_ms": p50,
               "roundtrip_source": ROUNDTRIP.name}
    return report("validation_cost", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
