"""Per-edge identity: each edge's key is derived from the gateway's secret and the edge's id, and
a keys file on the gateway lists which streams and robot ids each edge may write.

The gateway stores no keys: `edge_key(secret, edge_id)` recomputes them. The file is read at every
connect, so removing or revoking an edge takes effect at that edge's next connect, no restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from comms.validation import check_id
from robot_rl.core import AuthError, ConfigError
from robot_rl.core.durable import write_file_atomic

KEY_ROLE = b"robot_rl edge key v1"


def edge_key(secret: bytes, edge_id: str) -> bytes:
    """The key edge `edge_id` authenticates with: HMAC(secret, id), printable, 43 characters."""
    mac = hmac.new(secret, KEY_ROLE + edge_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=")


@dataclass(frozen=True)
class Grant:
    """What one authenticated edge may write: these streams, transitions of these robot ids."""

    streams: frozenset[str]
    robots: frozenset[str]

    def refusal(self, stream_id: str, robot_ids: set[str]) -> str | None:
        """Why a batch of `stream_id` carrying `robot_ids` is not this edge's to write, or None."""
        if stream_id not in self.streams:
            return f"stream {stream_id!r} is not one this edge may write ({sorted(self.streams)})"
        foreign = robot_ids - self.robots
        if foreign:
            return f"robot ids {sorted(foreign)} are not this edge's ({sorted(self.robots)})"
        return None


class EdgeKeys:
    """The keys file of a gateway: `{"edges": {id: {"streams": [...], "robots": [...],
    "revoked": bool}}}`, written by `robot-rl token issue` / `revoke`."""

    def __init__(self, path: Path, secret: bytes) -> None:
        self.path, self._secret = Path(path), secret

    def _read(self) -> dict[str, dict[str, object]]:
        if not self.path.exists():
            return {}
        try:
            edges = json.loads(self.path.read_bytes())["edges"]
            if not isinstance(edges, dict):
                raise TypeError("edges is not a map")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: unreadable edge keys file ({exc}); rewrite it with "
                              "robot-rl token issue") from None
        return edges

    def lookup(self, edge_id: str) -> tuple[bytes, Grant]:
        """The key and grant of `edge_id`; AuthError when it is unknown or revoked."""
        try:
            entry = self._read().get(edge_id)
        except ConfigError as exc:
            raise AuthError(f"edge {edge_id!r} refused: {exc}") from None
        if not isinstance(entry, dict):
            raise AuthError(f"edge {edge_id!r} has no key on this gateway: issue one with "
                            f"robot-rl token issue --edge {edge_id}")
        if entry.get("revoked"):
            raise AuthError(f"edge {edge_id!r} was revoked on this gateway")
        streams = frozenset(map(str, entry.get("streams", [edge_id])))  # type: ignore[call-overload]
        robots = frozenset(map(str, entry.get("robots", sorted(streams))))  # type: ignore[call-overload]
        return edge_key(self._secret, edge_id), Grant(streams, robots)

    def issue(self, edge_id: str, streams: list[str], robots: list[str]) -> bytes:
        """Register (or re-grant) `edge_id` for `streams` and `robots`; return its key."""
        edge_id = self._checked(edge_id, "edge id")
        streams = [self._checked(s, "stream id") for s in streams or [edge_id]]
        robots = [self._checked(r, "robot id") for r in robots or streams]
        edges = self._read()
        edges[edge_id] = {"streams": sorted(set(streams)), "robots": sorted(set(robots)),
                          "revoked": False}
        self._write(edges)
        return edge_key(self._secret, edge_id)

    def revoke(self, edge_id: str) -> None:
        """Refuse `edge_id` from its next connect on (its entry stays, marked revoked)."""
        edges = self._read()
        if edge_id not in edges:
            raise ConfigError(f"{self.path}: no edge {edge_id!r} to revoke; known: "
                              f"{sorted(edges)}")
        edges[edge_id] = {**edges[edge_id], "revoked": True}
        self._write(edges)

    def _write(self, edges: dict[str, dict[str, object]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(self.path, json.dumps({"edges": edges}, indent=1).encode())
        self.path.chmod(0o600)

    @staticmethod
    def _checked(value: str, what: str) -> str:
        try:
            return check_id(value, what)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
