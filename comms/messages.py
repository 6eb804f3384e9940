"""The protocol: frozen message dataclasses, one registry from wire name to class, one envelope.

Every frame is a msgpack map `{"v": PROTOCOL_VERSION, "type": name, "body": {...}}`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np

from comms.codec import ALLOWED_DTYPES, CodecError, decode, encode
from comms.validation import (
    INT64_MAX,
    MAX_BATCH_ITEMS,
    MAX_STREAMS,
    check_episode_ends,
    check_id,
    check_int,
    check_list,
    transition_from_body,
)
from robot_rl.core import ArraySpec, DictSpec, Transition

PROTOCOL_VERSION = 3  # 2: large arrays in an aligned region (comms.codec); 3: weight sync, RTT
CONTROL_COMMANDS = frozenset({"pause", "resume", "reset", "estop", "release"})
# the spec digest an edge declares that writes no streams and only receives weights (a relay)
WEIGHTS_ONLY = "weights-only"

M = TypeVar("M", bound="Message")


class ProtocolError(CodecError):
    """A frame decoded but breaks the protocol: unknown type, wrong version, bad fields."""


def spec_digest(obs_spec: DictSpec, action_spec: ArraySpec) -> str:
    """A short hash of the observation and action layout both peers must share."""
    blob = json.dumps({"obs": obs_spec.to_json(), "action": action_spec.to_json()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class MessageType(NamedTuple):
    """What decoding needs to know of one message class, looked up once per frame."""

    cls: type[Message]
    fields: frozenset[str]
    custom_body: bool  # the class overrides from_body


MESSAGES: dict[str, MessageType] = {}  # wire name -> its class, filled by @message


def message(name: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: a frozen dataclass registered under its wire `name`."""

    def wrap(cls: type[M]) -> type[M]:
        if name in MESSAGES:
            raise ValueError(f"message type {name!r} is registered twice")
        cls.kind = name
        frozen = dataclass(frozen=True)(cls)
        MESSAGES[name] = MessageType(frozen, frozenset(f.name for f in dataclasses.fields(frozen)),
                                     "from_body" in frozen.__dict__)
        return frozen

    return wrap


_ENVELOPE_KEYS = frozenset({"v", "type", "body"})


class Message:
    """Base of every message; subclasses with nested values override to_body/from_body."""

    kind: ClassVar[str]

    def to_body(self) -> dict[str, Any]:
        return dict(self.__dict__)  # exactly the fields, in order (kind is a class variable)

    @classmethod
    def from_body(cls: type[M], body: Mapping[str, Any]) -> M:
        return cls(**body)

    def encode(self) -> bytes:
        return encode_envelope(self.kind, self.to_body())


def encode_envelope(kind: str, body: Mapping[str, Any]) -> bytes:
    """The wire bytes of one message of type `kind` (also used to send pre-encoded bodies)."""
    return encode({"v": PROTOCOL_VERSION, "type": kind, "body": body})


def decode_message(frame: bytes | str) -> Message:
    """Decode one frame into its message; anything wrong raises ProtocolError or CodecError."""
    if isinstance(frame, str):
        raise ProtocolError("text frames are not part of the protocol; send binary msgpack frames")
    envelope = decode(frame)
    if not isinstance(envelope, dict) or envelope.keys() != _ENVELOPE_KEYS:
        raise ProtocolError("a frame must be a map with exactly the keys v, type and body")
    if envelope["v"] != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {envelope['v']!r} is not supported; this peer speaks "
            f"{PROTOCOL_VERSION}: upgrade the older side"
        )
    kind, body = envelope["type"], envelope["body"]
    entry = MESSAGES.get(kind) if isinstance(kind, str) else None
    if entry is None:
        raise ProtocolError(f"unknown message type {kind!r}; known: {', '.join(sorted(MESSAGES))}")
    cls, names, custom = entry
    if not isinstance(body, dict):
        raise ProtocolError(f"the body of a {kind} message must be a map")
    if body.keys() != names:
        raise ProtocolError(
            f"{kind} message: missing fields {sorted(names - body.keys())}, "
            f"unexpected fields {sorted(body.keys() - names)}"
        )
    try:
        return cls.from_body(body) if custom else cls(**body)
    except (TypeError, ValueError, KeyError) as exc:
        raise ProtocolError(f"{kind} message has a bad field: {exc}") from None


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(what)


