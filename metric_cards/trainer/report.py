"""A run's results as artifacts: the learning curve and canary plots, a before/after table, before
and after completions for the same held-out prompts, and the raw eval/step logs.

    python -m metric_cards.trainer report RUN_DIR --to artifacts/grpo
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

SAMPLES = 10
CARD_FIELDS = ("title", "value", "description", "trend", "icon")


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def canary_table(steps: list[dict[str, Any]], evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (source, step, canary): the share of completions raising it."""
    names = sorted({n for row in [*steps, *evals] for n in row.get("canaries", {})})
    out = []
    for source, rows in (("train", steps), ("eval", evals)):
        for row in rows:
            for name in names:
                rate = row.get("canaries", {}).get(name, 0.0)
                out.append({"source": source, "step": row["step"], "canary": name, "rate": rate})
    return out


def _answer_parses(completion: str) -> bool:
    """The whole answer (inside its ``` fence, if fenced) is one JSON object that `JSON.parse`
    accepts: what a front end that parses the answer gets. Python's json also accepts NaN and
    Infinity, which JSON.parse rejects: refused here too."""
    text = completion.strip()
    if text.startswith("```"):
        first_newline = text.find("\n")
        end = text.rfind("```")
        if first_newline == -1 or end <= first_newline:
            return False
        text = text[first_newline + 1 : end]

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        return isinstance(json.loads(text, parse_constant=refuse), dict)
    except (ValueError, RecursionError):
        return False


