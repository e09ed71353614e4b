"""Test helpers for the embedded llama.cpp server: one shared server for the whole pytest session.

The tests that only need *a* server share one, started on first use and stopped at interpreter
exit (EmbeddedServer.start registers that with atexit). Tests that check start/stop behaviour
start their own.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from metric_cards.local_server import EmbeddedServer, EmbeddedServerError, default_model_path

_shared: EmbeddedServer | None = None


def require_embedded_model() -> str:
    """The default GGUF path; skip when llama.cpp or the model is missing, except in CI (fail)."""
    missing = None
    if importlib.util.find_spec("llama_cpp") is None:
        missing = "llama-cpp-python is not installed (scripts/setup.sh installs it)"
    else:
        try:
            return default_model_path()
        except EmbeddedServerError as exc:
            missing = str(exc)
    if os.environ.get("CI"):
        pytest.fail(f"embedded model unavailable in CI: {missing}")
    pytest.skip(missing)


def shared_server() -> EmbeddedServer:
    """A running server for the default model, shared by every test module of the session."""
    global _shared
    require_embedded_model()
    if _shared is None or not _shared.is_running():
        _shared = EmbeddedServer(handle_sigterm=False)  # leave pytest's own signal handling alone
        _shared.start()
    return _shared


def pid_alive(pid: int) -> bool:
    """True while `pid` is a live (not zombie) process; reads /proc, since kill(pid, 0) succeeds
    on a zombie that nobody has reaped yet."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        text = stat.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = text.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def server_pids(port: int) -> list[int]:
    """Pids of llama_cpp.server processes started for `port` (scans /proc; no procps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"llama_cpp.server" in argv
            and str(port).encode() in argv
            and pid_alive(int(entry.name))
        ):
            found.append(int(entry.name))
    return found
