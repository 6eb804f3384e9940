"""Shared-token challenge-response: both peers prove they hold the token; it never crosses the wire.

The edge signs both nonces plus its hello; the gateway answers with its own signature, so an
edge never hands data to an impostor gateway either.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from robot_rl.core import AuthError

log = logging.getLogger(__name__)

TOKEN_ENV = "ROBOT_RL_TOKEN"
MIN_TOKEN_BYTES = 16
NONCE_BYTES = 32


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def new_token() -> str:
    """A fresh random token to put in a token file on both sides."""
    return secrets.token_urlsafe(32)


def load_token(path: Path | None = None, env_var: str = TOKEN_ENV) -> bytes:
    """The shared token from `path`, else from $env_var; AuthError says how to provide one."""
    if path is not None:
        try:
            text = Path(path).read_text().strip()
        except OSError as exc:
            raise AuthError(f"cannot read token file {path}: {exc.strerror}") from None
        if Path(path).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("token file %s is readable by others: chmod 600 it", path)
        source = f"token file {path}"
    else:
        text = os.environ.get(env_var, "").strip()
        source = f"${env_var}"
        if not text:
            raise AuthError(f"no token: pass --token-file PATH or set ${env_var}")
    token = text.encode()
    if len(token) < MIN_TOKEN_BYTES:
        raise AuthError(
            f"the token from {source} has {len(token)} bytes; use at least {MIN_TOKEN_BYTES} "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _sign(token: bytes, role: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(token, role, hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    return mac.digest()


def edge_proof(token: bytes, server_nonce: bytes, client_nonce: bytes, hello: bytes) -> bytes:
    """What the edge sends: HMAC(token) over both nonces and the exact hello frame it sent."""
    return _sign(token, b"robot_rl edge v1", server_nonce, client_nonce, hello)


def gateway_proof(token: bytes, server_nonce: bytes, client_nonce: bytes, hello: bytes) -> bytes:
    """What the gateway sends back: a signature the edge can check, bound to the same exchange."""
    return _sign(token, b"robot_rl gateway v1", server_nonce, client_nonce, hello)


def bulk_proof(ticket: bytes, role: str) -> bytes:
    """What each end of a bulk channel (comms.bulk) sends: HMAC keyed by the one-time ticket
    that travelled over the authenticated link, over its role. Neither proof reveals the other,
    so a peer that never saw the ticket can pose as neither end."""
    return _sign(ticket, b"robot_rl bulk " + role.encode() + b" v1")


def verify(expected: bytes, received: object, who: str) -> None:
    """Constant-time comparison; AuthError names who failed when the proof is wrong."""
    if not isinstance(received, bytes) or not hmac.compare_digest(expected, received):
        raise AuthError(f"{who} failed authentication: wrong shared token")
