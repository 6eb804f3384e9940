"""Adaptive sync: what a link carries, and how weights (or observations) should use it.

A LinkMeter keeps smoothed estimates of one link's round trip (from heartbeats that echo each
other) and throughput (from finished weight transfers). `plan_sync` turns them into a mode, a
chunk size and a sync interval within the operator's SyncBounds; `propose_placement` says whether
a policy should run at the edge (weights travel) or in the cloud (observations travel), and why.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from comms.messages import Heartbeat

LAN_RTT_S = 0.02  # before any transfer was timed, a round trip under this is taken for a LAN


@dataclass(frozen=True)
class SyncBounds:
    """The limits an adaptive plan stays within."""

    modes: tuple[str, ...] = ("full", "patch")  # allowed modes; add "fp16" to allow lossy copies
    min_chunk_bytes: int = 64 << 10
    max_chunk_bytes: int = 4 << 20
    min_interval_s: float = 0.0  # never push one edge versions closer together than this
    max_interval_s: float = 30.0  # nor further apart than this, however slow its link
    fast_bytes_per_s: float = 100e6  # a link at least this fast carries whole versions
    chunk_s: float = 0.02  # a chunk holds the link at most this long (heartbeats interleave)
    link_share: float = 0.5  # weights may take at most this share of a link's time

    def __post_init__(self) -> None:
        if not self.modes or not set(self.modes) <= {"full", "patch", "fp16"}:
            raise ValueError(f"adaptive modes must be some of full, patch, fp16; got {self.modes}")
        if not 0 < self.min_chunk_bytes <= self.max_chunk_bytes:
            raise ValueError("chunk bounds: 0 < min_chunk_bytes <= max_chunk_bytes")
        if not 0 <= self.min_interval_s <= self.max_interval_s:
            raise ValueError("interval bounds: 0 <= min_interval_s <= max_interval_s")
        if not 0 < self.link_share <= 1:
            raise ValueError(f"link_share must be in (0, 1], got {self.link_share}")


@dataclass(frozen=True)
class SyncPlan:
    """How the next version goes to one edge, and the reason in words (for the log)."""

    mode: str
    chunk_bytes: int
    interval_s: float
    why: str


@dataclass(frozen=True)
class Placement:
    """Where a policy should run ("edge" or "cloud") and why."""

    where: str
    why: str


class LinkMeter:
    """Smoothed round trip and throughput of one link (exponential moving averages)."""

    def __init__(self, alpha: float = 0.3) -> None:
        self.alpha = alpha
        self.rtt_s: float | None = None
        self.bytes_per_s: float | None = None
        self._peer_beat: tuple[float, float] | None = None  # its sent_at, when we heard it

    def _smooth(self, old: float | None, new: float) -> float:
        return new if old is None else (1 - self.alpha) * old + self.alpha * new

    def beat(self, now: float | None = None) -> Heartbeat:
        """The heartbeat to send now, echoing the peer's last one."""
        now = time.monotonic() if now is None else now
        if self._peer_beat is None:
            return Heartbeat(now)
        sent_at, heard_at = self._peer_beat
        return Heartbeat(now, sent_at, now - heard_at)

    def heard(self, beat: Heartbeat, now: float | None = None) -> None:
        """Note a heartbeat from the peer; its echo of ours gives a round-trip sample."""
        now = time.monotonic() if now is None else now
        self._peer_beat = (beat.sent_at, now)
        if beat.echo >= 0:
            sample = now - beat.echo - beat.echo_held
            if 0 <= sample < 3600:  # an echo of another connection's clock is no sample
                self.rtt_s = self._smooth(self.rtt_s, sample)

    def transferred(self, nbytes: int, seconds: float) -> None:
        """Note a finished transfer of `nbytes` that took `seconds` on this link."""
        if nbytes >= 64 << 10 and seconds > 0:  # small ones time the round trip, not the pipe
            self.bytes_per_s = self._smooth(self.bytes_per_s, nbytes / seconds)

    def fast(self, bounds: SyncBounds) -> bool | None:
        """Whether the link counts as fast (None: nothing measured yet)."""
        if self.bytes_per_s is not None:
            return self.bytes_per_s >= bounds.fast_bytes_per_s
        if self.rtt_s is not None:
            return self.rtt_s < LAN_RTT_S
        return None

    def describe(self) -> str:
        rtt = "?" if self.rtt_s is None else f"{self.rtt_s * 1e3:.1f} ms"
        rate = "?" if self.bytes_per_s is None else f"{self.bytes_per_s / 1e6:.1f} MB/s"
        return f"rtt {rtt}, throughput {rate}"


