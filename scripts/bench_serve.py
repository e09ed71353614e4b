"""Throughput and latency of `serve`: the env against a fast local inference stand-in.

Starts the real Atropos trajectory API (`run-api`, on 127.0.0.1), the fake OpenAI server from
tests/fake_openai.py (answers at once, so the env itself is the bottleneck), and
`metric_card_generator.py serve` as a subprocess; this script plays a trainer that takes batches
as fast as the API forms them (no training time). Measured:

* groups/s and rollouts/s the env delivers to the API (its "sent group" log lines, steady state:
  from the first group sent to the last);
* latency from the inference server's answer to the group being queued in the API (the fake
  server's answer time vs the env's "sent group" line, which it logs once the API has accepted
  the POST), and to the trainer receiving it (which includes waiting for a full batch);
* the env process's CPU time per group, in steady state (from /proc, between the trainer's
  first and last batch) and in total (start-up included).

    python scripts/bench_serve.py [--group-size 8] [--batch-size 64] [--steps 40] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchlib import machine, use_test_helpers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
use_test_helpers()

from conftest import env_subprocess_env  # noqa: E402
from fake_openai import FakeOpenAIServer  # noqa: E402
from serve_harness import ApiProcess, EnvProcess, Trainer, free_port, serve_args  # noqa: E402

from metric_cards.serve_api import group_key  # noqa: E402

SENT = re.compile(r"^(\S+ \S+) INFO metric_cards\.serve: sent group \d+ .*key ([0-9a-f]+)", re.M)


def tokenizer_dir() -> tuple[str, Path]:
    """The embedded model's real tokenizer (SmolLM2) when installed, else a tiny local BPE."""
    try:
        from metric_cards.gguf_tokenizer import tokenizer_dir_for_gguf
        from metric_cards.local_server import default_model_path

        return "SmolLM2-135M (from the GGUF)", Path(tokenizer_dir_for_gguf(default_model_path()))
    except Exception as exc:
        from tiny_tokenizer import build_tiny_tokenizer

        from metric_cards.catalog import SYSTEM_PROMPT, TEMPLATES

        corpus = [SYSTEM_PROMPT] * 4 + list(TEMPLATES) * 4
        path = build_tiny_tokenizer(Path(tempfile.mkdtemp()), corpus)
        return f"tiny local BPE ({type(exc).__name__})", path


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a running process, from /proc (None once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_time(stamp: str) -> float:
    """logging's asctime ('2026-01-31 12:00:00,123', local time) as a Unix timestamp."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (
        f"p50 {1000 * statistics.median(ordered):.0f} ms, p90 {1000 * p90:.0f} ms, "
        f"max {1000 * ordered[-1]:.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64, help="the trainer's, in rollouts")
    parser.add_argument("--steps", type=int, default=40, help="trainer steps (env total_steps)")
    parser.add_argument(
        "--workers", type=int, default=8, help="--env.max_num_workers_per_node (atroposlib: 8)"
    )
    args = parser.parse_args()

    tokenizer_name, tokenizer_path = tokenizer_dir()
    workdir = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    api = ApiProcess(free_port(), workdir / "run-api.log")
    env: EnvProcess | None = None
    with FakeOpenAIServer() as fake:
        try:
            api.start()
            trainer = Trainer(api.url, batch_size=args.batch_size, num_steps=args.steps)
            trainer.register()
            cli = serve_args(
                api.url,
                fake.base_url,
                tokenizer_path,
                group_size=args.group_size,
                total_steps=args.steps,
                extra=["--env.max_num_workers_per_node", str(args.workers)],
            )
            env = EnvProcess(cli, workdir / "env", env_subprocess_env())
            samples: list[tuple[int, float]] = []  # (groups received, env CPU seconds)

            def poll_and_sample() -> None:
                assert env is not None
                if trainer.poll():
                    cpu = cpu_seconds(env.proc.pid)
                    if cpu is not None:
                        samples.append((len(trainer.groups), cpu))

            deadline = time.monotonic() + 600
            while env.running() and time.monotonic() < deadline:
                poll_and_sample()
                time.sleep(0.01)
            while trainer.poll():
                pass
            env.wait(10)
            env_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # the env: the only one reaped
        finally:
            if env is not None:
                env.stop()
            api.stop()

    log = env.log()
    sent = {key: log_time(stamp) for stamp, key in SENT.findall(log)}
    if len(sent) < 2:
        print(log[-3000:], file=sys.stderr)
        return 1
    first, last = min(sent.values()), max(sent.values())
    groups_per_s = (len(sent) - 1) / (last - first)
    to_queue, to_trainer = [], []
    for group, received in (
        (g, t) for batch, t in zip(trainer.batches, trainer.received_at, strict=True) for g in batch
    ):
        answered = fake.answered_at.get(group["messages"][0][1]["content"])
        key = group_key(group)
        if answered is None or key not in sent:
            continue
        to_queue.append(sent[key] - answered)
        to_trainer.append(received - answered)
    cpu_s = env_cpu.ru_utime + env_cpu.ru_stime
    steady = "n/a"
    if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
        (g0, c0), (g1, c1) = samples[0], samples[-1]
        steady = f"{1000 * (c1 - c0) / (g1 - g0):.1f} ms per group"

    print(f"machine:    {machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"tokenizer:  {tokenizer_name}")
    print(
        f"setup:      group_size {args.group_size}, trainer batch_size {args.batch_size} "
        f"rollouts, {args.steps} steps, fake inference server (instant answers), run-api, "
        f"max_num_workers_per_node {args.workers}, env defaults otherwise "
        "(max_batches_offpolicy 3)"
    )
    print(f"groups:     {len(sent)} sent, {len(trainer.groups)} received by the trainer")
    print(
        f"throughput: {groups_per_s:.1f} groups/s = "
        f"{groups_per_s * args.group_size:.0f} rollouts/s (first to last group sent)"
    )
    print(f"latency, inference answer -> queued in the API: {percentiles(to_queue)}")
    print(f"latency, inference answer -> trainer's batch:   {percentiles(to_trainer)}")
    print(
        f"env CPU:    {steady} in steady state; {cpu_s:.1f} s in total with start-up "
        f"({1000 * cpu_s / len(sent):.0f} ms per group)"
    )
    print(f"logs:       {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
