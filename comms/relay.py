"""A site's weight relay: one upstream transfer per version, fanned out to the site's robots.

The relay is a receiver to the cloud and a sender to its robots: each version it has verified
becomes its own newest version, served to every robot against what that robot holds (patches
from the relay's history, else whole), so the wide-area link carries each version once however
many robots the site has. Transport-agnostic like the receiver and sender it joins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from comms.messages import Message
from comms.weight_sync import CHUNK_BYTES, WeightSet
from comms.weight_sync_budget import ByteBudget
from comms.weight_sync_receiver import WeightReceiver
from comms.weight_sync_sender import WeightSender


class WeightRelay:
    """Upstream messages go to `handle_upstream`; robots' messages to `handle_downstream`.

    After `on_ready` fires, the relay's transport calls `advance()` and sends each robot the
    messages `push(peer)` yields."""

    def __init__(self, send_upstream: Callable[[Message], None], mode: str = "patch",
                 chunk_bytes: int = CHUNK_BYTES, adapter_prefixes: Sequence[str] = (),
                 history: int = 2, budget: ByteBudget | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.upstream = WeightReceiver(send_upstream, budget, on_ready=on_ready)
        self.downstream = WeightSender(mode, chunk_bytes, adapter_prefixes, history)

    def handle_upstream(self, msg: Message) -> None:
        self.upstream.handle(msg)

    def advance(self) -> WeightSet | None:
        """Take the newest verified upstream version as the one served to robots (None: none
        new). Acknowledges it upstream, so the next version comes as a patch against it."""
        ws = self.upstream.poll()
        if ws is not None:
            self.downstream.publish(ws, ws.version)
        return ws

    def push(self, peer: str) -> Iterator[Message]:
        return self.downstream.push(peer)

    def handle_downstream(self, peer: str, msg: Message) -> Iterator[Message]:
        return self.downstream.handle(peer, msg)

    def close(self) -> None:
        self.upstream.close()
