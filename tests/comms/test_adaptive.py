"""The adaptive plan: round trips from echoed heartbeats, throughput from timed transfers, the
mode/chunk/interval decision within bounds, and where inference should run."""

from __future__ import annotations

import pytest

from comms.adaptive import LinkMeter, SyncBounds, plan_sync, propose_placement
from comms.messages import Heartbeat

MB = 1_000_000


def meter(rtt: float | None = None, rate: float | None = None) -> LinkMeter:
    m = LinkMeter()
    m.rtt_s, m.bytes_per_s = rtt, rate
    return m


def test_heartbeats_that_echo_each_other_measure_the_round_trip() -> None:
    edge, gateway = LinkMeter(), LinkMeter()
    first = gateway.beat(now=100.0)  # the gateway's clock
    assert first.echo == -1.0
    edge.heard(first, now=50.0)  # the edge's clock: another origin, never compared
    reply = edge.beat(now=50.3)  # held for 0.3 s before its next beat
    assert (reply.echo, reply.echo_held) == (100.0, pytest.approx(0.3))
    gateway.heard(reply, now=100.42)
    assert gateway.rtt_s == pytest.approx(0.12)
    gateway.heard(Heartbeat(51.0, 99.0, 0.0), now=102.0)  # a stale echo: 3 s
    assert gateway.rtt_s == pytest.approx(0.7 * 0.12 + 0.3 * 3.0)


def test_small_transfers_time_the_round_trip_not_the_pipe() -> None:
    m = LinkMeter()
    m.transferred(1000, 0.1)
    assert m.bytes_per_s is None
    m.transferred(10 * MB, 0.1)
    assert m.bytes_per_s == pytest.approx(100 * MB)


@pytest.mark.parametrize(("link", "has_base", "modes", "mode"), [
    (meter(rtt=0.0005), False, ("full", "patch"), "full"),  # loopback, not yet timed
    (meter(rate=2000 * MB), True, ("full", "patch"), "full"),  # a timed fast link
    (meter(), True, ("full", "patch"), "full"),  # nothing measured: whole
    (meter(rtt=0.1), True, ("full", "patch"), "patch"),  # a slow WAN
    (meter(rtt=0.1), False, ("full", "patch"), "patch"),  # nothing held: sent whole
    (meter(rate=2 * MB), False, ("full", "patch", "fp16"), "fp16"),  # half size, lossy
    (meter(rate=2 * MB), True, ("full", "patch", "fp16"), "patch"),  # bit-exact changes
    (meter(rate=2 * MB), True, ("full",), "full"),  # the operator allows nothing else
])
def test_the_mode_follows_the_link(link: LinkMeter, has_base: bool, modes: tuple[str, ...],
                                   mode: str) -> None:
    plan = plan_sync(link, 400 * MB, has_base, SyncBounds(modes=modes))
    assert plan.mode == mode
    assert plan.why.startswith(f"{mode}: ")


def test_chunk_size_and_interval_stay_within_bounds() -> None:
    bounds = SyncBounds(min_chunk_bytes=64 << 10, max_chunk_bytes=4 << 20, min_interval_s=1.0,
                        max_interval_s=30.0)
    slow = plan_sync(meter(rtt=0.2, rate=1 * MB), 20 * MB, True, bounds)
    assert slow.chunk_bytes == 64 << 10  # 20 ms of a 1 MB/s link is less than the minimum
    assert slow.interval_s == 30.0  # 20 MB take 20 s: at most half the link's time -> 40 s
    medium = plan_sync(meter(rate=20 * MB), 20 * MB, True, bounds)
    assert medium.chunk_bytes == 384 << 10 and medium.interval_s == pytest.approx(2.0)
    fast = plan_sync(meter(rate=3000 * MB), 20 * MB, True, bounds)
    assert fast.chunk_bytes == 4 << 20 and fast.interval_s == 1.0
    with pytest.raises(ValueError, match="adaptive modes"):
        SyncBounds(modes=("zstd",))


def test_inference_placement_names_its_reason() -> None:
    lan = meter(rtt=0.001, rate=100 * MB)
    small = propose_placement(5 * MB, 0.002, 0.001, 0.1, lan, obs_bytes=100_000)
    assert small.where == "edge" and "at the edge" in small.why
    vla = propose_placement(7000 * MB, 0.4, 0.03, 0.1, meter(rtt=0.005, rate=50 * MB),
                            obs_bytes=100_000, edge_memory_bytes=4000 * MB)
    assert vla.where == "cloud" and "does not fit the edge's memory" in vla.why
    far = propose_placement(7000 * MB, 0.04, 0.03, 0.1, meter(rtt=0.2, rate=1 * MB),
                            obs_bytes=100_000)
    assert far.where == "edge"  # the cloud's round trip alone exceeds the budget
