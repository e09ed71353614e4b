#!/usr/bin/env python3
"""Benchmark the three data scripts on a large rollout file: throughput (MB/s) and peak RSS.

Generates a rollout file of at least --size_mb MB in our format (in a temporary directory,
deleted afterwards unless --keep) from the shared corpus, scored by the real reward, with token
ids and masks of realistic lengths (they are most of the bytes, as in the env's files). Then it
runs each script on it as a subprocess and reports wall time, MB/s of input and the child's
peak RSS (from wait4's rusage, so each run is measured on its own).

Targets: >= 100 MB/s and < 200 MB peak RSS for each script.

    python scripts/bench_data_scripts.py               # 200 MB
    python scripts/bench_data_scripts.py --size_mb 1024 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import machine, machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORPUS = REPO.parent / "shared" / "corpus" / "deephermes3_3b_metric_cards.jsonl"
TARGET_MB_S = 100.0
TARGET_RSS_MB = 200.0
K = 4


def json_parser() -> str:
    try:
        import orjson

        return f"orjson {orjson.__version__}"
    except ImportError:
        return "json (stdlib; orjson not installed)"


def _corpus() -> list[dict]:
    if not CORPUS.exists():
        sys.exit(f"error: the shared corpus is missing: {CORPUS}")
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


def generate(path: Path, size_mb: float, seed: int = 0) -> tuple[int, int]:
    """Write groups of K until the file is at least size_mb MB; returns (groups, bytes)."""
    from metric_cards.catalog import SYSTEM_PROMPT, parse_request
    from metric_cards.groups import ScoredRollout, build_group
    from metric_cards.reward import score_completion

    rows = _corpus()
    rng = random.Random(seed)
    target = int(size_mb * 1_000_000)
    # Score each (completion, prompt) once: the same 60 groupings repeat with fresh tokens and a
    # numbered title, so every line (and card) is distinct but scoring stays cheap.
    base = []
    for g in range(len(rows) // K):
        chunk = rows[g * K : (g + 1) * K]
        request = parse_request(chunk[0]["prompt"])
        scored = []
        for row in chunk:
            result = score_completion(row["completion"], request, "stop")
            scored.append((row["completion"], result))
        base.append((chunk[0]["prompt"], request, scored))

    written = groups = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            prompt, request, scored = base[groups % len(base)]
            rollouts = []
            for completion, result in scored:
                text = completion.replace('"title": "', f'"title": "#{groups} ', 1)
                prompt_len, completion_len = 455 + rng.randrange(10), len(text) // 3
                ids = [rng.randrange(128_256) for _ in range(prompt_len + completion_len)]
                rollouts.append(
                    ScoredRollout(
                        messages=[
                            {"role": "system", "content": SYSTEM_PROMPT},
                            {"role": "user", "content": prompt},
                            {"role": "assistant", "content": text},
                        ],
                        tokens=ids,
                        masks=[-100] * prompt_len + ids[prompt_len:],
                        result=result,
                        score=float(result.score),
                        finish_reason="stop",
                        completion_tokens=completion_len,
                        adjustments={},
                    )
                )
            # the env's own group builder, plus the keys atroposlib adds before writing a line
            group = {
                **build_group(request, rollouts),
                "advantages": None,
                "ref_logprobs": None,
                "overrides": None,
                "group_overrides": None,
            }
            line = json.dumps(group, ensure_ascii=False) + "\n"  # as atroposlib's writer
            handle.write(line)
            written += len(line.encode("utf-8"))
            groups += 1
    return groups, written


def measure(argv: list[str]) -> tuple[float, float, float, int, str]:
    """Run argv; (wall s, CPU s, peak RSS MB, exit code, stderr tail) of that child alone."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO
    )
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
    rss_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    return wall, usage.ru_utime + usage.ru_stime, rss_mb, proc.returncode, err[-2000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size_mb", type=float, default=200.0, help="input size to generate")
    parser.add_argument("--runs", type=int, default=1, help="runs per script (best is reported)")
    parser.add_argument("--input", help="benchmark this existing rollout file instead")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args(argv)

    info = {**machine_info(), "json parser": json_parser()}
    print(f"machine: {machine(info)}")
    workdir = Path(tempfile.mkdtemp(prefix="bench_data_scripts."))
    try:
        if args.input:
            source = Path(args.input)
        else:
            source = workdir / "metric_rollouts.jsonl"
            t0 = time.perf_counter()
            groups, size = generate(source, args.size_mb)
            print(
                f"generated {source} : {size / 1e6:.0f} MB, {groups} groups, {groups * K} "
                f"rollouts in {time.perf_counter() - t0:.0f} s"
            )
        size_mb = source.stat().st_size / 1e6
        out = workdir / "out"
        out.mkdir()
        py = sys.executable
        # (name, argv, held to the targets?)
        cases = [
            ("extract_metric_training.py",
             [py, "extract_metric_training.py", source, out / "e.jsonl"], True),
            ("trainingDataScript.py",
             [py, "trainingDataScript.py", source, out / "t.jsonl"], True),
            ("trainingDataScript.py --analyze --dpo --format messages",
             [py, "trainingDataScript.py", source, out / "t2.jsonl", "--analyze",
              "--dpo", out / "dpo.jsonl", "--format", "messages"], True),
            ("show_score_distribution.py", [py, "show_score_distribution.py", source], True),
            ("show_score_distribution.py --plot",
             [py, "show_score_distribution.py", source, "--plot", out / "s.png"], True),
            # Optional output: `import datasets` alone takes ~2.5 s and ~150 MB here.
            ("trainingDataScript.py --dataset (info)",
             [py, "trainingDataScript.py", source, out / "t3.jsonl", "--dataset", out / "ds"],
             False),
        ]  # fmt: skip
        # Warm the page cache so every script reads from memory, as the second run would.
        with source.open("rb") as handle:
            while handle.read(1 << 24):
                pass
        print(f"\ninput: {size_mb:.0f} MB (page cache warm); targets: >= {TARGET_MB_S:.0f} MB/s, "
              f"< {TARGET_RSS_MB:.0f} MB RSS")  # fmt: skip
        print(f"load average before: {os.getloadavg()[0]:.1f} (other processes share the CPUs)")
        header = (
            f"{'script':<56} {'wall s':>7} {'MB/s':>7} {'CPU s':>6} {'MB/CPU-s':>9} "
            f"{'peak RSS MB':>12}  verdict"
        )
        print(header)
        print("-" * len(header))
        failures = 0
        for name, command, held in cases:
            walls, cpus, peak = [], [], 0.0
            for _ in range(args.runs):
                wall, cpu, rss, code, err = measure([str(c) for c in command])
                if code != 0:
                    print(f"{name}: exit {code}\n{err}")
                    return 1
                walls.append(wall)
                cpus.append(cpu)
                peak = max(peak, rss)
            wall, cpu = min(walls), min(cpus)
            rate = size_mb / wall
            good = rate >= TARGET_MB_S and peak < TARGET_RSS_MB
            failures += held and not good
            verdict = ("ok" if good else "BELOW TARGET") if held else "(not a target)"
            print(
                f"{name:<56} {wall:>7.2f} {rate:>7.0f} {cpu:>6.2f} {size_mb / cpu:>9.0f} "
                f"{peak:>12.0f}  {verdict}"
            )
        print(f"load average after: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
        print(
            "\nMB/s = input size / wall time of the whole process (interpreter start included);"
            "\nMB/CPU-s = the same per CPU second (steadier on a shared machine); best of --runs."
        )
        return 1 if failures else 0
    finally:
        if args.keep and not args.input:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
