"""Weight sync end to end: sender -> wire bytes -> receiver, losses, corruption, wrong bases,
atomic swaps under a concurrent reader, and a real websocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from comms.messages import (
    Message,
    ProtocolError,
    WeightApplied,
    WeightChunk,
    WeightOffer,
    WeightRequest,
    decode_message,
    encode_envelope,
)
from comms.weight_sync import WeightSet, WeightSyncError, encode_transfer, rebuild
from comms.weight_sync_receiver import WeightReceiver
from comms.weight_sync_sender import WeightSender

CHUNK = 4096


def model(seed: int = 0, layers: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = {f"layer{i}.weight": rng.standard_normal((40, 50)).astype(np.float32)
         for i in range(layers)}
    w["steps"] = np.array([7, 8], np.int64)
    return w


class Wire:
    """Both directions between one sender and one receiver, every message through its bytes;
    `tamper` may drop (None) or change a chunk on its way."""

    def __init__(self, sender: WeightSender,
                 tamper: Callable[[WeightChunk], WeightChunk | None] | None = None) -> None:
        self.sender, self.tamper = sender, tamper
        self.upstream: list[Message] = []  # receiver -> sender, queued by the receiver's threads
        self.lock = threading.Lock()
        self.receiver = WeightReceiver(self._queue_up)
        self.offers: list[WeightOffer] = []
        self.requests: list[WeightRequest] = []

    def _queue_up(self, msg: Message) -> None:
        with self.lock:
            self.upstream.append(decode_message(msg.encode()))

    def down(self, messages: Iterable[Message]) -> None:
        for msg in messages:
            msg = decode_message(msg.encode())
            if isinstance(msg, WeightOffer):
                self.offers.append(msg)
            if isinstance(msg, WeightChunk) and self.tamper is not None:
                msg = self.tamper(msg)
                if msg is None:
                    continue
            self.receiver.handle(msg)

    def settle(self, timeout: float = 20.0) -> WeightSet | None:
        """Carry messages both ways until the receiver swaps in a version; that version."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                up, self.upstream = self.upstream, []
            for msg in up:
                if isinstance(msg, WeightRequest):
                    self.requests.append(msg)
                self.down(self.sender.handle("robot", msg))
            applied = self.receiver.poll()
            if applied is not None:
                with self.lock:
                    up, self.upstream = self.upstream, []
                for msg in up:  # the WeightApplied note
                    list(self.sender.handle("robot", msg))
                return applied
            time.sleep(0.005)
        raise AssertionError(f"no version applied in {timeout}s: {self.receiver.stats}")

    def sync(self) -> WeightSet | None:
        self.down(self.sender.push("robot"))
        return self.settle()


