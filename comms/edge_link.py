"""The edge end of the link: dials out, spools every transition, replays what is unacked, and
(with EdgeWeights) keeps the newest policy weights for the control loop to poll.

An asyncio loop in its own thread. A control loop runs on it (`run`) and awaits remote actions
(`act`) with no thread hand-off; `publish` and `request_action` serve code on other threads.
The link reconnects with exponential backoff; while it is down, `on_hold` has been called and
remote actions are refused (counted as missed deadlines).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from comms import auth
from comms.adaptive import LinkMeter
from comms.codec import decode, encode
from comms.connection import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    DEFAULT_LIMITS,
    DEFAULT_TIMINGS,
    LinkLimits,
    LinkTimings,
    Liveness,
    LoopThread,
    heartbeat,
    send,
)
from comms.edge_weights import EdgeWeights
from comms.inbound import DirectConnection, Inbound
from comms.messages import (
    PROTOCOL_VERSION,
    Ack,
    ActionRequest,
    ActionResponse,
    Authenticate,
    Challenge,
    Control,
    Error,
    Heartbeat,
    Hello,
    Message,
    ProtocolError,
    TransitionBatch,
    Welcome,
    encode_envelope,
    transition_to_body,
)
from comms.pending import PendingRequests
from comms.spool import Spool
from comms.validation import transition_from_body
from comms.weight_sync import WeightSet
from robot_rl.core import AuthError, CommsError, Observation, Transition

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential reconnect delays with jitter: first, first*factor, ... up to `cap` seconds."""

    first: float = 0.1
    factor: float = 2.0
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        base = min(self.cap, self.first * self.factor ** attempt)
        return base * random.uniform(0.5, 1.0)


