"""Real processes for the serve tests and the serve benchmark: the Atropos trajectory API
(`run-api`), the env's `serve` command, a trainer that speaks the API's HTTP protocol, and an HTTP
proxy that injects faults between the env and the API. Everything binds 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import requests

REPO = Path(__file__).resolve().parents[1]
SENT_LINE = re.compile(r"sent group (\d+) to the API \(env (\d+), key ([0-9a-f]+)")
SUMMARY_LINE = re.compile(r"serve finished: (.*)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_api_command(port: int) -> list[str]:
    """atroposlib's `run-api` console script (next to this Python), bound to 127.0.0.1: its
    default host is 0.0.0.0."""
    script = Path(sys.executable).with_name("run-api")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "atroposlib.cli.run_api"]
    return [*base, "--host", "127.0.0.1", "--port", str(port)]


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    while_waiting: Callable[[], Any] | None = None,
    interval: float = 0.05,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        if while_waiting is not None:
            while_waiting()
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class ApiProcess:
    """`run-api` on 127.0.0.1:port, output to a log file; start() returns once it answers."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30) -> ApiProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            run_api_command(self.port), stdout=self._log, stderr=subprocess.STDOUT
        )

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"run-api exited: {self.log_path.read_text()[-2000:]}")
            try:
                return requests.get(self.url + "/", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(answers, timeout, "run-api to answer", interval=0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: the API's in-memory state (trainer, envs, queue) is gone."""
        stop_process(self.proc, signal.SIGKILL)
        self.close_log()

    def stop(self) -> None:
        stop_process(self.proc)
        self.close_log()

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def status(self) -> dict[str, Any]:
        return requests.get(self.url + "/status", timeout=5).json()


def serve_args(
    api_url: str,
    inference_url: str,
    tokenizer_dir: Path,
    *,
    group_size: int = 4,
    total_steps: int = 4,
    seed: int = 0,
    extra: Iterable[str] = (),
) -> list[str]:
    return [
        "serve",
        "--env.rollout_server_url", api_url,
        "--openai.base_url", inference_url,
        "--openai.model_name", "fake-metric-model",
        "--env.tokenizer_name", str(tokenizer_dir),
        "--env.group_size", str(group_size),
        "--env.total_steps", str(total_steps),
        "--env.seed", str(seed),
        *extra,
    ]  # fmt: skip


class EnvProcess:
    """`python metric_card_generator.py ARGS` in `cwd`, stdout/stderr to files (never a pipe
    that could fill up), with readers for the log lines the tests check."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], name: str = "env") -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd
        self.out_path = cwd / f"{name}.stdout"
        self.err_path = cwd / f"{name}.stderr"
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "metric_card_generator.py"), *args],
            cwd=cwd,
            env=env,
            stdout=self._out,
            stderr=self._err,
        )

    def log(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        stop_process(self.proc)
        self._out.close()
        self._err.close()

    def sent(self) -> list[tuple[int, str]]:
        """(env_id, key) of every group the env logged as accepted by the API, in order."""
        return [(int(m[2]), m[3]) for m in SENT_LINE.finditer(self.log())]

    def summary(self) -> dict[str, int]:
        match = SUMMARY_LINE.search(self.log())
        assert match, "no 'serve finished' line in the env log:\n" + self.log()[-3000:]
        return {k: int(v) for k, v in (p.split("=") for p in match[1].split(", "))}


@dataclass
class Trainer:
    """Plays the trainer: POST /register, then GET /batch; registers again when the API answers
    that no trainer is registered (after a restart, run-api has forgotten it)."""

    url: str
    batch_size: int
    num_steps: int = 1000
    max_token_len: int = 2048
    step_time: float = 0.0  # seconds a "training step" takes after each batch
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    registrations: int = 0

    def register(self) -> bool:
        registration = {
            "wandb_group": "serve-test",
            "wandb_project": "metric-card-generator",
            "batch_size": self.batch_size,
            "max_token_len": self.max_token_len,
            "checkpoint_dir": "",
            "save_checkpoint_interval": -1,
            "starting_step": 0,
            "num_steps": self.num_steps,
        }
        try:
            requests.post(self.url + "/register", json=registration, timeout=5).raise_for_status()
        except requests.RequestException:
            return False
        self.registrations += 1
        return True

    def poll(self) -> list[dict[str, Any]] | None:
        try:
            data = requests.get(self.url + "/batch", timeout=5).json()
        except (requests.RequestException, ValueError):
            return None
        if data.get("status") == "error":
            self.register()
            return None
        batch = data.get("batch")
        if batch:
            self.batches.append(batch)
            self.received_at.append(time.time())
            time.sleep(self.step_time)
        return batch

    def queued_groups(self) -> int:
        """Groups still in the API's queue (fewer than a batch once the trainer has drained)."""
        return int(requests.get(self.url + "/status", timeout=5).json()["queue_size"])

    def poll_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(condition, timeout, what, while_waiting=self.poll, interval=0.02)

    @property
    def groups(self) -> list[dict[str, Any]]:
        return [group for batch in self.batches for group in batch]


def wandb_history(run_dir: Path) -> list[dict[str, Any]]:
    """The rows an offline wandb run logged (WANDB_MODE=offline writes `run-<id>.wandb`: a
    LevelDB-style log of wandb's protobuf Records; 32 KiB blocks, 7-byte chunk headers)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    block, pos, pending, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 2):  # FULL, FIRST
            pending = chunk
        else:  # MIDDLE, LAST
            pending += chunk
        if kind not in (1, 4):
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


class FaultProxy:
    """HTTP proxy in front of run-api. `fail_after_forwarding` POSTs to /scored_data* are passed
    to the API (which queues them) and then answered 502 to the env: the at-most-once case.
    While `unavailable` is set, every request is answered 503 without reaching the API: a blip
    of the same API (it keeps its state), unlike a restart."""

    def __init__(self, upstream_port: int, fail_after_forwarding: int = 0) -> None:
        self.upstream_port = upstream_port
        self.fail_after_forwarding = fail_after_forwarding
        self.unavailable = False
        self.unavailable_scored_posts = 0  # groups answered 503 without reaching the API
        self.failed_after_forwarding = 0
        self.scored_posts = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                if proxy.unavailable:
                    if self.command == "POST" and self.path.startswith("/scored_data"):
                        with proxy._lock:
                            proxy.unavailable_scored_posts += 1
                    self._reply(503, b'{"error":"injected: unavailable"}', "application/json")
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("content-type", "content-encoding", "accept")
                }
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    status, payload = resp.status, resp.read()
                    content_type = resp.getheader("Content-Type", "application/json")
                except OSError:
                    status, payload, content_type = 502, b'{"error":"upstream down"}', "text/json"
                finally:
                    conn.close()
                if self.command == "POST" and self.path.startswith("/scored_data"):
                    with proxy._lock:
                        proxy.scored_posts += 1
                        inject = proxy.failed_after_forwarding < proxy.fail_after_forwarding
                        if inject and status == 200:
                            proxy.failed_after_forwarding += 1
                            status, payload = 502, json.dumps({"error": "injected"}).encode()
                self._reply(status, payload, content_type)

            def _reply(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _forward  # noqa: N815
            do_POST = _forward  # noqa: N815

        return Handler
