"""Challenge-response proofs and token loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comms import auth
from robot_rl.core import AuthError

TOKEN = b"0123456789abcdef-shared"


def test_proofs_verify_with_the_same_token_only() -> None:
    sn, cn, hello = auth.new_nonce(), auth.new_nonce(), b"hello-frame"
    proof = auth.edge_proof(TOKEN, sn, cn, hello)
    auth.verify(auth.edge_proof(TOKEN, sn, cn, hello), proof, "edge")
    with pytest.raises(AuthError, match="edge failed authentication"):
        auth.verify(auth.edge_proof(b"another-token-of-16b", sn, cn, hello), proof, "edge")
    with pytest.raises(AuthError):
        auth.verify(auth.edge_proof(TOKEN, auth.new_nonce(), cn, hello), proof, "edge")
    with pytest.raises(AuthError):
        auth.verify(auth.edge_proof(TOKEN, sn, cn, b"tampered"), proof, "edge")
    with pytest.raises(AuthError):
        auth.verify(proof, None, "edge")


def test_edge_and_gateway_proofs_differ_so_one_cannot_be_replayed_as_the_other() -> None:
    sn, cn = auth.new_nonce(), auth.new_nonce()
    assert auth.edge_proof(TOKEN, sn, cn, b"h") != auth.gateway_proof(TOKEN, sn, cn, b"h")
    assert TOKEN not in auth.edge_proof(TOKEN, sn, cn, b"h")


def test_token_from_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN.decode() + "\n")
    path.chmod(0o600)
    assert auth.load_token(path) == TOKEN
    monkeypatch.setenv(auth.TOKEN_ENV, TOKEN.decode())
    assert auth.load_token(None) == TOKEN


def test_missing_short_or_unreadable_tokens_say_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    with pytest.raises(AuthError, match="--token-file"):
        auth.load_token(None)
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(AuthError, match="at least 16"):
        auth.load_token(short)
    with pytest.raises(AuthError, match="cannot read token file"):
        auth.load_token(tmp_path / "missing")
    assert len(auth.new_token()) >= 32
    assert os.environ.get(auth.TOKEN_ENV) is None
