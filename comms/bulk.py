"""The bulk channel: a TCP (or TLS) connection beside an edge's websocket that carries weight
transfers as plain bytes, sent from the tensors' own memory and received straight into the
buffer they are rebuilt from: no framing, no per-chunk copies, no event loop in the way.

It is opened after the websocket handshake with a one-time ticket the gateway sent over the
authenticated link; each end proves it holds the ticket without revealing it, so the channel is
exactly as authenticated (and, under TLS, as private) as the link that carried the ticket:

    edge -> gateway:  MAGIC, ticket id (16 bytes), auth.bulk_proof(ticket, "edge") (32 bytes)
    gateway -> edge:  auth.bulk_proof(ticket, "gateway") (32 bytes)
    gateway -> edge, per transfer:  <u32 length> WeightOffer frame, then its total_bytes
"""

from __future__ import annotations

import hmac
import logging
import os
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from comms.auth import bulk_proof
from comms.codec import CodecError
from comms.messages import WeightOffer, decode_message
from comms.weight_sync import Transfer
from comms.weight_sync_receiver import WeightReceiver
from robot_rl.core import AuthError, CommsError
from robot_rl.core.priority import background_priority

log = logging.getLogger(__name__)

MAGIC = b"RRLBULK1"
TICKET_BYTES = 16
_HEADER = struct.Struct("<I")
SLICE = 4 << 20  # bytes per send call: a peer that takes none of them in `timeout` is gone
_ZEROS = bytes(64)  # alignment gaps between tensors in a transfer's stream


def _check(expected: bytes, got: bytes, who: str) -> None:
    if not hmac.compare_digest(expected, got):
        raise AuthError(f"{who} does not prove the one-time ticket")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        got = sock.recv(n - len(data))
        if not got:
            raise ConnectionError("the bulk channel closed")
        data += got
    return bytes(data)


@dataclass
class _Grant:
    peer: str
    ticket: bytes
    expires: float
    on_open: Callable[[BulkPeer], None]


class BulkServer:
    """Listens on `host:port` (0: any free port) for bulk channels of edges holding a ticket."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0) -> None:
        self._ssl, self.timeout = ssl_context, timeout
        self._sock = socket.create_server((host, port))
        self._grants: dict[bytes, _Grant] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="bulk-accept", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def issue(self, peer: str, on_open: Callable[[BulkPeer], None]) -> bytes:
        """A one-time ticket for `peer` (its first 16 bytes name it, the rest is the secret),
        valid for `timeout` seconds; `on_open` gets the channel once the edge proved it."""
        ticket = os.urandom(2 * TICKET_BYTES)
        with self._lock:
            now = time.monotonic()
            self._grants = {t: g for t, g in self._grants.items() if g.expires > now}
            self._grants[ticket[:TICKET_BYTES]] = _Grant(peer, ticket, now + self.timeout, on_open)
        return ticket

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(5.0)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._admit, args=(conn,), name="bulk-admit",
                             daemon=True).start()

    def _admit(self, conn: socket.socket) -> None:
        """Check one connection's ticket and proof; hand the channel over or close it."""
        try:
            conn.settimeout(self.timeout)
            if self._ssl is not None:
                conn = self._ssl.wrap_socket(conn, server_side=True)
            hello = _recv_exact(conn, len(MAGIC) + TICKET_BYTES + 32)
            if not hello.startswith(MAGIC):
                raise AuthError("not a bulk channel")
            with self._lock:
                grant = self._grants.pop(hello[len(MAGIC):len(MAGIC) + TICKET_BYTES], None)
            if grant is None or grant.expires < time.monotonic():
                raise AuthError("unknown or expired bulk ticket")
            _check(bulk_proof(grant.ticket, "edge"), hello[-32:],
                   f"the bulk channel of {grant.peer!r}")
            conn.sendall(bulk_proof(grant.ticket, "gateway"))
        except (OSError, AuthError) as exc:
            log.warning("bulk channel refused: %s", exc)
            conn.close()
            return
        grant.on_open(BulkPeer(conn, grant.peer))