# -- handshake -------------------------------------------------------------------------------------
@message("hello")
class Hello(Message):
    """Edge -> gateway, first frame: who it is, what it speaks, and its half of the challenge."""

    protocol: int
    edge_id: str
    spec_digest: str
    client_nonce: bytes
    streams: list[str]

    def __post_init__(self) -> None:
        check_int(self.protocol, "protocol", 0, 1 << 16)
        check_id(self.edge_id, "edge_id")
        check_id(self.spec_digest, "spec_digest")
        _require(isinstance(self.client_nonce, bytes) and 16 <= len(self.client_nonce) <= 64,
                 "client_nonce must be 16 to 64 bytes")
        for stream in check_list(self.streams, "streams", MAX_STREAMS):
            check_id(stream, "a stream id")


@message("challenge")
class Challenge(Message):
    """Gateway -> edge: the gateway's nonce that the edge must sign with the shared token."""

    server_nonce: bytes


@message("authenticate")
class Authenticate(Message):
    """Edge -> gateway: HMAC over both nonces and the hello, proving the edge holds the token."""

    proof: bytes


@message("welcome")
class Welcome(Message):
    """Gateway -> edge: proof that the gateway holds the token too, and each stream's last seq."""

    protocol: int
    proof: bytes
    last_seqs: dict[str, int]


# -- data ------------------------------------------------------------------------------------------
def transition_to_body(t: Transition) -> dict[str, Any]:
    body = {f.name: getattr(t, f.name) for f in dataclasses.fields(t)}
    body["source"] = int(t.source)
    return body




