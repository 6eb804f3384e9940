"""Messages: every registered type round-trips; bad envelopes and fields are named."""

from __future__ import annotations

import numpy as np
import pytest

from comms.codec import encode
from comms.messages import (
    MESSAGES,
    PROTOCOL_VERSION,
    Ack,
    ActionRequest,
    ActionResponse,
    Authenticate,
    BulkTicket,
    Challenge,
    Control,
    Error,
    Heartbeat,
    Hello,
    ProtocolError,
    TensorLayout,
    TransitionBatch,
    WeightApplied,
    WeightChunk,
    WeightOffer,
    WeightRequest,
    Welcome,
    decode_message,
    spec_digest,
)
from robot_rl.core import ArraySpec, DictSpec, Source, Transition


def transition(i: int) -> Transition:
    obs = {"state": np.full(3, i, np.float32), "image": np.full((8, 8, 3), i, np.uint8)}
    return Transition(obs=obs, action=np.full(2, 0.5, np.float32), reward=float(i),
                      next_obs=obs, terminated=i == 2, truncated=False, intervened=True,
                      source=Source.HUMAN, policy_version=4, robot_id="r1", episode_id=9, step=i)


EXAMPLES = [
    Hello(PROTOCOL_VERSION, "edge-1", "abcd", b"n" * 32, ["r1"]),
    Challenge(b"s" * 32), Authenticate(b"p" * 32), Welcome(PROTOCOL_VERSION, b"p" * 32, {"r1": 4}),
    TransitionBatch("r1", 5, (transition(0), transition(1), transition(2)), ((7, True),)),
    Ack("r1", 7),
    ActionRequest(3, "r1", {"state": np.ones(3, np.float32)}, 0.1),
    ActionResponse(3, np.zeros(5, np.float32), 12),
    Heartbeat(1.5), Heartbeat(2.0, 1.25, 0.01), Control("estop", "operator"),
    Error("auth", "wrong token"),
]
EXAMPLES += [  # weight sync (comms.weight_sync)
    WeightOffer(1, 2, b"d" * 32, "patch", 1, b"b" * 32, True, 1 << 20, 80,
                (TensorLayout("w", "<f4", (4, 5), "raw", 0, 80, b"t" * 32),)),
    WeightChunk(1, 0, 12345, np.arange(80, dtype=np.uint8)),
    WeightRequest(1, 1, b"b" * 32, [0, 3], "chunks lost"), WeightApplied(2, b"d" * 32),
    BulkTicket(40123, b"t" * 32),
]


def test_every_registered_message_type_has_an_example() -> None:
    assert sorted(MESSAGES) == sorted({m.kind for m in EXAMPLES})


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.kind)
def test_messages_round_trip(msg: object) -> None:
    out = decode_message(msg.encode())  # type: ignore[attr-defined]
    assert type(out) is type(msg)
    if isinstance(msg, TransitionBatch):
        assert isinstance(out, TransitionBatch)
        assert out.first_seq == 5 and out.episode_ends == ((7, True),)
        for a, b in zip(msg.transitions, out.transitions, strict=True):
            assert a.source is b.source and a.reward == b.reward and a.step == b.step
            np.testing.assert_array_equal(a.obs["image"], b.obs["image"])
            np.testing.assert_array_equal(a.action, b.action)
    elif isinstance(msg, ActionRequest | ActionResponse | WeightChunk):
        assert out.encode() == msg.encode()
    else:
        assert out == msg


@pytest.mark.parametrize("frame, reason", [
    ("text", "text frames"),
    (encode([1, 2]), "exactly the keys"),
    (encode({"v": 99, "type": "ack", "body": {}}), "protocol version 99"),
    (encode({"v": PROTOCOL_VERSION, "type": "nope", "body": {}}), "unknown message type"),
    (encode({"v": PROTOCOL_VERSION, "type": "ack", "body": []}), "must be a map"),
    (encode({"v": PROTOCOL_VERSION, "type": "ack", "body": {"stream_id": "a"}}),
     r"missing fields \['last_seq'\]"),
    (encode({"v": PROTOCOL_VERSION, "type": "control",
             "body": {"command": "explode", "reason": ""}}), "bad field"),
    (encode({"v": PROTOCOL_VERSION, "type": "transitions",
             "body": {"stream_id": "a", "first_seq": -1, "transitions": [],
                      "episode_ends": []}}), "bad field"),
    (encode({"v": PROTOCOL_VERSION, "type": "transitions",
             "body": {"stream_id": "a", "first_seq": 0, "transitions": [b"\xc1"],
                      "episode_ends": []}}), "malformed"),
])
def test_bad_frames_are_refused_with_a_reason(frame: object, reason: str) -> None:
    with pytest.raises(ProtocolError if reason != "malformed" else Exception, match=reason):
        decode_message(frame)  # type: ignore[arg-type]


def test_spec_digest_changes_with_the_layout() -> None:
    obs = DictSpec({"state": ArraySpec((3,), "float32")})
    a = spec_digest(obs, ArraySpec((2,), "float32"))
    assert a == spec_digest(DictSpec({"state": ArraySpec((3,), "float32")}),
                            ArraySpec((2,), "float32"))
    assert a != spec_digest(obs, ArraySpec((3,), "float32"))