class EdgeLink:
    """One authenticated websocket to the gateway carrying transition streams, remote actions,
    heartbeats and control; `start()` dials, `close()` hangs up."""

    def __init__(
        self, url: str, token: bytes, edge_id: str, spec_digest: str, spool: Spool, *,
        streams: Iterable[str] = (), ssl_context: ssl.SSLContext | None = None,
        on_hold: Callable[[str], None] | None = None,
        on_control: Callable[[Control], None] | None = None,
        timings: LinkTimings = DEFAULT_TIMINGS, limits: LinkLimits = DEFAULT_LIMITS,
        backoff: Backoff = Backoff(), weights: EdgeWeights | None = None,
    ) -> None:
        self.url, self._token, self.edge_id, self.spec_digest = url, token, edge_id, spec_digest
        self.spool, self._ssl = spool, ssl_context
        self._streams = set(streams) | set(spool.streams())
        self.on_hold, self.on_control = on_hold, on_control
        self.timings, self.limits, self.backoff = timings, limits, backoff
        self.stats: Counter[str] = Counter()
        self.meter = LinkMeter()  # round trip (heartbeats) of this link
        self.weights = weights
        self.fatal_error: CommsError | None = None
        self._connected = False
        self._errors_said: set[str] = set()  # error codes the gateway sent on this connection
        self._ids = itertools.count()
        self._requests: PendingRequests[ActionResponse] = PendingRequests()
        self._handlers: dict[type[Message], Callable[[Any], None]] = {
            Ack: self._on_ack, ActionResponse: self._on_response, Heartbeat: self._on_heartbeat,
            Control: self._on_control, Error: self._on_error,
        }
        if weights is not None:
            self._handlers.update(dict.fromkeys(EdgeWeights.MESSAGES, weights.handle))
        self._thread: LoopThread | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._ack_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> EdgeLink:
        self._thread = LoopThread(f"edge-link-{self.edge_id}")
        self._thread.run(self._begin(), timeout=5.0)
        return self

    async def _begin(self) -> None:
        self._wake = asyncio.Event()
        self._main = asyncio.create_task(self._run())

    def close(self) -> None:
        """Hang up (unacked data stays in the spool for the next start) and stop the thread."""
        if self._thread is None:
            return
        try:
            self._thread.run(self._end(), timeout=self.timings.handshake)
        except TimeoutError:
            log.warning("edge link %s: close timed out", self.edge_id)
        self._thread.stop()
        self._thread = None
        if self.weights is not None:
            self.weights.close()

    async def _end(self) -> None:
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
        await asyncio.gather(*self._ack_tasks, return_exceptions=True)

    @property
    def connected(self) -> bool:
        return self._connected

    def poll_weights(self) -> WeightSet | None:
        """The newest verified weights, swapped in now: call between two control steps. None
        when nothing new came (or this link syncs no weights); while the link is down the last
        version stays current."""
        return None if self.weights is None else self.weights.poll()

    def wait_acked(self, timeout: float) -> bool:
        """Block until the gateway has acked everything spooled; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.spool.pending_count():
            if time.monotonic() > deadline or self.fatal_error is not None:
                return False
            time.sleep(0.02)
        return True

    # -- the control loop's API --------------------------------------------------------------------
    def publish(self, stream_id: str, transitions: Sequence[Transition],
                episode_ends: Mapping[int, bool] | None = None,
                previous_end: bool | None = None) -> int:
        """Spool transitions (durable on return) for sending; `episode_ends` maps an index in
        `transitions` to the success of the episode it ended; `previous_end` closes an episode
        left open earlier (e.g. by a crash). Returns the first seq."""
        ends = episode_ends or {}
        items = [(encode(transition_to_body(t)), ends.get(i)) for i, t in enumerate(transitions)]
        if stream_id not in self._streams:
            raise CommsError(f"stream {stream_id!r} was not declared: pass it in streams=")
        for data, _ in items:  # what the gateway would refuse never enters the spool
            try:
                transition_from_body(decode(data))
            except ValueError as exc:
                raise CommsError(f"stream {stream_id}: not publishing a bad transition: {exc}"
                                 ) from None
        first = self.spool.append(stream_id, items, previous_end)
        self.stats["published"] += len(items)
        if self._thread is not None and self._wake is not None:
            self._thread.loop.call_soon_threadsafe(self._wake.set)
        return first

    def run(self, control_loop: Coroutine[Any, Any, T]) -> T:
        """Run `control_loop` on the link's event loop until it ends, and return its result.

        A control loop that runs here gets remote actions from `act` with no thread hand-off, and
        the link's callbacks (`on_hold`, `on_control`) run only between its awaits. Interrupting
        the calling thread (Ctrl-C) cancels the loop and lets it clean up before re-raising.
        """
        if self._thread is None:
            raise CommsError("the edge link is not started: call start() first")
        return self._thread.run(control_loop, timeout=None)

    async def act(self, robot_id: str, obs: Observation, deadline_s: float
                  ) -> ActionResponse | None:
        """On the link's loop: the served policy's action for `obs`, or None (counted) when it
        misses `deadline_s` or the link is down."""
        ws = self._ws
        if not self._connected or ws is None:
            self.stats["deadline_missed"] += 1
            return None
        rid = next(self._ids)
        pending = self._requests.add(rid, deadline_s)
        try:
            await ws.send(ActionRequest(rid, robot_id, dict(obs), deadline_s).encode())
            response = await pending.reply
        except asyncio.CancelledError:
            if not pending.deadline_cancelled():
                raise
            response = None
        except ConnectionClosed:
            response = None
        finally:
            self._requests.remove(rid)
        if response is None:
            self.stats["deadline_missed"] += 1
            return None
        self.stats["actions_received"] += 1
        return response

    def request_action(self, robot_id: str, obs: Observation, deadline_s: float
                       ) -> ActionResponse | None:
        """`act` for code on another thread (one thread hand-off each way)."""
        if self._thread is None:
            self.stats["deadline_missed"] += 1
            return None
        return self._thread.run(self.act(robot_id, obs, deadline_s), timeout=deadline_s + 1.0)

    # -- connection manager ------------------------------------------------------------------------
    _ws: ClientConnection | None = None

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with connect(
                    self.url, ssl=self._ssl, compression=None, proxy=None,
                    max_size=self.limits.max_message_bytes, max_queue=self.limits.queue_frames,
                    open_timeout=self.timings.handshake, ping_interval=None, close_timeout=1.0,
                    create_connection=DirectConnection,
                ) as ws:
                    assert isinstance(ws, DirectConnection)
                    inbound = Inbound(ws, Liveness(), "gateway")
                    last_seqs = await asyncio.wait_for(self._handshake(ws, inbound),
                                                       self.timings.handshake)
                    attempt = 0
                    await self._serve(ws, inbound, last_seqs)
            except (AuthError, ProtocolError) as exc:
                self.fatal_error = exc
                log.error("edge link %s: giving up: %s", self.edge_id, exc)
                self._lost(f"gateway refused us: {exc}")
                return
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, CommsError) as exc:
                self.stats["disconnects"] += 1
                log.warning("edge link %s: link down: %s", self.edge_id,
                            str(exc) or type(exc).__name__)
            except Exception as exc:  # a bug: stop visibly instead of spooling forever in silence
                log.exception("edge link %s: crashed", self.edge_id)
                self.fatal_error = CommsError(f"the edge link crashed: {exc!r}")
                self._lost("the edge link crashed")
                return
            self._lost("link to the gateway is down")
            await asyncio.sleep(self.backoff.delay(attempt))
            attempt += 1

    def _lost(self, why: str) -> None:
        was_connected, self._connected, self._ws = self._connected, False, None
        if self.weights is not None:
            self.weights.disconnected()
        self._requests.abandon()  # no answer will come: waiters need not wait for deadlines
        if was_connected and self.on_hold is not None:
            self._callback(self.on_hold, why)

    def _callback(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run a user callback; its failure is logged and counted, never fatal to the link."""
        try:
            fn(arg)
        except Exception:
            self.stats["callback_errors"] += 1
            log.exception("edge link %s: callback %s failed", self.edge_id, fn)

    async def _handshake(self, ws: ClientConnection, inbound: Inbound) -> dict[str, int]:
        client_nonce = auth.new_nonce()
        self._streams.update(self.spool.streams())
        hello = Hello(PROTOCOL_VERSION, self.edge_id, self.spec_digest, client_nonce,
                      sorted(self._streams)).encode()
        try:
            await send(ws, hello, self.timings.send)
            challenge = await inbound.next()
            if not isinstance(challenge, Challenge):
                raise ProtocolError(f"gateway sent {challenge.kind} instead of a challenge")
            proof = auth.edge_proof(self._token, challenge.server_nonce, client_nonce, hello)
            await send(ws, Authenticate(proof), self.timings.send)
            welcome = await inbound.next()
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CLOSE_POLICY:
                raise AuthError(f"gateway refused authentication: {exc.rcvd.reason}") from None
            if exc.rcvd is not None and exc.rcvd.code not in (CLOSE_NORMAL, CLOSE_TRY_AGAIN):
                raise ProtocolError(f"gateway refused the handshake: {exc.rcvd.reason}") from None
            raise
        if not isinstance(welcome, Welcome):
            raise ProtocolError(f"gateway sent {welcome.kind} instead of a welcome")
        auth.verify(auth.gateway_proof(self._token, challenge.server_nonce, client_nonce, hello),
                    welcome.proof, "gateway")
        return welcome.last_seqs

    async def _serve(self, ws: ClientConnection, inbound: Inbound,
                     last_seqs: dict[str, int]) -> None:
        for stream, last in last_seqs.items():
            if not self.spool.acked(stream) <= last < self.spool.next_seq(stream):
                await asyncio.to_thread(self.spool.rebase, stream, last)
            else:
                await asyncio.to_thread(self.spool.ack, stream, last)
        inbound.serve(self._on_message)  # from now on each message is handled as it arrives
        self._ws, self._connected = ws, True
        self._errors_said.clear()
        self.stats["connects"] += 1
        log.info("edge link %s: connected to %s", self.edge_id, self.url)
        on_beat = None
        if self.weights is not None:
            self.weights.connected(ws, self.url, self._ssl)
            on_beat = self.weights.tick
        tasks = [asyncio.create_task(t) for t in (
            inbound.closed(), self._send(ws),
            heartbeat(ws, inbound.liveness, self.timings, "gateway", self.meter, on_beat))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
        raise CommsError("link task ended")

    def _on_message(self, msg: Message) -> None:
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise CommsError(f"gateway sent an unexpected {msg.kind} message")
        handler(msg)

    async def _send(self, ws: ClientConnection) -> None:
        """Stream unacked spool entries in batches, at most `window_items` and `window_bytes` in
        flight per stream."""
        assert self._wake is not None
        sent = {s: self.spool.acked(s) for s in self._streams}
        lim = self.limits
        while True:
            self._wake.clear()
            progressed = False
            for stream in self.spool.streams():
                after = max(sent.get(stream, -1), self.spool.acked(stream))
                room = lim.window_items - (after - self.spool.acked(stream))
                room_bytes = lim.window_bytes - self.spool.unacked_bytes(stream, after)
                if room <= 0 or room_bytes <= 0:
                    continue
                entries = await asyncio.to_thread(  # disk I/O stays off the loop
                    self.spool.pending, stream, after, min(room, lim.batch_items),
                    min(room_bytes, lim.batch_bytes))
                if not entries:
                    continue
                body = {"stream_id": stream, "first_seq": entries[0].seq,
                        "transitions": [e.data for e in entries],
                        "episode_ends": [[e.seq - 1, e.previous_end] for e in entries
                                         if e.previous_end is not None]
                        + [[e.seq, e.episode_end] for e in entries if e.episode_end is not None]}
                await ws.send(encode_envelope(TransitionBatch.kind, body))
                sent[stream] = entries[-1].seq
                self.stats["sent"] += len(entries)
                progressed = True
            if not progressed:
                try:  # (asyncio.timeout: 3.11's wait_for can lose a cancellation here)
                    async with asyncio.timeout(self.timings.heartbeat):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    # -- handlers (run on the loop) ----------------------------------------------------------------
    def _on_ack(self, ack: Ack) -> None:
        if ack.last_seq >= self.spool.next_seq(ack.stream_id):
            log.error("edge link %s: gateway acked seq %d of %s beyond what was sent",
                      self.edge_id, ack.last_seq, ack.stream_id)
            return
        task = asyncio.get_running_loop().create_task(self._apply_ack(ack))
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_tasks.discard)

    async def _apply_ack(self, ack: Ack) -> None:
        """Forget acked entries on a worker thread (an fsync must not stall heartbeats); acks
        are monotonic, so their order does not matter."""
        await asyncio.to_thread(self.spool.ack, ack.stream_id, ack.last_seq)
        self.stats["acked_batches"] += 1
        if self._wake is not None:
            self._wake.set()

    def _on_response(self, response: ActionResponse) -> None:
        if not self._requests.resolve(response.request_id, response):
            self.stats["late_responses"] += 1

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        self.stats["heartbeats"] += 1
        self.meter.heard(beat)

    def _on_control(self, control: Control) -> None:
        self.stats[f"control_{control.command}"] += 1
        if self.on_control is not None:
            self._callback(self.on_control, control)

    def _on_error(self, error: Error) -> None:
        """Each kind of error once per connection (a gateway with no policy answers every
        request with one); the rest are counted."""
        self.stats[f"errors_{error.code}"] += 1
        if error.code not in self._errors_said:
            self._errors_said.add(error.code)
            log.warning("edge link %s: gateway reports %s: %s (said once per connection)",
                        self.edge_id, error.code, error.reason)