class BulkPeer:
    """The gateway's end of one edge's bulk channel: sends transfers, one at a time, in order."""

    def __init__(self, sock: socket.socket, peer: str, timeout: float = 30.0) -> None:
        self.peer = peer
        sock.settimeout(timeout)
        self._sock = sock
        self._jobs: queue.Queue[tuple[Transfer, Future[float]] | None] = queue.Queue()
        self.closed = False
        self._thread = threading.Thread(target=self._send_loop, name=f"bulk-{peer}", daemon=True)
        self._thread.start()

    def send(self, transfer: Transfer) -> Future[float]:
        """Queue `transfer`; the future gives the seconds its sending took, or the error."""
        done: Future[float] = Future()
        if self.closed:
            done.set_exception(CommsError(f"the bulk channel of {self.peer} is closed"))
        else:
            self._jobs.put((transfer, done))
        return done

    def close(self) -> None:
        self.closed = True
        self._jobs.put(None)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _send_loop(self) -> None:
        background_priority()
        while (job := self._jobs.get()) is not None:
            transfer, done = job
            if not done.set_running_or_notify_cancel():
                continue  # its waiter went away (the edge disconnected)
            start = time.perf_counter()
            try:
                self._write(transfer)
            except (OSError, ssl.SSLError) as exc:
                self.closed = True
                done.set_exception(CommsError(f"bulk channel of {self.peer}: {exc}"))
                break
            done.set_result(time.perf_counter() - start)
        while (job := self._jobs.get_nowait() if not self._jobs.empty() else None) is not None:
            if job[1].set_running_or_notify_cancel():
                job[1].set_exception(CommsError(f"the bulk channel of {self.peer} is closed"))

    def _write(self, transfer: Transfer) -> None:
        frame = transfer.offer.encode()
        self._sock.sendall(_HEADER.pack(len(frame)) + frame)
        at = 0
        for offset, data in transfer.parts:
            if offset > at:
                self._sock.sendall(_ZEROS[:offset - at])
            for start in range(0, len(data), SLICE):
                self._sock.sendall(data[start:start + SLICE])
            at = offset + len(data)
        if transfer.offer.total_bytes > at:
            self._sock.sendall(_ZEROS[:transfer.offer.total_bytes - at])


class BulkReader:
    """The edge's end of its bulk channel: a thread that opens it and writes every transfer
    into `receiver` (straight into the buffer the version is rebuilt from)."""

    def __init__(self, host: str, port: int, ticket: bytes, receiver: WeightReceiver,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0,
                 max_offer_bytes: int = 64 << 20) -> None:
        self.host, self.port, self._ticket = host, port, ticket
        self.receiver, self._ssl, self.timeout = receiver, ssl_context, timeout
        self.max_offer_bytes = max_offer_bytes
        self.opened = threading.Event()
        self.error: Exception | None = None
        self._sock: socket.socket | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="bulk-reader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """End the channel; never waits (the link's loop calls it): the thread ends by itself."""
        self._stopped = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        if self._ssl is not None:
            sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
        ticket = self._ticket
        sock.sendall(MAGIC + ticket[:TICKET_BYTES] + bulk_proof(ticket, "edge"))
        try:
            _check(bulk_proof(ticket, "gateway"), _recv_exact(sock, 32), "the bulk channel's peer")
        except AuthError:
            sock.close()
            raise
        sock.settimeout(None)  # idle between transfers; close() ends the wait
        return sock

    def _run(self) -> None:
        background_priority()
        try:
            self._sock = self._open()
            self.opened.set()
            if self._stopped:
                return
            while self._transfer(self._sock):
                pass
        except (OSError, ssl.SSLError, CodecError, CommsError) as exc:
            if not self._stopped:
                self.error = exc
                log.warning("bulk channel to %s:%d ended: %s", self.host, self.port, exc)
        finally:
            if self._sock is not None:
                self._sock.close()

    def _transfer(self, sock: socket.socket) -> bool:
        """Read one transfer into the receiver; False when the gateway closed the channel
        between two transfers (its end of the link went away)."""
        first = sock.recv(_HEADER.size)
        if not first:
            return False
        (length,) = _HEADER.unpack(first + _recv_exact(sock, _HEADER.size - len(first)))
        if length > self.max_offer_bytes:
            raise CommsError(f"bulk offer of {length} bytes exceeds {self.max_offer_bytes}")
        offer = decode_message(_recv_exact(sock, length))
        if not isinstance(offer, WeightOffer):
            raise CommsError(f"the bulk channel carries weight offers, not {offer.kind}")
        target = self.receiver.open_stream(offer)  # WeightSyncError (too large) ends the channel
        total, step = offer.total_bytes, offer.chunk_bytes
        sink = memoryview(bytearray(min(total, SLICE))) if target is None else None
        got = 0
        while got < total:
            if target is not None:
                n = sock.recv_into(target[got:], min(total - got, SLICE))
            else:
                assert sink is not None
                n = sock.recv_into(sink, min(total - got, len(sink)))
            if n == 0:
                raise ConnectionError("the bulk channel closed mid-transfer")
            if target is not None and ((got + n) // step > got // step or got + n == total):
                self.receiver.stream_filled(offer.transfer_id, got + n)  # a chunk completed
            got += n
        return True