def assert_same(ws: WeightSet, weights: dict[str, np.ndarray]) -> None:
    assert ws.tensors.keys() == weights.keys()
    for name, arr in weights.items():
        got = ws.tensors[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape
        assert got.tobytes() == arr.tobytes(), name  # bit-exact, NaN payloads and -0.0 included


def test_full_then_patch_round_trip_is_bit_exact_and_patch_carries_only_the_changes() -> None:
    sender = WeightSender("patch", chunk_bytes=CHUNK)
    wire = Wire(sender)
    v1 = model()
    v1["layer0.weight"][0, :3] = [np.nan, -0.0, np.inf]
    sender.publish(v1, 1)
    got = wire.sync()
    assert got is not None and got.version == 1 and got.exact
    assert_same(got, v1)
    assert wire.offers[-1].mode == "full"  # nothing held yet: whole

    v2 = {k: a.copy() for k, a in v1.items()}
    v2["layer3.weight"] += np.float32(1e-3)  # one layer of ten, every element
    v2["layer5.weight"][1, 2] = -0.0  # one element (0.0 -> -0.0 differs in bits)
    v2["layer0.weight"][0, 0] = np.float32(np.nan)  # the same NaN: no change
    sender.publish(v2, 2)
    got = wire.sync()
    assert got is not None and got.version == 2
    assert_same(got, v2)
    offer = wire.offers[-1]
    assert (offer.mode, offer.base_version) == ("patch", 1)
    encodings = {t.name: (t.encoding, t.length) for t in offer.tensors}
    assert encodings["layer3.weight"] == ("raw", 40 * 50 * 4)
    assert encodings["layer5.weight"] == ("sparse", 4 + 4)  # one uint32 index + one float32
    assert {e for n, (e, _) in encodings.items() if n not in ("layer3.weight", "layer5.weight")
            } == {"same"}
    full = encode_transfer(sender.latest, "full", 0).offer.total_bytes
    assert offer.total_bytes <= 0.11 * full
    assert got.tensors["layer1.weight"] is wire.receiver.current.tensors["layer1.weight"]


def test_a_lost_chunk_is_re_requested_and_the_version_completes() -> None:
    dropped: list[int] = []

    def drop_once(chunk: WeightChunk) -> WeightChunk | None:
        if chunk.seq in (2, 5) and chunk.seq not in dropped:
            dropped.append(chunk.seq)
            return None
        return chunk

    sender = WeightSender("full", chunk_bytes=CHUNK)
    wire = Wire(sender, drop_once)
    weights = model()
    sender.publish(weights, 1)
    got = wire.sync()
    assert got is not None
    assert_same(got, weights)
    assert dropped == [2, 5]
    assert [r.missing for r in wire.requests] == [[2, 5]]
    assert wire.requests[0].transfer_id == wire.offers[0].transfer_id
    assert wire.receiver.stats["re_requested"] == 2


def test_a_lost_tail_is_re_requested_after_the_transfer_stalls() -> None:
    now = [0.0]
    sender = WeightSender("full", chunk_bytes=CHUNK)
    sent: list[Message] = []
    receiver = WeightReceiver(sent.append, stall_s=2.0, clock=lambda: now[0])
    sender.publish(model(), 1)
    messages = list(sender.push("robot"))
    for msg in messages[:-1]:  # the last chunk never arrives
        receiver.handle(msg)
    receiver.tick()
    assert sent == []  # not silent long enough
    now[0] = 2.5
    receiver.tick()
    assert len(sent) == 1 and isinstance(sent[0], WeightRequest)
    assert sent[0].missing == [len(messages) - 2]
    for msg in sender.handle("robot", sent[0]):
        receiver.handle(msg)
    deadline = time.monotonic() + 20
    while (got := receiver.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert got is not None and got.digest == sender.latest.digest
    receiver.close()


def test_a_corrupt_chunk_is_refused_and_re_requested() -> None:
    corrupted: list[int] = []

    def flip(chunk: WeightChunk) -> WeightChunk:
        if chunk.seq == 3 and not corrupted:
            corrupted.append(chunk.seq)
            payload = chunk.payload.copy()
            payload[100] ^= 0xFF
            return WeightChunk(chunk.transfer_id, chunk.seq, chunk.checksum, payload)
        return chunk

    sender = WeightSender("full", chunk_bytes=CHUNK)
    wire = Wire(sender, flip)
    weights = model()
    sender.publish(weights, 1)
    got = wire.sync()
    assert got is not None
    assert_same(got, weights)
    assert corrupted == [3] and wire.receiver.stats["corrupt"] == 1
    assert [r.missing for r in wire.requests] == [[3]]


def test_a_patch_against_a_version_the_receiver_does_not_hold_is_refused_then_full_comes() -> None:
    sender = WeightSender("patch", chunk_bytes=CHUNK)
    wire = Wire(sender)
    sender.publish(model(0), 1)
    sender.publish(model(1), 2)
    sender.peers["robot"] = (1, sender._history[1].digest)  # it claimed v1, then lost it
    got = wire.sync()
    assert got is not None and got.version == 2
    assert_same(got, model(1))
    assert [(o.mode, o.base_version) for o in wire.offers] == [("patch", 1), ("full", -1)]
    assert wire.receiver.stats["refused"] == 1
    assert wire.requests[0].have_version == -1 and "patches version 1" in wire.requests[0].reason


def test_a_receiver_that_missed_versions_gets_a_patch_against_what_it_holds_or_full() -> None:
    for history, expected in ((3, ("patch", 1)), (1, ("full", -1))):
        sender = WeightSender("patch", chunk_bytes=CHUNK, history=history)
        wire = Wire(sender)
        weights = model()
        sender.publish(weights, 1)
        wire.sync()
        for version in (2, 3):
            weights = {k: a.copy() for k, a in weights.items()}
            weights[f"layer{version}.weight"][0, 0] += 1
            sender.publish(weights, version)
        got = wire.sync()
        assert got is not None and got.version == 3
        assert_same(got, weights)
        assert (wire.offers[-1].mode, wire.offers[-1].base_version) == expected


def test_fp16_is_lossy_and_marked_so_and_a_lossy_copy_is_never_patched() -> None:
    sender = WeightSender("fp16", chunk_bytes=CHUNK)
    wire = Wire(sender)
    weights = model()
    sender.publish(weights, 1)
    got = wire.sync()
    assert got is not None and not got.exact and got.digest != sender.latest.digest
    assert got.tensors["steps"].tobytes() == weights["steps"].tobytes()  # integers travel raw
    w = weights["layer0.weight"]
    assert got.tensors["layer0.weight"].dtype == np.float32
    np.testing.assert_allclose(got.tensors["layer0.weight"], w, rtol=1e-3, atol=1e-4)
    assert wire.offers[-1].total_bytes < 0.55 * sum(a.nbytes for a in weights.values())
    sender.mode = "patch"
    sender.publish(weights, 2)
    assert (wire.sync() or got).exact
    assert wire.offers[-1].mode == "full"  # its lossy v1 is no base for a bit-exact patch


def test_adapter_mode_sends_only_the_adapter_tensors_and_refuses_no_prefixes() -> None:
    sender = WeightSender("adapter", chunk_bytes=CHUNK, adapter_prefixes=("layer9.",))
    wire = Wire(sender)
    weights = model()
    sender.publish(weights, 1)
    wire.sync()
    weights = {k: a.copy() for k, a in weights.items()}
    weights["layer9.weight"] *= 2
    sender.publish(weights, 2)
    got = wire.sync()
    assert got is not None
    assert_same(got, weights)
    sent = {t.name for t in wire.offers[-1].tensors if t.encoding != "same"}
    assert sent == {"layer9.weight"}
    with pytest.raises(WeightSyncError, match="adapter mode needs the name prefixes"):
        encode_transfer(sender.latest, "adapter", 1, sender.latest)
    with pytest.raises(WeightSyncError, match="mode 'zstd' is unknown"):
        encode_transfer(sender.latest, "zstd", 1)


def test_a_stream_that_does_not_match_its_digest_is_refused_naming_the_tensor() -> None:
    ws = WeightSet.of(model(), 1)
    transfer = encode_transfer(ws, "full", 1, chunk_bytes=CHUNK)
    stream = np.zeros(transfer.offer.total_bytes, np.uint8)
    for chunk in transfer.chunks():
        stream[chunk.seq * CHUNK:chunk.seq * CHUNK + len(chunk.payload)] = chunk.payload.data
    assert rebuild(transfer.offer, stream, None).digest == ws.digest
    layout = next(t for t in transfer.offer.tensors if t.name == "layer4.weight")
    stream[layout.offset + 8] ^= 1
    with pytest.raises(WeightSyncError, match="'layer4.weight' of version 1 does not match"):
        rebuild(transfer.offer, stream, None)


def test_a_reader_never_observes_a_mixed_version_under_concurrent_swaps() -> None:
    """A control loop swaps versions in between steps while the apply thread rebuilds the next
    ones and a reader thread checks every version it sees against its digests."""
    sender = WeightSender("patch", chunk_bytes=CHUNK)
    wire = Wire(sender)
    seen: list[int] = []
    bad: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            ws = wire.receiver.current
            if ws is not None:
                seen.append(ws.version)
                if not ws.intact() or not np.all(ws.tensors["layer0.weight"] == ws.version):
                    bad.append(ws.version)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(2, 12):
            weights = model(version)
            weights["layer0.weight"][:] = version  # every element names its version
            sender.publish(weights, version)
            assert (wire.sync() or sender.latest).version == version
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert len(set(seen)) >= 5 and seen == sorted(seen)


def test_sync_over_a_real_websocket_on_loopback() -> None:
    """A tiny server streams the sender's messages; the client feeds its receiver and answers."""
    sender = WeightSender("patch", chunk_bytes=CHUNK)
    weights = model()
    sender.publish(weights, 1)

    async def serve_peer(ws: ServerConnection) -> None:
        for msg in sender.push("robot"):
            await ws.send(msg.encode())
        async for frame in ws:
            for msg in sender.handle("robot", decode_message(frame)):
                await ws.send(msg.encode())

    async def main() -> WeightSet:
        async with serve(serve_peer, "127.0.0.1", 0, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            loop = asyncio.get_running_loop()
            replies: asyncio.Queue[Message] = asyncio.Queue()
            receiver = WeightReceiver(lambda m: loop.call_soon_threadsafe(replies.put_nowait, m))
            async with connect(f"ws://127.0.0.1:{port}", compression=None, proxy=None) as ws:
                while (got := receiver.poll()) is None:
                    try:
                        receiver.handle(decode_message(await asyncio.wait_for(ws.recv(), 0.01)))
                    except TimeoutError:
                        pass
                    while not replies.empty():
                        await ws.send(replies.get_nowait().encode())
                note = await asyncio.wait_for(replies.get(), 5)
                assert isinstance(note, WeightApplied) and note.version == 1
                await ws.send(note.encode())
            receiver.close()
            return got

    got = asyncio.run(asyncio.wait_for(main(), 60))
    assert_same(got, weights)


def test_offers_with_impossible_layouts_or_sizes_are_refused_with_one_clear_line() -> None:
    offer = encode_transfer(WeightSet.of(model(), 1), "full", 1, chunk_bytes=CHUNK).offer
    body = offer.to_body()
    name, dtype, shape, encoding, off, length, digest, count = body["tensors"][0]
    for bad, match in (
        ([name, "|O", shape, encoding, off, length, digest, count], "dtype '|O' is not allowed"),
        ([name, dtype, shape, encoding, off, length - 4, digest, count], "do not fit its raw"),
        ([name, "<i8", [2], "fp16", off, 4, digest, count], "only float32/64"),
        ([name, dtype, [-1], encoding, off, 0, digest, count], "non-negative integers"),
    ):
        tensors = [bad, *body["tensors"][1:]]
        frame = encode_envelope("weight_offer", {**body, "tensors": tensors})
        with pytest.raises(ProtocolError, match=match):
            decode_message(frame)
    receiver = WeightReceiver(lambda m: None, max_version_bytes=1000)
    with pytest.raises(WeightSyncError, match="exceeds this receiver's limit of 1000"):
        receiver.handle(offer)
    receiver.close()


def test_a_patch_against_the_current_version_applies_while_a_newer_one_waits_for_poll() -> None:
    """The sender only learns of a version once it is swapped in, so it may patch against the
    current one while the receiver already holds a newer one waiting for `poll`."""
    sender = WeightSender("patch", chunk_bytes=CHUNK, history=3)
    wire = Wire(sender)
    weights = model()
    sender.publish(weights, 1)
    wire.sync()
    for version in (2, 3):
        weights = {k: a.copy() for k, a in weights.items()}
        weights[f"layer{version}.weight"][0, 0] += 1
        sender.publish(weights, version)
        wire.down(sender.push("robot"))  # no poll in between: the sender still thinks v1
        deadline = time.monotonic() + 20
        while wire.receiver.held().version != version:
            assert time.monotonic() < deadline, wire.receiver.stats
            time.sleep(0.005)
    assert [(o.version, o.base_version) for o in wire.offers[1:]] == [(2, 1), (3, 1)]
    got = wire.receiver.poll()
    assert got is not None and got.version == 3 and wire.receiver.stats["refused"] == 0
    assert_same(got, weights)


def test_the_sender_measures_each_peers_sync_latency_and_lag() -> None:
    now = [10.0]
    sender = WeightSender("patch", chunk_bytes=CHUNK, clock=lambda: now[0])
    assert sender.lag("robot") is None
    ws = sender.publish(model(), 1)
    list(sender.handle("robot", WeightRequest(-1, -1, b"", [], "hello")))
    assert sender.lag("robot") == 1
    now[0] = 10.25
    list(sender.handle("robot", WeightApplied(1, ws.digest)))
    assert sender.sync_latency_s["robot"] == pytest.approx(0.25) and sender.lag("robot") == 0
    sender.publish(model(1), 2)
    sender.publish(model(2), 3)
    assert sender.lag("robot") == 2


@pytest.mark.parametrize("mode", ["full", "fp16", "patch"])
def test_scalars_empty_bool_and_integer_tensors_round_trip_in_every_mode(mode: str) -> None:
    v1 = {"log_alpha": np.array(0.5, np.float32), "empty": np.zeros((0, 3), np.float32),
          "counts": np.arange(5, dtype=np.int8), "mask": np.array([True, False])}
    v2 = {**v1, "log_alpha": np.array(0.25, np.float32), "counts": np.array([0, 1, 2, 3, 9],
                                                                          np.int8)}
    sender = WeightSender(mode, chunk_bytes=CHUNK)
    wire = Wire(sender)
    for version, weights in ((1, v1), (2, v2)):
        sender.publish(weights, version)
        got = wire.sync()
        assert got is not None and got.version == version and got.intact()
        assert_same(got, weights)  # 0.5 and 0.25 are exact in float16 too


def test_receive_buffers_are_reused_only_once_no_version_refers_to_them() -> None:
    from comms.weight_sync_receiver import StreamBuffers

    pool = StreamBuffers(keep=3)
    first = pool.take(1000)
    held = np.frombuffer(memoryview(first)[8:16], np.float32)  # a tensor of a version in use
    del first
    second = pool.take(1000)
    assert pool.reused == 0  # the first buffer is still referred to
    del second, held
    again = pool.take(800)  # a smaller transfer fits a free buffer
    assert pool.reused == 1 and again.nbytes == 800
    with pytest.raises(ValueError, match="at least one buffer"):
        StreamBuffers(keep=0)
