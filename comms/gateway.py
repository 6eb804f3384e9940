"""The cloud end of the link: authenticates edges, commits streams exactly once, serves actions.

Each authenticated edge gets a reader that hands frames to two bounded queues (transition
batches, action requests); when a queue is full the reader stops reading, and TCP pushes back on
the edge. Sink calls run one at a time on a dedicated thread; batches of all edges that wait
meanwhile share the next commit (comms.group_commit); acks follow the durable commit.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from comms import auth
from comms.adaptive import LinkMeter
from comms.codec import CodecError
from comms.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_TRY_AGAIN,
    DEFAULT_LIMITS,
    DEFAULT_TIMINGS,
    LinkLimits,
    LinkTimings,
    Liveness,
    LoopThread,
    clip_reason,
    heartbeat,
    send,
)
from comms.edge_keys import EdgeKeys, Grant
from comms.group_commit import GroupCommitter
from comms.messages import (
    PROTOCOL_VERSION,
    WEIGHTS_ONLY,
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
    WeightApplied,
    WeightRequest,
    Welcome,
    decode_message,
)
from comms.sink import TransitionSink
from comms.weight_service import WeightService
from robot_rl.core import AuthError, CommsError, SpecError, StorageError

log = logging.getLogger(__name__)


class InferenceServer(Protocol):
    """A policy served to remote robots: observation in, (action, policy version) out.

    A server whose `act` takes well under a millisecond may set a class attribute
    `cpu_light = True`: the gateway then calls it on its event loop, saving two thread hops per
    request, until one call takes longer than `LinkTimings.inline_act`; from then on it runs on
    the policy thread like every other server, so a slow policy never stalls heartbeats again.
    """

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]: ...


@dataclass
class _Edge:
    """One authenticated connection and its bounded work queues."""

    edge_id: str
    ws: ServerConnection
    grant: Grant  # the streams and robot ids this edge may write
    batches: asyncio.Queue[TransitionBatch]
    requests: asyncio.Queue[tuple[float, ActionRequest]]
    liveness: Liveness = field(default_factory=Liveness)
    meter: LinkMeter = field(default_factory=LinkMeter)  # round trip and throughput
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Gateway:
    """Serves edges on `host:port` (ws, or wss with `ssl_context`) until `stop()`.

    Without `edge_keys` every edge proves it holds the shared `token` and may write the streams
    it declares (robot ids named like them); with `edge_keys`, each edge proves its own key and
    writes only what the keys file grants it. With `weights`, it keeps every edge that asks for
    weights on the newest version published with `publish_weights`."""

    def __init__(
        self, sink: TransitionSink, token: bytes, spec_digest: str, *,
        inference: InferenceServer | None = None, host: str = "127.0.0.1", port: int = 0,
        ssl_context: ssl.SSLContext | None = None, timings: LinkTimings = DEFAULT_TIMINGS,
        limits: LinkLimits = DEFAULT_LIMITS, edge_keys: EdgeKeys | None = None,
        weights: WeightService | None = None,
    ) -> None:
        self.sink, self._token, self.spec_digest = sink, token, spec_digest
        self.edge_keys, self.weights = edge_keys, weights
        self._unauthenticated = 0  # connections between upgrade and welcome
        self.inference, self.host, self._port, self._ssl = inference, host, port, ssl_context
        self.timings, self.limits = timings, limits
        self.stats: Counter[str] = Counter()
        self.edges: dict[str, _Edge] = {}
        self._server: Server | None = None
        self._sink_thread = ThreadPoolExecutor(1, thread_name_prefix="gateway-sink")
        self.committer = GroupCommitter(sink, self._in_sink, self.stats)
        self._policy_thread = ThreadPoolExecutor(1, thread_name_prefix="gateway-policy")
        self.inline_inference = bool(getattr(inference, "cpu_light", False))
        self._handlers: dict[type[Message], Callable[[_Edge, Any], Awaitable[None]]] = {
            TransitionBatch: self._on_batch, ActionRequest: self._on_request,
            Heartbeat: self._on_heartbeat, Error: self._on_error,
            WeightRequest: self._on_weights, WeightApplied: self._on_weights,
        }

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.weights is not None:
            self.weights.start(asyncio.get_running_loop())
        self._server = await serve(  # small frames until the handshake completes
            self._handle, self.host, self._port, ssl=self._ssl, compression=None,
            max_size=self.limits.preauth_message_bytes, max_queue=self.limits.queue_frames,
            ping_interval=None, open_timeout=self.timings.handshake, close_timeout=1.0,
            process_request=self._admit,
        )

    def _admit(self, ws: ServerConnection, request: Request) -> Response | None:
        """Refuse the upgrade (503) while too many connections are still unauthenticated."""
        if self._unauthenticated < self.limits.max_unauthenticated:
            return None
        self.stats["rejected_busy"] += 1
        return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                          "too many unauthenticated connections; retry shortly\n")

    @property
    def port(self) -> int:
        if self._server is None:
            raise CommsError("the gateway is not started: call start() first")
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), self.timings.handshake)
        self._sink_thread.shutdown(wait=True)
        self._policy_thread.shutdown(wait=False, cancel_futures=True)
        if self.weights is not None:
            self.weights.close()
        self.sink.close()

    def publish_weights(self, weights: Mapping[str, np.ndarray], version: int,
                        copy: bool = True) -> None:
        """Make `weights` the newest version and push it to every edge that asked for weights,
        as a patch against what each holds. Any thread; the event loop never hashes or encodes.
        ValueError for a version not newer than the last. `copy=False` hands the arrays over
        instead of copying them (what Policy.get_weights returned, written by nobody after)."""
        if self.weights is None:
            raise CommsError("this gateway has no weight sender: pass weights=WeightService(...)")
        self.weights.publish(weights, version, copy)

    def weight_stats(self) -> dict[str, dict[str, Any]]:
        """Per edge id: the weights version it acts with, its lag, its sync latency (seconds
        from publish_weights to applied there), mode, channel and link estimates."""
        return {} if self.weights is None else self.weights.edge_stats()

    async def control(self, edge_id: str, command: str, reason: str = "") -> None:
        """Send pause/resume/reset/estop/release to a connected edge."""
        edge = self.edges.get(edge_id)
        if edge is None:
            raise CommsError(f"edge {edge_id!r} is not connected; connected: {sorted(self.edges)}")
        await send(edge.ws, Control(command, reason), self.timings.send)

    # -- one connection ----------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        host, port = ws.remote_address[:2]
        peer = f"{host}:{port}"
        self._unauthenticated += 1
        try:
            edge_id, grant = await asyncio.wait_for(self._handshake(ws), self.timings.handshake)
        except (AuthError, ProtocolError, CodecError, SpecError, StorageError,
                TimeoutError) as exc:
            kind = {AuthError: "auth"}.get(type(exc), "protocol")
            reason = str(exc) or "handshake timed out"
            self.stats[f"rejected_{kind}"] += 1
            log.warning("gateway: refused %s: %s", peer, reason)
            code = (CLOSE_POLICY if isinstance(exc, AuthError) else
                    CLOSE_TRY_AGAIN if isinstance(exc, StorageError | TimeoutError) else
                    CLOSE_PROTOCOL)
            await self._close(ws, code, reason)
            return
        except ConnectionClosed as exc:
            self.stats["rejected_closed"] += 1
            log.warning("gateway: %s closed during the handshake: %s", peer, exc)
            return
        finally:
            self._unauthenticated -= 1
        previous = self.edges.get(edge_id)
        if previous is not None:
            log.info("gateway: edge %s reconnected; closing its old connection", edge_id)
            await self._close(previous.ws, CLOSE_GOING_AWAY, "superseded by a newer connection")
        edge = _Edge(edge_id, ws, grant, asyncio.Queue(self.limits.queue_frames),
                     asyncio.Queue(self.limits.queue_frames))
        self.edges[edge_id] = edge
        self.stats["connections"] += 1
        log.info("gateway: edge %s connected from %s", edge_id, peer)
        if self.weights is not None:
            self.weights.attach(edge_id, ws, edge.meter)
        try:
            await self._serve(edge)
        finally:
            if self.edges.get(edge_id) is edge:
                del self.edges[edge_id]
                if self.weights is not None:
                    self.weights.detach(edge_id)

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(ws.close(code, clip_reason(reason)), 2.0)
        except (TimeoutError, ConnectionClosed, OSError):
            pass

    async def _handshake(self, ws: ServerConnection) -> tuple[str, Grant]:
        """Hello, challenge, proof, welcome; frames stay under `preauth_message_bytes` (so
        decoding one is bounded) until the edge has proved its key."""
        raw = await asyncio.wait_for(ws.recv(), self.timings.handshake)
        hello = self._decode_expected(raw, Hello)
        if hello.protocol != PROTOCOL_VERSION:
            raise ProtocolError(f"edge speaks protocol {hello.protocol}; this gateway speaks "
                                f"{PROTOCOL_VERSION}: upgrade the older side")
        key, grant = await self._key_and_grant(hello)
        server_nonce = auth.new_nonce()
        await send(ws, Challenge(server_nonce), self.timings.send)
        answer = self._decode_expected(await ws.recv(), Authenticate)
        hello_bytes = raw if isinstance(raw, bytes) else raw.encode()
        auth.verify(auth.edge_proof(key, server_nonce, hello.client_nonce, hello_bytes),
                    answer.proof, f"edge {hello.edge_id!r}")
        if hello.spec_digest == WEIGHTS_ONLY and not hello.streams:  # a site relay
            if self.weights is None:
                raise ProtocolError("this gateway serves no weights for a relay to pass on: "
                                    "give it a weight sender")
        elif hello.spec_digest != self.spec_digest:
            raise ProtocolError(f"spec digest mismatch: edge {hello.spec_digest}, gateway "
                                f"{self.spec_digest}; run the same task config on both sides")
        for stream in hello.streams:
            holder = next((e.edge_id for e in self.edges.values() if e.edge_id != hello.edge_id
                           and stream in e.grant.streams), None)
            if holder is not None:
                raise AuthError(f"stream {stream!r} is being written by edge {holder!r}; "
                                "give each edge its own streams")
        last = await self._in_sink(lambda: {s: self.sink.last_seq(s) for s in hello.streams})
        proof = auth.gateway_proof(key, server_nonce, hello.client_nonce, hello_bytes)
        ws.protocol.max_message_size = self.limits.max_message_bytes  # authenticated: full size
        await send(ws, Welcome(PROTOCOL_VERSION, proof, last), self.timings.send)
        return hello.edge_id, grant

    async def _key_and_grant(self, hello: Hello) -> tuple[bytes, Grant]:
        """The key `hello`'s edge must prove and what it may write; AuthError if it may not
        write a stream it declares (or, with a keys file, is unknown or revoked)."""
        if self.edge_keys is None:
            streams = frozenset(hello.streams)
            return self._token, Grant(streams, streams)
        key, grant = await asyncio.to_thread(self.edge_keys.lookup, hello.edge_id)
        foreign = set(hello.streams) - grant.streams
        if foreign:
            raise AuthError(f"edge {hello.edge_id!r} may not write streams {sorted(foreign)}")
        return key, grant

    @staticmethod
    def _decode_expected(raw: bytes | str, cls: type[Any]) -> Any:
        msg = decode_message(raw)
        if not isinstance(msg, cls):
            raise AuthError(f"expected {cls.kind} before anything else, got {msg.kind}; "
                            "unauthenticated peers may send nothing else")
        return msg

    async def _serve(self, edge: _Edge) -> None:
        edge.tasks = [asyncio.create_task(t) for t in (
            self._read(edge), self._commit_loop(edge), self._infer_loop(edge),
            heartbeat(edge.ws, edge.liveness, self.timings, f"edge {edge.edge_id}", edge.meter))]
        done, pending = await asyncio.wait(edge.tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if isinstance(exc, ConnectionClosed) or exc is None:
                log.info("gateway: edge %s disconnected", edge.edge_id)
            elif isinstance(exc, (CommsError, TimeoutError)):
                reason = str(exc) or f"no frame for {self.timings.dead_after}s: link presumed dead"
                log.warning("gateway: dropping edge %s: %s", edge.edge_id, reason)
                code = (CLOSE_POLICY if isinstance(exc, AuthError) else
                        CLOSE_PROTOCOL if isinstance(exc, CodecError) else CLOSE_INTERNAL)
                self.stats[f"dropped_{code}"] += 1
                await self._close(edge.ws, code, reason)
            else:
                log.error("gateway: edge %s failed", edge.edge_id, exc_info=exc)
                await self._close(edge.ws, CLOSE_INTERNAL, f"gateway error: {exc}")
        await self._close(edge.ws, CLOSE_GOING_AWAY, "connection ended")

    async def _read(self, edge: _Edge) -> None:
        while True:
            msg = await edge.liveness.receive(edge.ws)
            handler = self._handlers.get(type(msg))
            if handler is None:
                raise ProtocolError(f"an edge may not send {msg.kind} messages")
            await handler(edge, msg)

    # -- handlers ----------------------------------------------------------------------------------
    async def _on_batch(self, edge: _Edge, batch: TransitionBatch) -> None:
        refusal = edge.grant.refusal(batch.stream_id, {t.robot_id for t in batch.transitions})
        if refusal is not None:
            raise AuthError(f"batch refused: {refusal}")
        await edge.batches.put(batch)  # blocks the reader when full: backpressure

    async def _on_request(self, edge: _Edge, request: ActionRequest) -> None:
        if self.inference is None:
            await edge.ws.send(Error("no_policy", "this gateway serves no policy").encode())
            return
        if self.inline_inference and edge.requests.empty():
            answer = self._answer_inline(request)  # a CPU-light policy: no queue hop
            if answer is not None:
                await edge.ws.send(answer)
            return
        if edge.requests.full():
            self.stats["requests_dropped"] += 1  # stale work is worse than none: drop the oldest
            edge.requests.get_nowait()
        edge.requests.put_nowait((time.monotonic() + request.budget_s, request))

    async def _on_heartbeat(self, edge: _Edge, beat: Heartbeat) -> None:
        self.stats["heartbeats"] += 1
        edge.meter.heard(beat)

    async def _on_weights(self, edge: _Edge, msg: WeightRequest | WeightApplied) -> None:
        if self.weights is not None:
            await self.weights.handle(edge.edge_id, msg)
        elif isinstance(msg, WeightRequest):  # the edge keeps the weights it has
            await edge.ws.send(Error("no_weights", "this gateway publishes no weights; the "
                                     "edge acts with the weights it has").encode())

    async def _on_error(self, edge: _Edge, error: Error) -> None:
        log.warning("gateway: edge %s reports %s: %s", edge.edge_id, error.code, error.reason)

    # -- workers -----------------------------------------------------------------------------------
    async def _in_sink(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._sink_thread, fn),
                                      self.timings.commit)

    async def _commit_loop(self, edge: _Edge) -> None:
        """Hand everything this edge queued to the group commit; ack each stream once durable."""
        while True:
            waiting = [await edge.batches.get()]
            while not edge.batches.empty():
                waiting.append(edge.batches.get_nowait())
            outcome = await self.committer.submit(waiting)
            failures = [r for r in outcome.values() if isinstance(r, Exception)]
            for stream, last in outcome.items():
                if not isinstance(last, Exception):
                    await edge.ws.send(Ack(stream, last).encode())
            if failures:
                raise failures[0]

    async def _infer_loop(self, edge: _Edge) -> None:
        while True:
            await self._answer(edge, *await edge.requests.get())

    async def _answer(self, edge: _Edge, deadline: float, request: ActionRequest) -> None:
        """Answer a queued request from the policy thread; drop it once `deadline` passed."""
        budget = deadline - time.monotonic()
        if budget <= 0 or self.inference is None:
            self.stats["requests_expired"] += 1
            return
        try:
            action, version = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(
                self._policy_thread, self.inference.act, request.robot_id, request.obs), budget)
        except TimeoutError:
            self.stats["requests_expired"] += 1
            return
        except Exception as exc:  # a bad observation must not kill the connection
            await edge.ws.send(self._failed(request, exc))
            return
        await edge.ws.send(self._response(request, action, version))

    def _answer_inline(self, request: ActionRequest) -> bytes | None:
        """The frame answering `request` from a CPU-light policy called right here (None: too
        late to send); the policy moves to the policy thread for good once a call overruns
        `inline_act`."""
        assert self.inference is not None
        start = time.monotonic()
        try:
            action, version = self.inference.act(request.robot_id, request.obs)
        except Exception as exc:
            return self._failed(request, exc)
        finally:
            took = time.monotonic() - start
            if took > self.timings.inline_act:
                self.inline_inference = False
                self.stats["inline_demoted"] += 1
                log.warning("gateway: the CPU-light policy took %.1f ms on the event loop; it "
                            "runs on the policy thread from now on", took * 1000)
        if took > request.budget_s:
            self.stats["requests_expired"] += 1
            return None
        return self._response(request, action, version)

    def _response(self, request: ActionRequest, action: np.ndarray, version: int) -> bytes:
        self.stats["actions_served"] += 1
        return ActionResponse(request.request_id, np.asarray(action), int(version)).encode()

    def _failed(self, request: ActionRequest, exc: Exception) -> bytes:
        """The error frame for a policy that failed on `request` (a bad observation, say)."""
        self.stats["inference_errors"] += 1
        log.warning("gateway: inference for %s failed: %s", request.robot_id, exc)
        return Error("inference", f"request {request.request_id}: {exc}").encode()


class GatewayThread:
    """A gateway on its own loop thread, for synchronous callers (commands, tests, benchmarks)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._thread: LoopThread | None = LoopThread("gateway")
        self._thread.run(gateway.start(), timeout=gateway.timings.handshake)

    @property
    def port(self) -> int:
        return self.gateway.port

    def publish_weights(self, weights: Mapping[str, np.ndarray], version: int,
                        copy: bool = True) -> None:
        """Gateway.publish_weights, from any thread."""
        self.gateway.publish_weights(weights, version, copy)

    def weight_stats(self) -> dict[str, dict[str, Any]]:
        """Gateway.weight_stats, read on the gateway's loop."""
        if self._thread is None:
            return {}

        async def read() -> dict[str, dict[str, Any]]:
            return self.gateway.weight_stats()

        return self._thread.run(read(), self.gateway.timings.send)

    def control(self, edge_id: str, command: str, reason: str = "") -> None:
        if self._thread is None:
            raise CommsError("the gateway is stopped")
        self._thread.run(self.gateway.control(edge_id, command, reason), self.gateway.timings.send)

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._thread is None:
            return
        self._thread.run(self.gateway.stop(), timeout=2 * self.gateway.timings.handshake)
        self._thread.stop()
        self._thread = None
