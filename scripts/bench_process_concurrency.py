"""How much `process --env.process_concurrency N` gains against a server with latency.

Starts the stand-in OpenAI server from tests/fake_openai.py on 127.0.0.1, in its own process,
with a fixed latency per request (default 200 ms, no limit on concurrent requests, like a vLLM
server far from saturation), builds the env in this process and times its process loop
(`run_groups`: sample, score, tokenize, write the JSONL in step order) for the same seed at each
concurrency. Reports the wall time, the speed-up over concurrency 1, and whether every output
file is byte-identical to the concurrency-1 file.

    python scripts/bench_process_concurrency.py [--groups 64] [--group-size 4] [--latency 0.2]
        [--concurrency 1 8]

Needs the project installed (`pip install -e .`, done by scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchlib import machine, use_test_helpers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
use_test_helpers()

TARGET_SPEEDUP = 6.0  # at 8 in flight vs 1 (issue 11)


def tokenizer_dir(tmp: Path) -> tuple[str, Path]:
    """The embedded model's real tokenizer (SmolLM2) when installed, else a tiny local BPE."""
    try:
        from metric_cards.gguf_tokenizer import tokenizer_dir_for_gguf
        from metric_cards.local_server import default_model_path

        return "SmolLM2-135M (from the GGUF)", Path(tokenizer_dir_for_gguf(default_model_path()))
    except Exception as exc:
        from tiny_tokenizer import build_tiny_tokenizer

        from metric_cards.catalog import SYSTEM_PROMPT, TEMPLATES

        path = build_tiny_tokenizer(tmp, [SYSTEM_PROMPT] * 4 + list(TEMPLATES) * 4)
        return f"tiny local BPE ({type(exc).__name__})", path


@contextlib.contextmanager
def stand_in_server(latency: float) -> Iterator[str]:
    """tests/fake_openai.py in its own process (as a real server would be: its threads must not
    compete with the env for this interpreter's lock); yields its base URL."""
    from benchlib import TESTS

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, str(TESTS / "fake_openai.py"), "--port", str(port)]
    proc = subprocess.Popen([*command, "--delay", str(latency)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the stand-in server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_once(
    base_url: str, tokenizer: Path, out: Path, groups: int, group_size: int, concurrency: int
) -> float:
    """Seconds the process loop takes for `groups` groups at `concurrency` in flight."""
    from metric_card_generator import MetricCardEnv
    from metric_cards import process_loop
    from metric_cards.env_config import MetricCardEnvConfig

    defaults, servers = MetricCardEnv.config_init()
    config = MetricCardEnvConfig(
        **{
            **defaults.model_dump(),
            "tokenizer_name": str(tokenizer),
            "group_size": group_size,
            "total_steps": groups,
            "use_wandb": False,
            "data_path_to_save_groups": str(out),
            "process_concurrency": concurrency,
        }
    )
    servers[0].base_url = base_url
    servers[0].model_name = "fake-metric-model"
    env = MetricCardEnv(config, servers)

    async def loop() -> float:
        await env.setup()
        started = time.perf_counter()
        written = await process_loop.run_groups(env, groups, concurrency)
        elapsed = time.perf_counter() - started
        assert written == groups, f"{written} of {groups} groups written"
        return elapsed

    try:
        return asyncio.run(loop())
    finally:
        if env.jsonl_writer is not None:
            env.jsonl_writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    if 1 not in args.concurrency:
        args.concurrency.insert(0, 1)

    with tempfile.TemporaryDirectory() as tmp, stand_in_server(args.latency) as base_url:
        name, tokenizer = tokenizer_dir(Path(tmp))
        times: dict[int, float] = {}
        files: dict[int, bytes] = {}
        for concurrency in args.concurrency:
            out = Path(tmp) / f"c{concurrency}.jsonl"
            times[concurrency] = run_once(
                base_url, tokenizer, out, args.groups, args.group_size, concurrency
            )
            files[concurrency] = out.read_bytes()

    print(f"machine: {machine()}")
    print(f"tokenizer: {name}")
    print(
        f"{args.groups} groups x {args.group_size} completions, {args.latency * 1000:.0f} ms per "
        "request (stand-in server, one request per group)"
    )
    print(f"{'in flight':>9}  {'seconds':>8}  {'speed-up':>8}  same file as 1")
    baseline = times[1]
    for concurrency in args.concurrency:
        same = files[concurrency] == files[1]
        print(
            f"{concurrency:>9}  {times[concurrency]:>8.2f}  {baseline / times[concurrency]:>7.2f}x"
            f"  {'yes' if same else 'NO'}"
        )
    ok = all(files[c] == files[1] for c in args.concurrency)
    if 8 in times:
        speedup = baseline / times[8]
        print(f"target: >= {TARGET_SPEEDUP:g}x at 8 in flight -> {speedup:.2f}x", end=" ")
        print("OK" if speedup >= TARGET_SPEEDUP and ok else "MISSED")
        ok = ok and speedup >= TARGET_SPEEDUP
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