@message("transitions")
class TransitionBatch(Message):
    """Edge -> gateway: transitions numbered first_seq, first_seq+1, ...; episode_ends holds
    (seq, success) for those that ended an episode."""

    stream_id: str
    first_seq: int
    transitions: tuple[Transition, ...]
    episode_ends: tuple[tuple[int, bool], ...] = ()

    def __post_init__(self) -> None:
        check_id(self.stream_id, "stream_id")
        # the stream's new high-water mark must stay an int64, as stored and as sent back
        check_int(self.first_seq, "first_seq", 0, INT64_MAX - max(len(self.transitions), 1) + 1)
        last = self.first_seq + len(self.transitions) - 1
        for seq, _ in self.episode_ends:
            _require(self.first_seq - 1 <= seq <= last, f"episode end {seq} outside the batch")

    def to_body(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id, "first_seq": self.first_seq,
            "transitions": [encode(transition_to_body(t)) for t in self.transitions],
            "episode_ends": [list(e) for e in self.episode_ends],
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TransitionBatch:
        """The batch, every field checked (comms.validation) before anything reaches a sink."""
        items = check_list(body["transitions"], "transitions", MAX_BATCH_ITEMS)
        first = check_int(body["first_seq"], "first_seq")
        transitions = []
        for i, item in enumerate(items):
            _require(isinstance(item, bytes), "each transition must be an encoded map (bytes)")
            transitions.append(transition_from_body(decode(item), f"transition {first + i}"))
        return cls(stream_id=body["stream_id"], first_seq=first, transitions=tuple(transitions),
                   episode_ends=check_episode_ends(body["episode_ends"], first, len(items)))


@message("ack")
class Ack(Message):
    """Gateway -> edge: every transition of `stream_id` up to `last_seq` is durably committed."""

    stream_id: str
    last_seq: int


# -- remote inference ------------------------------------------------------------------------------
@message("action_request")
class ActionRequest(Message):
    """Edge -> gateway: an observation to act on, answered within `budget_s` or not at all."""

    request_id: int
    robot_id: str
    obs: dict[str, np.ndarray]
    budget_s: float


@message("action_response")
class ActionResponse(Message):
    """Gateway -> edge: the action for one request and the policy version that chose it."""

    request_id: int
    action: np.ndarray
    policy_version: int


# -- liveness and control --------------------------------------------------------------------------
@message("heartbeat")
class Heartbeat(Message):
    """Either way, every heartbeat period: proof of life when nothing else is flowing, and the
    round trip: `echo` is the `sent_at` of the peer's last heartbeat (-1: none yet), received
    `echo_held` seconds before this one left (each side's own monotonic clock)."""

    sent_at: float
    echo: float = -1.0
    echo_held: float = 0.0


@message("control")
class Control(Message):
    """Gateway -> edge: pause, resume, reset, estop or release the robot, with a reason."""

    command: str
    reason: str = ""

    def __post_init__(self) -> None:
        _require(self.command in CONTROL_COMMANDS, f"control command {self.command!r}")


@message("error")
class Error(Message):
    """Either way: why the sender is about to close the connection or refused a frame."""

    code: str
    reason: str


# -- weight sync (comms.weight_sync) ---------------------------------------------------------------
WEIGHT_ENCODINGS = frozenset({"raw", "fp16", "sparse", "same"})


@dataclass(frozen=True)
class TensorLayout:
    """Where one tensor of a weight transfer lies in its chunk stream and how to rebuild it.

    encoding: raw (its bytes), fp16 (float16 bytes, widened to `dtype`), sparse (`count` indices
    then `count` values, written over the base's tensor), same (the base's tensor, no bytes).
    `digest` is the digest of the rebuilt tensor."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    encoding: str
    offset: int
    length: int
    digest: bytes
    count: int = 0

    def __post_init__(self) -> None:
        _require(self.encoding in WEIGHT_ENCODINGS, f"tensor encoding {self.encoding!r}")
        _require(self.dtype in ALLOWED_DTYPES, f"tensor dtype {self.dtype!r} is not allowed")
        _require(all(isinstance(n, int) and n >= 0 for n in self.shape),
                 "a tensor shape is a list of non-negative integers")
        _require(self.offset >= 0 and self.count >= 0, "tensor offset and count must be >= 0")
        size = math.prod(self.shape)
        index = 4 if size < 2**32 else 8
        expected = {"raw": size * np.dtype(self.dtype).itemsize, "fp16": size * 2, "same": 0,
                    "sparse": self.count * (index + np.dtype(self.dtype).itemsize)}
        _require(self.length == expected[self.encoding],
                 f"tensor {self.name!r}: {self.length} bytes do not fit its {self.encoding} "
                 f"encoding of shape {self.shape} {self.dtype}")
        _require(self.encoding != "fp16" or self.dtype in ("<f4", "<f8"),
                 "only float32/64 tensors travel as fp16")


@message("weight_offer")
class WeightOffer(Message):
    """Sender -> receiver: version `version` (content digest `digest`) follows as chunks of
    transfer `transfer_id`, encoded against `base_version` (-1: none, a self-contained version).
    `exact` is False for a lossy (fp16) copy of the sender's version."""

    transfer_id: int
    version: int
    digest: bytes
    mode: str
    base_version: int
    base_digest: bytes
    exact: bool
    chunk_bytes: int
    total_bytes: int
    tensors: tuple[TensorLayout, ...]

    def __post_init__(self) -> None:
        _require(self.chunk_bytes > 0 and self.total_bytes >= 0, "chunk and total sizes")
        _require(all(t.offset + t.length <= self.total_bytes for t in self.tensors),
                 "a tensor lies past the end of the transfer")

    @property
    def n_chunks(self) -> int:
        return -(-self.total_bytes // self.chunk_bytes)

    def to_body(self) -> dict[str, Any]:
        body = dict(self.__dict__)
        body["tensors"] = [[t.name, t.dtype, list(t.shape), t.encoding, t.offset, t.length,
                            t.digest, t.count] for t in self.tensors]
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> WeightOffer:
        fields = dict(body)
        fields["tensors"] = tuple(
            TensorLayout(name, dtype, tuple(shape), encoding, offset, length, digest, count)
            for name, dtype, shape, encoding, offset, length, digest, count in body["tensors"])
        return cls(**fields)


@message("weight_chunk")
class WeightChunk(Message):
    """Sender -> receiver: bytes [seq * chunk_bytes, ...) of a transfer, with their checksum."""

    transfer_id: int
    seq: int
    checksum: int
    payload: np.ndarray  # uint8


@message("weight_request")
class WeightRequest(Message):
    """Receiver -> sender: resend the `missing` chunks of `transfer_id`, or (missing empty) send
    the newest version against what the receiver holds (`have_version` -1: nothing)."""

    transfer_id: int
    have_version: int
    have_digest: bytes
    missing: list[int]
    reason: str


@message("weight_applied")
class WeightApplied(Message):
    """Receiver -> sender: version `version` (content digest `digest`) is what it now acts with;
    its bytes took `receive_s` seconds from offer to last byte there (0: not measured)."""

    version: int
    digest: bytes
    receive_s: float = 0.0


@message("bulk_ticket")
class BulkTicket(Message):
    """Gateway -> edge: open the bulk channel (TCP, or TLS under wss, on `port` of the gateway's
    host) with this one-time `ticket`; weight transfers then stream there (comms.bulk)."""

    port: int
    ticket: bytes

    def __post_init__(self) -> None:
        check_int(self.port, "port", 1, 65535)
        _require(isinstance(self.ticket, bytes) and len(self.ticket) == 32,
                 "a bulk ticket is 32 bytes")
