"""Benchmarks of the embedded model (SmolLM2-135M-Instruct on llama.cpp, CPU only).

    # Sampling settings: validity and within-group score spread, straight against the server
    python scripts/bench_embedded.py sampling [--temperatures 0.2 0.3 0.5] [--prompts 20]
        [--group-size 4] [--max-tokens 256] [--top-p 1.0] [--json OUT]

    # The real env: `metric_card_generator.py process` end to end; seconds per group
    python scripts/bench_embedded.py env [--steps 4] [--group-size 4] [--json OUT]

`sampling` scores with metric_cards.reward.score_completion when that module exists; it always
reports scorer-independent layers too: "json" (a JSON object could be extracted without repair),
"card" (componentType "metricCard" with string props.title/props.value: renderable) and "schema"
(valid against the strict metric_cards.schema.MetricCard). Without the scorer the score is
`proxy_score`, graded over those layers. "spread" is the share of groups whose scores are not
all equal: a group with no spread gives GRPO no signal.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import machine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------------- validity layers


def _extract(text: str) -> tuple[Any, bool]:
    """(parsed object or None, needed lenient repair)."""
    try:
        from metric_cards.extraction import extract_json
    except ImportError:  # stand-alone fallback: the whole answer or its first {...}
        start, end = text.find("{"), text.rfind("}")
        try:
            return json.loads(text[start : end + 1]) if start != -1 else None, False
        except ValueError:
            return None, False
    found = extract_json(text)
    return found.value, found.repaired


def _is_basic_card(value: Any) -> bool:
    """componentType "metricCard" and string props.title / props.value: what the UI needs."""
    props = value.get("props") if isinstance(value, dict) else None
    return (
        isinstance(props, dict)
        and value.get("componentType") == "metricCard"
        and isinstance(props.get("title"), str)
        and isinstance(props.get("value"), str)
    )


def _is_schema_card(value: Any) -> bool:
    """Valid against the strict metric_cards.schema.MetricCard (no extra keys, typed trend)."""
    try:
        from metric_cards.schema import MetricCard
    except ImportError:
        return _is_basic_card(value)
    try:
        MetricCard.model_validate(value)
    except Exception:  # pydantic.ValidationError, or a non-dict value
        return False
    return True


def proxy_score(value: Any, repaired: bool) -> float:
    """A graded stand-in when metric_cards.reward is absent: 0 no JSON, 0.25 repaired JSON,
    0.5 JSON object, 0.75 basic card, 1.0 schema-valid card."""
    if not isinstance(value, dict):
        return 0.0
    if repaired:
        return 0.25
    if _is_schema_card(value):
        return 1.0
    return 0.75 if _is_basic_card(value) else 0.5


def _scorer() -> Any:
    try:
        from metric_cards.reward import score_completion
    except ImportError:
        return None
    return score_completion


def _score_value(result: Any) -> float:
    """A float from whatever score_completion returns (a number or an object with .score)."""
    if isinstance(result, int | float):
        return float(result)
    for name in ("score", "total", "reward"):
        if hasattr(result, name):
            return float(getattr(result, name))
        if isinstance(result, dict) and name in result:
            return float(result[name])
    raise TypeError(f"cannot read a score from {type(result).__name__}")


# ----------------------------------------------------------------------------------- sampling


@dataclass
class SamplingResult:
    temperature: float
    top_p: float
    completions: int = 0
    json_ok: int = 0
    card_ok: int = 0
    schema_ok: int = 0
    truncated: int = 0
    seconds: float = 0.0
    completion_tokens: int = 0
    scores: list[list[float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        groups = self.scores
        spread = sum(1 for g in groups if len(set(g)) > 1)
        flat = [s for g in groups for s in g]
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "completions": self.completions,
            "json_rate": round(self.json_ok / max(1, self.completions), 3),
            "card_rate": round(self.card_ok / max(1, self.completions), 3),
            "schema_rate": round(self.schema_ok / max(1, self.completions), 3),
            "truncated_rate": round(self.truncated / max(1, self.completions), 3),
            "mean_score": round(statistics.fmean(flat), 3) if flat else None,
            "groups_with_spread": f"{spread}/{len(groups)}",
            "mean_within_group_std": round(
                statistics.fmean(statistics.pstdev(g) for g in groups), 3
            )
            if groups
            else None,
            "s_per_completion": round(self.seconds / max(1, self.completions), 2),
            "tokens_per_s": round(self.completion_tokens / max(1e-9, self.seconds), 1),
            "mean_completion_tokens": round(self.completion_tokens / max(1, self.completions), 1),
        }


def run_sampling(args: argparse.Namespace) -> dict[str, Any]:
    import openai

    from metric_cards.catalog import SYSTEM_PROMPT, TrainingPrompts
    from metric_cards.local_server import EmbeddedServer

    score_completion = _scorer()
    prompts = TrainingPrompts(args.seed)
    requests = [next(prompts) for _ in range(args.prompts)]
    # llama-cpp-python's own sampling knobs; when absent the server uses its defaults
    # (repeat_penalty 1.1, top_k 40, min_p 0.05).
    extras = {"repeat_penalty": args.repeat_penalty, "top_k": args.top_k, "min_p": args.min_p}
    extra_body = {k: v for k, v in extras.items() if v is not None} or None
    results: list[SamplingResult] = []
    dump = open(args.dump, "w", encoding="utf-8") if args.dump else None  # noqa: SIM115
    started = time.monotonic()
    with EmbeddedServer(args.model) as server:
        load_s = server.load_seconds
        client = openai.OpenAI(base_url=server.base_url, api_key="x", timeout=300)
        for temperature in args.temperatures:
            res = SamplingResult(temperature=temperature, top_p=args.top_p)
            for request in requests:
                messages = [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": request.prompt},
                ]
                group: list[float] = []
                for _ in range(args.group_size):  # the server ignores n: one request each
                    t0 = time.monotonic()
                    reply = client.chat.completions.create(
                        model=server.model_name,
                        messages=messages,
                        temperature=temperature,
                        top_p=args.top_p,
                        max_tokens=args.max_tokens,
                        extra_body=extra_body,
                    )
                    res.seconds += time.monotonic() - t0
                    choice = reply.choices[0]
                    text = choice.message.content or ""
                    res.completions += 1
                    res.completion_tokens += reply.usage.completion_tokens
                    res.truncated += choice.finish_reason == "length"
                    value, repaired = _extract(text)
                    json_ok = isinstance(value, dict) and not repaired
                    card_ok = json_ok and _is_basic_card(value)
                    res.json_ok += json_ok
                    res.card_ok += card_ok
                    res.schema_ok += card_ok and _is_schema_card(value)
                    if score_completion is not None:
                        score = _score_value(score_completion(text, request, choice.finish_reason))
                    else:
                        score = proxy_score(value, repaired)
                    group.append(round(score, 4))
                    if dump is not None:
                        row = {
                            "temperature": temperature,
                            "prompt": request.prompt,
                            "completion": text,
                            "finish_reason": choice.finish_reason,
                            "layers": {"json": json_ok, "card": card_ok},
                            "score": score,
                        }
                        dump.write(json.dumps(row, ensure_ascii=False) + "\n")
                res.scores.append(group)
            results.append(res)
            print(json.dumps(res.summary()), flush=True)
    if dump is not None:
        dump.close()
    return {
        "benchmark": "sampling",
        "machine": machine(),
        "model": server.model_path,
        "server_load_seconds": round(load_s or 0.0, 2),
        "scorer": "metric_cards.reward.score_completion" if score_completion else "proxy_score",
        "prompts": args.prompts,
        "group_size": args.group_size,
        "max_tokens": args.max_tokens,
        "server_sampling_extras": extra_body or "server defaults",
        "wall_seconds": round(time.monotonic() - started, 1),
        "results": [r.summary() for r in results],
    }


# ---------------------------------------------------------------------------------------- env


def run_env(args: argparse.Namespace) -> dict[str, Any]:
    out_dir = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    rollouts = out_dir / "rollouts.jsonl"
    cmd = [
        sys.executable,
        str(REPO / "metric_card_generator.py"),
        "process",
        "--env.total_steps",
        str(args.steps),
        "--env.group_size",
        str(args.group_size),
        "--env.data_path_to_save_groups",
        str(rollouts),
        *args.extra,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    started = time.monotonic()
    ready_at = None
    lines: list[str] = []
    with subprocess.Popen(
        cmd, cwd=out_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if ready_at is None and "Embedded server ready" in line:
                ready_at = time.monotonic()
        code = proc.wait()
    ended = time.monotonic()
    if code != 0:
        sys.stderr.write("".join(lines[-40:]))
        raise SystemExit(f"process exited {code}")
    groups = [json.loads(x) for x in rollouts.read_text().splitlines() if x.strip()]
    completions = sum(len(g.get("scores") or []) for g in groups)
    work_s = ended - (ready_at or started)
    return {
        "benchmark": "env",
        "machine": machine(),
        "command": " ".join(cmd[1:]),
        "groups": len(groups),
        "completions": completions,
        "wall_seconds": round(ended - started, 1),
        "startup_seconds": round((ready_at or started) - started, 1),
        "seconds_per_group": round(work_s / max(1, len(groups)), 2),
        "completions_per_second": round(completions / max(1e-9, work_s), 3),
        "rollouts": str(rollouts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sampling", help="validity and spread by temperature, against the server")
    s.add_argument("--temperatures", type=float, nargs="+", default=[0.2, 0.3, 0.5])
    s.add_argument("--top-p", type=float, default=1.0)
    s.add_argument(
        "--repeat-penalty",
        type=float,
        default=None,
        help="llama.cpp sampling extra (server default 1.1 when not sent)",
    )
    s.add_argument("--top-k", type=int, default=None, help="server default 40 when not sent")
    s.add_argument("--min-p", type=float, default=None, help="server default 0.05 when not sent")
    s.add_argument("--prompts", type=int, default=20)
    s.add_argument("--group-size", type=int, default=4)
    s.add_argument("--max-tokens", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--model", default=None, help="GGUF path (default: the embedded model)")
    s.add_argument("--json", default=None, help="also write the report to this file")
    s.add_argument("--dump", default=None, help="write every completion (JSONL) to this file")
    e = sub.add_parser("env", help="metric_card_generator.py process, end to end")
    e.add_argument("--steps", type=int, default=4)
    e.add_argument("--group-size", type=int, default=4)
    e.add_argument("--json", default=None, help="also write the report to this file")
    e.add_argument("extra", nargs="*", help="more CLI flags for process (after --)")
    args = parser.parse_args(argv)
    report = run_sampling(args) if args.mode == "sampling" else run_env(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
