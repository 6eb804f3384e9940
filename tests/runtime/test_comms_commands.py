"""`robot-rl gateway` and `robot-rl edge`: bad input fails with one clear line and no state."""

from __future__ import annotations

from pathlib import Path

import pytest

from comms.auth import TOKEN_ENV
from comms.gateway import Gateway, GatewayThread
from comms.messages import spec_digest
from robot_rl.cli import main
from robot_rl.config import compose_session
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.build import build_robot
from tests.integration.comms_helpers import FAST, TOKEN


def token_file(tmp_path: Path, token: bytes) -> str:
    path = tmp_path / "token"
    path.write_bytes(token)
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize(("args", "expected"), [
    (["edge", "--gateway", "http://127.0.0.1:1"], "must be a ws:// or wss:// URL"),
    (["edge", "--gateway", "ws://127.0.0.1:1"], f"set ${TOKEN_ENV}"),
    (["gateway", "--run-dir", "RUN", "--certfile", "cert.pem"], "both --certfile and --keyfile"),
    (["gateway", "--run-dir", "RUN", "--token-file", "missing"], "cannot read token file"),
])
def test_bad_arguments_fail_with_one_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], expected: str) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    if "--token-file" not in args and args[0] == "gateway":
        monkeypatch.setenv(TOKEN_ENV, TOKEN.decode())
    assert main([a.replace("RUN", str(tmp_path / "run")) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "run" / "buffer").exists()


def test_an_edge_with_the_wrong_token_exits_with_the_gateways_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arm, _ = build_robot(compose_session(["task=reach"]))
    digest = spec_digest(arm.observation_spec, arm.action_spec)
    sink = BufferSink(tmp_path / "buffer", arm.observation_spec, arm.action_spec)
    gw = GatewayThread(Gateway(sink, TOKEN, digest, timings=FAST))
    try:
        code = main(["edge", "--gateway", f"ws://127.0.0.1:{gw.port}", "--token-file",
                     token_file(tmp_path, b"a-wrong-token-of-enough-bytes"), "--no-pace",
                     "--spool-dir", str(tmp_path / "spool"), "--episodes", "50", "task=reach"])
    finally:
        gw.stop()
    assert code == 2
    err = capsys.readouterr().err
    assert "gateway refused authentication" in err and "wrong shared token" in err, err
    assert len(sink.buffer) == 0 and gw.gateway.stats["rejected_auth"] == 1


def test_token_commands_issue_a_per_edge_key_and_revoke_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from comms.auth import load_token
    from comms.edge_keys import EdgeKeys, edge_key
    from robot_rl.core import AuthError

    secret, edges, key = tmp_path / "token", tmp_path / "edges.json", tmp_path / "arm1.key"
    assert main(["token", "new", "--out", str(secret)]) == 0
    assert main(["token", "issue", "--edge", "arm1", "--stream", "arm1", "--token-file",
                 str(secret), "--edges-file", str(edges), "--out", str(key)]) == 0
    assert (key.stat().st_mode & 0o777) == 0o600 and (edges.stat().st_mode & 0o777) == 0o600
    assert load_token(key) == edge_key(load_token(secret), "arm1")
    keys = EdgeKeys(edges, load_token(secret))
    assert keys.lookup("arm1")[1].streams == {"arm1"}
    assert main(["token", "issue", "--edge", "arm1", "--token-file", str(secret),
                 "--edges-file", str(edges), "--out", str(key)]) == 2  # never overwrites a key
    assert main(["token", "revoke", "--edge", "arm1", "--edges-file", str(edges)]) == 0
    with pytest.raises(AuthError, match="revoked"):
        keys.lookup("arm1")
    assert main(["token", "revoke", "--edge", "nobody", "--edges-file", str(edges)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "exists" in err[0] and "no edge 'nobody'" in err[1], err