def card_fields(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Share of completions that are a card (`componentType` "metricCard" with a `props`
    object), of those whose whole answer `JSON.parse` accepts as that card, and of completions
    whose card has each prop: what the cards say, not only their score (a policy can raise its
    score by leaving out what could be wrong)."""
    from metric_cards.extraction import extract_json

    counts = dict.fromkeys(("card", "card_parses", *CARD_FIELDS), 0)
    for sample in samples:
        card = extract_json(sample["completion"]).value
        if not isinstance(card, dict) or card.get("componentType") != "metricCard":
            continue
        props = card.get("props")
        if not isinstance(props, dict):
            continue
        counts["card"] += 1
        counts["card_parses"] += _answer_parses(sample["completion"])
        for name in CARD_FIELDS:
            counts[name] += name in props
    total = max(1, len(samples))
    return {name: n / total for name, n in counts.items()}


def plot_learning_curve(
    evals: list[dict[str, Any]],
    steps: list[dict[str, Any]],
    path: Path,
    title: str = "GRPO on MetricCardEnv",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, score_ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    x = [e["step"] for e in evals]
    score_ax.plot(x, [e["mean_score"] for e in evals], "o-", color="tab:blue",
                  label="held-out mean score (temperature 0)")  # fmt: skip
    if steps:
        score_ax.plot([s["step"] for s in steps], [s["mean_score"] for s in steps], ".",
                      color="tab:blue", alpha=0.35, label="training batch mean score")  # fmt: skip
    score_ax.set_xlabel("GRPO step")
    score_ax.set_ylabel("mean score")
    score_ax.set_ylim(0, 1)
    valid_ax = score_ax.twinx()
    valid_ax.plot(x, [100 * e["valid_json"] for e in evals], "s--", color="tab:green",
                  label="held-out valid JSON %")  # fmt: skip
    valid_ax.set_ylabel("valid JSON %")
    valid_ax.set_ylim(0, 105)
    lines = score_ax.get_legend_handles_labels()
    more = valid_ax.get_legend_handles_labels()
    score_ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize=8)
    score_ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_canaries(table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), dpi=120, sharey=True)
    names = sorted({r["canary"] for r in table})
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    for ax, source in zip(axes, ("train", "eval"), strict=True):
        for name in names:
            points = [(r["step"], 100 * r["rate"]) for r in table
                      if r["source"] == source and r["canary"] == name]  # fmt: skip
            if points:
                ax.plot(*zip(*points, strict=True), "o-", label=name, markersize=3,
                        color=colours[name])  # fmt: skip
        ax.set_title("training rollouts (T > 0)" if source == "train" else "held-out eval (T = 0)")
        ax.set_xlabel("GRPO step")
        ax.set_ylim(-2, 100)
    axes[0].set_ylabel("% of completions raising the canary")
    if names:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=min(4, len(names)), fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.88))
    else:
        axes[0].text(0.5, 50, "no canary raised", ha="center")
        fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _metric_row(name: str, before: Any, after: Any, fmt: str) -> str:
    delta = after - before
    return f"| {name} | {format(before, fmt)} | {format(after, fmt)} | {delta:+{fmt}} |"


def before_after_table(
    first: dict[str, Any],
    last: dict[str, Any],
    fields: tuple[dict[str, float], dict[str, float]] | None = None,
) -> str:
    lines = [
        f"| held-out eval ({first['n']} prompts, temperature 0) | step {first['step']} | "
        f"step {last['step']} | change |",
        "| --- | --- | --- | --- |",
        _metric_row("mean score", first["mean_score"], last["mean_score"], ".3f"),
        _metric_row("valid JSON %", 100 * first["valid_json"], 100 * last["valid_json"], ".1f"),
        _metric_row("truncated %", 100 * first["truncated"], 100 * last["truncated"], ".1f"),
    ]
    for layer in ("validity", "schema", "semantic", "formatting"):
        lines.append(
            _metric_row(f"{layer} layer", first["layers"][layer], last["layers"][layer], ".3f")
        )
    lines.append(
        _metric_row(
            "completion tokens (mean)",
            first["completion_tokens_mean"],
            last["completion_tokens_mean"],
            ".0f",
        )
    )
    if fields is not None:
        lines.append(
            _metric_row(
                "is a metricCard %", 100 * fields[0]["card"], 100 * fields[1]["card"], ".1f"
            )
        )
        lines.append(
            _metric_row(
                "... whose whole answer JSON.parse accepts %",
                100 * fields[0]["card_parses"],
                100 * fields[1]["card_parses"],
                ".1f",
            )
        )
        for name in CARD_FIELDS:
            lines.append(
                _metric_row(
                    f"card has `{name}` %", 100 * fields[0][name], 100 * fields[1][name], ".1f"
                )
            )
    for name in sorted(set(first.get("canaries", {})) | set(last.get("canaries", {}))):
        before = 100 * first.get("canaries", {}).get(name, 0.0)
        after = 100 * last.get("canaries", {}).get(name, 0.0)
        lines.append(_metric_row(f"canary `{name}` %", before, after, ".1f"))
    return "\n".join(lines) + "\n"


def _fence(text: str) -> str:
    return "````\n" + text.replace("````", "` ` ` `").strip() + "\n````"


def samples_markdown(
    before: list[dict[str, Any]], after: list[dict[str, Any]], steps: tuple[int, int]
) -> str:
    by_prompt = {s["prompt"]: s for s in after}
    parts = [f"# {SAMPLES} held-out prompts: step {steps[0]} vs step {steps[1]}\n"]
    for index, old in enumerate(before[:SAMPLES], 1):
        new = by_prompt.get(old["prompt"])
        if new is None:
            continue
        parts.append(f"## {index}. {old['prompt']}\n")
        for label, sample in ((f"step {steps[0]}", old), (f"step {steps[1]}", new)):
            canaries = ", ".join(sample.get("canaries", [])) or "none"
            problems = "; ".join(sample.get("problems", [])[:4]) or "none"
            parts.append(
                f"**{label}** — score {sample['score']:.3f}, finish `{sample['finish_reason']}`, "
                f"canaries: {canaries}\n\n{_fence(sample['completion'])}\n\nproblems: {problems}\n"
            )
    return "\n".join(parts)


def write_report(run_dir: Path, to: Path) -> dict[str, Any]:
    evals = _rows(run_dir / "eval.jsonl")
    steps = _rows(run_dir / "steps.jsonl")
    if not evals:
        raise FileNotFoundError(f"{run_dir / 'eval.jsonl'}: no held-out eval yet")
    to.mkdir(parents=True, exist_ok=True)
    for name in ("eval.jsonl", "steps.jsonl", "config.json", "summary.json"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, to / name)
    table = canary_table(steps, evals)
    with (to / "canaries.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["source", "step", "canary", "rate"])
        writer.writeheader()
        writer.writerows(table)
    config = (
        json.loads((run_dir / "config.json").read_text())
        if (run_dir / "config.json").exists()
        else {}
    )
    model = Path(config["model"]).name if config.get("model") else "SmolLM2-135M-Instruct"
    plot_learning_curve(evals, steps, to / "learning_curve.png", f"{model}, GRPO on MetricCardEnv")
    plot_canaries(table, to / "canaries.png")
    first, last = evals[0], evals[-1]
    sample_dir = run_dir / "evals"
    before = _rows(sample_dir / f"step-{first['step']:05d}.jsonl")
    after = _rows(sample_dir / f"step-{last['step']:05d}.jsonl")
    fields = (card_fields(before), card_fields(after))
    (to / "before_after.md").write_text(before_after_table(first, last, fields))
    with (to / "card_fields.csv").open("w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["step", "card", "card_parses", *CARD_FIELDS])
        for row in evals:
            shares = card_fields(_rows(sample_dir / f"step-{row['step']:05d}.jsonl"))
            names = ("card", "card_parses", *CARD_FIELDS)
            rows.writerow([row["step"], *(round(shares[n], 4) for n in names)])
    (to / "samples.md").write_text(samples_markdown(before, after, (first["step"], last["step"])))
    for step_file in (sample_dir / f"step-{first['step']:05d}.jsonl",
                      sample_dir / f"step-{last['step']:05d}.jsonl"):  # fmt: skip
        if step_file.exists():
            shutil.copyfile(step_file, to / f"eval-samples-{step_file.name}")
    return {"first": first, "last": last, "evals": len(evals), "steps": len(steps)}