def plan_sync(meter: LinkMeter, model_bytes: int, has_base: bool, bounds: SyncBounds) -> SyncPlan:
    """The mode, chunk size and interval for the next version to an edge behind `meter`'s link.

    Fast (or unmeasured) links get whole versions; slow ones a lossless patch against what the
    edge holds, or, with no base to patch and fp16 allowed, a half-size lossy copy."""
    fast = meter.fast(bounds)
    slow = fast is False
    if not slow and "full" in bounds.modes:
        mode, reason = "full", "fast link" if fast else "link not measured yet"
    elif "patch" in bounds.modes and (has_base or "fp16" not in bounds.modes):
        mode, reason = "patch", "slow link" + ("" if has_base else ", nothing held to patch yet")
    elif "fp16" in bounds.modes:
        mode, reason = "fp16", "slow link, nothing held to patch: a half-size lossy copy"
    else:
        mode, reason = bounds.modes[0], "the only mode allowed"
    rate = meter.bytes_per_s
    if rate is None:
        chunk = bounds.min_chunk_bytes if slow else bounds.max_chunk_bytes
    else:
        chunk = int(rate * bounds.chunk_s)
    chunk = min(max(chunk - chunk % (64 << 10), bounds.min_chunk_bytes), bounds.max_chunk_bytes)
    wire = model_bytes * {"full": 1.0, "fp16": 0.5, "patch": 1.0}[mode]  # a patch may be whole
    seconds = 0.0 if rate is None else wire / rate
    interval = min(max(seconds / bounds.link_share, bounds.min_interval_s), bounds.max_interval_s)
    return SyncPlan(mode, chunk, interval,
                    f"{mode}: {reason} ({meter.describe()}); chunks of {chunk >> 10} KiB, "
                    f"a version at most every {interval:.2f} s")


def propose_placement(policy_bytes: int, edge_step_s: float | None, cloud_step_s: float | None,
                      period_s: float, meter: LinkMeter, obs_bytes: int,
                      edge_memory_bytes: int | None = None, max_interval_s: float = 30.0
                      ) -> Placement:
    """Edge or cloud for a policy of `policy_bytes` that takes `edge_step_s` per step at the edge
    and `cloud_step_s` in the cloud (None: unknown), at a control period of `period_s`.

    The edge is preferred (no link in the control path) when the policy fits its memory, steps
    within half a period there, and its weights cross the link within `max_interval_s`; else
    the cloud when a step there, plus the round trip and the observation, fits half a period."""
    budget = period_s / 2
    rtt, rate = meter.rtt_s, meter.bytes_per_s
    link = meter.describe()
    sync_s = math.inf if rate is None else policy_bytes / rate
    cloud_s = None
    if cloud_step_s is not None and rtt is not None:
        cloud_s = cloud_step_s + rtt + (0.0 if rate is None else obs_bytes / rate)
    fits = edge_memory_bytes is None or policy_bytes <= edge_memory_bytes
    edge_ok = fits and edge_step_s is not None and edge_step_s <= budget
    if edge_ok and (rate is None or sync_s <= max_interval_s):
        return Placement("edge", f"{policy_bytes / 1e6:.1f} MB policy steps in "
                         f"{edge_step_s * 1e3:.1f} ms at the edge (budget {budget * 1e3:.0f} ms); "
                         f"weights cross the link ({link}) in {sync_s:.2f} s")
    if cloud_s is not None and cloud_s <= budget:
        why = ("does not fit the edge's memory" if not fits else
               f"takes {edge_step_s * 1e3:.1f} ms at the edge" if edge_step_s is not None
               and edge_step_s > budget else f"needs {sync_s:.1f} s per version on the link")
        return Placement("cloud", f"the policy {why}; a cloud step with the round trip takes "
                         f"{cloud_s * 1e3:.1f} ms (budget {budget * 1e3:.0f} ms; {link})")
    if edge_ok or (fits and edge_step_s is not None and edge_step_s <= period_s):
        return Placement("edge", f"neither side fits {budget * 1e3:.0f} ms comfortably; the edge "
                         f"steps in {edge_step_s * 1e3:.1f} ms with no link in the loop ({link})")
    return Placement("cloud", f"the edge cannot run the policy within a period ({link})")
