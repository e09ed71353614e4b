"""`python -m metric_cards.trainer run`: GRPO on this env, on a CPU, in one command
(`... report RUN_DIR` turns its output into plots and tables).

Starts run-api (127.0.0.1), llama.cpp on the current weights, the env's `serve` and the trainer;
prints one line per step and writes eval.jsonl / steps.jsonl / checkpoints to --out.
"""

from __future__ import annotations

import os

# Before torch is imported: with few shared cores, OpenMP threads that spin while waiting make
# every kernel launch wait for a busy core (decoding and training slow down about tenfold).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from metric_cards.trainer.loop import Loop, RunConfig, RunError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    defaults = RunConfig()
    parser = argparse.ArgumentParser(prog="python -m metric_cards.trainer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole GRPO loop")
    add = run.add_argument
    add("--out", type=Path, default=defaults.out_dir, help="output directory (default %(default)s)")
    add("--steps", type=int, default=defaults.steps, help="optimizer steps (default %(default)s)")
    add(
        "--groups-per-step",
        type=int,
        default=defaults.groups_per_step,
        help="prompts per step (default %(default)s)",
    )
    add(
        "--group-size",
        type=int,
        default=defaults.group_size,
        help="completions per prompt (default %(default)s)",
    )
    add("--lr", type=float, default=defaults.lr, help="AdamW learning rate (default %(default)s)")
    add(
        "--temperature",
        type=float,
        default=defaults.temperature,
        help="sampling temperature for training rollouts (default %(default)s)",
    )
    add(
        "--max-tokens",
        type=int,
        default=defaults.max_tokens,
        help="max tokens per completion, training and eval (default %(default)s)",
    )
    add(
        "--clip-eps",
        type=float,
        default=defaults.clip_eps,
        help="ratio clipping (default %(default)s)",
    )
    add(
        "--kl-coef",
        type=float,
        default=defaults.kl_coef,
        help="KL penalty to the initial model; 0 keeps no reference copy (default %(default)s)",
    )
    add(
        "--no-std-scaling",
        action="store_true",
        help="advantages = score - group mean, not divided by the group's std",
    )
    add(
        "--min-std",
        type=float,
        default=defaults.min_std,
        help="floor of the group std that divides advantages (default %(default)s)",
    )
    add(
        "--micro-batch",
        type=int,
        default=defaults.micro_batch,
        help="sequences per forward/backward pass (default %(default)s)",
    )
    add(
        "--fp32",
        action="store_true",
        help="forward/backward in float32 (default: bfloat16 autocast, float32 weights)",
    )
    add(
        "--sync-every",
        type=int,
        default=defaults.sync_every,
        help="steps between weight syncs to the inference server (default %(default)s)",
    )
    add(
        "--eval-every",
        type=int,
        default=defaults.eval_every,
        help="steps between held-out evals (default %(default)s)",
    )
    add(
        "--eval-size",
        type=int,
        default=defaults.eval_size,
        help="held-out prompts per eval (default %(default)s)",
    )
    add(
        "--checkpoint-every",
        type=int,
        default=defaults.checkpoint_every,
        help="steps between checkpoints (default %(default)s)",
    )
    add("--max-minutes", type=float, default=None, help="stop starting steps after this budget")
    add(
        "--model",
        default=None,
        help="GGUF to start from (default: the embedded SmolLM2-135M-Instruct) or a HF model dir",
    )
    add("--resume", action="store_true", help="continue from --out/checkpoint")
    add("--threads", type=int, default=defaults.threads, help="CPU threads (default %(default)s)")
    add("--seed", type=int, default=defaults.seed)
    add(
        "--inference-url",
        default=None,
        help="use this OpenAI-compatible server instead of starting llama.cpp (no weight sync)",
    )
    add("--served-model", default=None, help="model name at --inference-url")
    add("--tokenizer", default=None, help="tokenizer directory (default: from the GGUF)")
    add(
        "--batch-timeout",
        type=float,
        default=defaults.batch_timeout_s,
        help="seconds to wait for a batch before giving up (default %(default)s)",
    )
    report = sub.add_parser(
        "report", help="plots, before/after table and samples from a run's output directory"
    )
    report.add_argument("run_dir", type=Path, help="the run's --out directory")
    report.add_argument(
        "--to", type=Path, default=Path("artifacts/grpo"), help="(default %(default)s)"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        out_dir=args.out,
        steps=args.steps,
        groups_per_step=args.groups_per_step,
        group_size=args.group_size,
        lr=args.lr,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        clip_eps=args.clip_eps,
        kl_coef=args.kl_coef,
        scale_by_std=not args.no_std_scaling,
        min_std=args.min_std,
        micro_batch=args.micro_batch,
        bf16=not args.fp32,
        sync_every=args.sync_every,
        eval_every=args.eval_every,
        eval_size=args.eval_size,
        checkpoint_every=args.checkpoint_every,
        max_minutes=args.max_minutes,
        model=args.model,
        resume=args.resume,
        threads=args.threads,
        seed=args.seed,
        inference_url=args.inference_url,
        served_model=args.served_model,
        tokenizer=args.tokenizer,
        batch_timeout_s=args.batch_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":
        from metric_cards.trainer.report import write_report

        try:
            result = write_report(args.run_dir, args.to)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        first, last = result["first"], result["last"]
        print(
            f"{args.to}: {result['evals']} evals, {result['steps']} steps; held-out mean score "
            f"{first['mean_score']:.3f} (step {first['step']}) -> {last['mean_score']:.3f} "
            f"(step {last['step']})"
        )
        return 0
    config = config_from_args(args)
    for name in ("steps", "groups_per_step", "group_size", "micro_batch", "sync_every",
                 "eval_every", "eval_size", "checkpoint_every", "threads"):  # fmt: skip
        if getattr(config, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    if config.group_size < 2:
        print("error: --group-size must be at least 2 (GRPO compares completions)", file=sys.stderr)
        return 2
    if config.model and not Path(config.model).exists():
        print(f"error: --model {config.model}: no such file or directory", file=sys.stderr)
        return 2
    try:
        Loop(config).run()
    except KeyboardInterrupt:
        print("interrupted: every helper process is stopped", file=sys.stderr)
        return 130
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
