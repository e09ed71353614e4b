"""Speed of the CPU GRPO loop (python -m metric_cards.trainer run).

    # seconds per step split into generation / training / weight sync, tokens/s of each, and the
    # share of wall time the env and run-api take; from a short run it starts itself...
    python scripts/bench_grpo.py loop [--steps 3] [--groups-per-step 4] [--group-size 4]
    # ...or from the output directory of a run that already happened
    python scripts/bench_grpo.py loop --run-dir artifacts/grpo
    # where the policy should sample: llama.cpp on the exported F16 GGUF (restarted after each
    # sync) vs the trainer's own torch model (HF generate, no sync)
    python scripts/bench_grpo.py generation [--completions 4] [--max-tokens 128]

In the loop, the env samples the next batch while the trainer trains on this one, so "waiting for
the batch" is the part of generation that training did not hide. Generation tokens/s is measured
over the wall time of a step (the server samples all the time except during a sync).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def loop_report(run_dir: Path) -> dict[str, Any]:
    steps = _rows(run_dir / "steps.jsonl")
    summary = json.loads((run_dir / "summary.json").read_text())
    if not steps:
        raise SystemExit(f"error: {run_dir}/steps.jsonl has no steps")

    def mean(key: str) -> float:
        return statistics.fmean(float(s[key]) for s in steps)

    step_wall = mean("gen_s") + mean("train_s") + mean("sync_s")
    env_api = (summary.get("env_cpu_s") or 0.0) + (summary.get("api_cpu_s") or 0.0)
    return {
        "steps": len(steps),
        "wait_for_batch_s": mean("gen_s"),
        "train_s": mean("train_s"),
        "sync_s": mean("sync_s"),
        "step_wall_s": step_wall,
        "generated_tokens_per_step": mean("completion_tokens"),
        "generation_tok_s": mean("completion_tokens") / step_wall,
        "trained_tokens_per_step": mean("trained_tokens"),
        "training_tok_s": mean("trained_tokens") / mean("train_s"),
        "env_cpu_s": summary.get("env_cpu_s"),
        "api_cpu_s": summary.get("api_cpu_s"),
        "run_wall_s": summary["wall_s"],
        "env_and_api_share_of_wall": env_api / summary["wall_s"],
    }


def print_loop(report: dict[str, Any]) -> None:
    print(f"\nGRPO loop, {report['steps']} steps — {machine()}")
    print(f"  per step (wall {report['step_wall_s']:.1f} s):")
    wait = report["wait_for_batch_s"]
    print(f"    waiting for the batch (generation not hidden by training) {wait:7.1f} s")
    print(
        f"    training (forward + backward + AdamW)                      {report['train_s']:7.1f} s"
    )
    print(
        f"    weight sync (GGUF F16 write + llama.cpp restart)           {report['sync_s']:7.1f} s"
    )
    print(
        f"  generation: {report['generated_tokens_per_step']:.0f} completion tokens/step, "
        f"{report['generation_tok_s']:.1f} tok/s over the step's wall time"
    )
    print(
        f"  training:   {report['trained_tokens_per_step']:.0f} trained tokens/step, "
        f"{report['training_tok_s']:.1f} tok/s of training time"
    )
    print(f"  env + run-api CPU: {report['env_cpu_s']:.1f} s + {report['api_cpu_s']:.1f} s over "
          f"{report['run_wall_s']:.0f} s wall = {100 * report['env_and_api_share_of_wall']:.2f}% "
          "(goal < 2%)")  # fmt: skip


def run_loop(args: argparse.Namespace) -> Path:
    out = Path(tempfile.mkdtemp(prefix="bench-grpo-")) / "run"
    command = [
        sys.executable, "-m", "metric_cards.trainer", "run", "--out", str(out),
        "--steps", str(args.steps), "--groups-per-step", str(args.groups_per_step),
        "--group-size", str(args.group_size), "--eval-size", "4",
        "--eval-every", str(10**6), "--checkpoint-every", str(10**6),
    ]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=True)
    return out


def generation(args: argparse.Namespace) -> dict[str, Any]:
    """llama.cpp on the F16 GGUF the trainer writes vs HF generate on the trainer's model."""
    import torch
    from transformers import AutoTokenizer

    from metric_cards.catalog import eval_requests
    from metric_cards.gguf_tokenizer import tokenizer_dir_for_gguf
    from metric_cards.groups import prompt_messages
    from metric_cards.local_server import EmbeddedServer, default_model_path
    from metric_cards.trainer.evaluation import chat_completion
    from metric_cards.trainer.gguf_export import write_gguf
    from metric_cards.trainer.policy import load_model

    torch.set_num_threads(os.cpu_count() or 1)
    source = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir_for_gguf(source))
    model = load_model(source).eval()
    requests = eval_requests(args.completions)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        path = write_gguf(model.state_dict(), source, Path(tmp) / "policy.gguf")
        out["gguf_f16_write_s"] = time.monotonic() - started
        started = time.monotonic()
        with EmbeddedServer(path) as server:
            out["llama_cpp_restart_s"] = time.monotonic() - started
            tokens, started = 0, time.monotonic()
            for request in requests:  # one at a time: the server serves one request at a time
                completion = chat_completion(
                    server.base_url, server.model_name, prompt_messages(request),
                    max_tokens=args.max_tokens, temperature=0.8,
                )  # fmt: skip
                tokens += len(tokenizer(completion.content, add_special_tokens=False)["input_ids"])
            out["llama_cpp_f16_tok_s"] = tokens / (time.monotonic() - started)
    prompts = [
        tokenizer.apply_chat_template(
            prompt_messages(r), tokenize=False, add_generation_prompt=True
        )
        for r in requests
    ]
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    for label, bf16 in (("hf_generate_fp32", False), ("hf_generate_bf16", True)):
        started = time.monotonic()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            generated = model.generate(
                **batch, max_new_tokens=args.max_tokens, do_sample=True, temperature=0.8,
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        elapsed = time.monotonic() - started
        new = generated[:, batch["input_ids"].shape[1] :]
        out[f"{label}_batched_tok_s"] = int((new != tokenizer.pad_token_id).sum()) / elapsed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    loop = sub.add_parser("loop")
    loop.add_argument("--run-dir", type=Path, help="report on this finished run instead")
    loop.add_argument("--steps", type=int, default=3)
    loop.add_argument("--groups-per-step", type=int, default=4)
    loop.add_argument("--group-size", type=int, default=4)
    loop.add_argument("--json", type=Path, help="also write the numbers here")
    gen = sub.add_parser("generation")
    gen.add_argument("--completions", type=int, default=4)
    gen.add_argument("--max-tokens", type=int, default=128)
    gen.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "loop":
        run_dir = args.run_dir or run_loop(args)
        report = loop_report(run_dir)
        print_loop(report)
    else:
        report = generation(args)
        print(f"\ngeneration — {machine()}")
        for key, value in report.items():
            print(f"  {key:28s} {value:8.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), **report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
