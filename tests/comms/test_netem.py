"""The network emulator really delays, throttles and cuts a TCP stream on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from comms.netem import NetemProfile, NetemProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except ConnectionResetError:
                pass  # the proxy's cut resets the connection: expected, not an error

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def round_trip(port: int, payload: bytes) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        t0 = time.perf_counter()
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += sock.recv(65536)
        assert got == payload
        return time.perf_counter() - t0


def test_delay_and_bandwidth_are_applied(echo_port: int) -> None:
    proxy = NetemProxy(echo_port, NetemProfile(delay=0.05, jitter=0.01)).start()
    try:
        rtt = round_trip(proxy.port, b"x" * 100)
        assert 0.08 <= rtt < 0.5
        proxy.set_profile(NetemProfile(bandwidth=1_000_000))
        assert round_trip(proxy.port, b"y" * 300_000) >= 0.25  # 300 kB each way at 1 MB/s
    finally:
        proxy.stop()


def test_a_cut_stalls_traffic_then_resets_the_connection(echo_port: int) -> None:
    proxy = NetemProxy(echo_port).start()
    try:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        proxy.cut(1.0)
        sock.sendall(b"lost")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(4)
        sock.settimeout(3)
        with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
            data = sock.recv(4)
            if not data:
                raise ConnectionResetError("closed")
        sock.close()
        assert round_trip(proxy.port, b"back") < 1.0
    finally:
        proxy.stop()
