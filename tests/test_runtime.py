"""Run-time plumbing: wandb mode, the inference-server wait (over real HTTP), CLI error lines."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import BaseModel, Field, ValidationError

from metric_cards import runtime
from metric_cards.runtime import FatalEnvError, wait_for_inference_server


@pytest.fixture()
def no_wandb_env(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_wandb_disabled_without_credentials(no_wandb_env, capsys, monkeypatch):
    assert runtime.configure_wandb_mode() == "disabled"
    assert "wandb: no API key found" in capsys.readouterr().out
    import os

    assert os.environ["WANDB_MODE"] == "disabled"


def test_wandb_online_with_a_key_or_netrc(no_wandb_env, monkeypatch, tmp_path):
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password x\n")
    assert runtime.configure_wandb_mode() == "online"
    (tmp_path / "netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert runtime.configure_wandb_mode() == "online"


def test_explicit_wandb_mode_wins(no_wandb_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert runtime.configure_wandb_mode() == "offline"


class _Answers:
    """A tiny HTTP server answering GET /v1/models with the statuses in `statuses`, in order."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                status = outer.statuses[min(outer.calls, len(outer.statuses) - 1)]
                outer.calls += 1
                body = b'{"error": "nope"}' if status >= 400 else b'{"data": []}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("statuses", [[200], [404], [503, 503, 200]])
def test_wait_returns_once_the_server_answers(statuses):
    server = _Answers(statuses)
    try:
        asyncio.run(wait_for_inference_server(server.url, "key", timeout=20))
        assert server.calls == len(statuses)
    finally:
        server.close()


def test_wait_refused_request_is_fatal_at_once():
    server = _Answers([401])
    try:
        with pytest.raises(FatalEnvError, match=r"refused the request \(HTTP 401\)"):
            asyncio.run(wait_for_inference_server(server.url, "key", timeout=20))
        assert server.calls == 1
    finally:
        server.close()


def test_wait_gives_up_after_the_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(FatalEnvError, match=f"127.0.0.1:{port}/v1 is not reachable after 1s"):
        asyncio.run(wait_for_inference_server(f"http://127.0.0.1:{port}/v1", None, timeout=1))
    assert time.monotonic() - started < 10


class _Config(BaseModel):
    group_size: int = Field(ge=1)


def test_validation_errors_name_the_flag():
    with pytest.raises(ValidationError) as info:
        _Config(group_size=0)
    assert runtime.describe_validation_error(info.value) == (
        "--env.group_size: Input should be greater than or equal to 1 (got 0)"
    )


def test_cli_exit_codes(capsys):
    assert runtime.cli_exit_code(FatalEnvError("server gone")) == runtime.EXIT_FAILED
    assert capsys.readouterr().err == "error: server gone\n"
    try:
        _Config(group_size=-1)
    except ValidationError as exc:
        assert runtime.cli_exit_code(exc) == runtime.EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: invalid configuration: --env.group_size")
    missing = FileNotFoundError(2, "No such file or directory", "/nope.yaml")
    assert runtime.cli_exit_code(missing) == runtime.EXIT_USAGE
    assert capsys.readouterr().err == "error: No such file or directory: /nope.yaml\n"
    with pytest.raises(ZeroDivisionError):  # a bug is not turned into a message
        runtime.cli_exit_code(ZeroDivisionError("x"))
