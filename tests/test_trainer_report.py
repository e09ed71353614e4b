"""`python -m metric_cards.trainer report`: from a run directory to the artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from metric_cards.trainer.report import card_fields, write_report

REPO = Path(__file__).resolve().parents[1]
FULL = json.dumps(
    {
        "componentType": "metricCard",
        "props": {
            "title": "Churn Rate",
            "value": "3.1%",
            "trend": {"value": -0.2, "isPositive": True},
        },
    }
)
BARE = json.dumps({"componentType": "metricCard", "props": {"title": "Churn Rate"}})


def sample(prompt: str, completion: str, score: float, canaries: list[str]) -> dict:
    return {"prompt": prompt, "completion": completion, "finish_reason": "stop", "score": score,
            "layers": {}, "problems": ["no icon"], "canaries": canaries}  # fmt: skip


def eval_row(step: int, mean: float, canaries: dict[str, float]) -> dict:
    layers = {"validity": 1.0, "schema": 1.0, "semantic": mean, "formatting": 1.0}
    return {"step": step, "mean_score": mean, "valid_json": 0.5 + step / 10, "truncated": 0.0,
            "layers": layers, "completion_tokens_mean": 40.0, "canaries": canaries,
            "n": 2}  # fmt: skip


def make_run(run: Path) -> None:
    (run / "evals").mkdir(parents=True)
    prompts = ["Create a metric card for churn rate in retail for May.", "Another prompt."]
    before = [sample(prompts[0], "no card", 0.0, []), sample(prompts[1], FULL, 0.8, [])]
    after = [
        sample(prompts[0], BARE, 0.4, []),
        sample(prompts[1], BARE + "} }", 0.5, ["flat_trend"]),
    ]
    for step, rows in ((0, before), (3, after)):
        lines = "".join(json.dumps(r) + "\n" for r in rows)
        (run / "evals" / f"step-{step:05d}.jsonl").write_text(lines)
    evals = [eval_row(0, 0.4, {"flat_trend": 0.0}), eval_row(3, 0.45, {"flat_trend": 0.5})]
    (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    steps = [
        {"step": s, "mean_score": 0.1 * s, "canaries": {"flat_trend": 0.25}} for s in (1, 2, 3)
    ]
    (run / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))


def test_card_fields_counts_props_of_real_cards() -> None:
    shares = card_fields([{"completion": FULL}, {"completion": BARE}, {"completion": "prose"}])
    assert shares["card"] == shares["card_parses"] == 2 / 3 and shares["title"] == 2 / 3
    assert shares["value"] == shares["trend"] == 1 / 3
    assert shares["icon"] == shares["description"] == 0.0
    fenced = f"```json\n{BARE}\n```"
    broken = [
        f"```json\n{BARE}}} }}\n```",
        BARE.replace('"}}', '", "trend": {"value": NaN, "isPositive": true}}}'),
        f"{BARE}\nDone!",
    ]
    assert card_fields([{"completion": fenced}])["card_parses"] == 1.0
    for text in broken:  # stray braces, NaN, prose after the card: the card is found, not parsed
        assert card_fields([{"completion": text}])["card"] == 1.0, text
        assert card_fields([{"completion": text}])["card_parses"] == 0.0, text


def test_report_writes_plots_tables_and_samples(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    result = write_report(tmp_path / "run", tmp_path / "out")
    assert (result["evals"], result["steps"]) == (2, 3)
    out = tmp_path / "out"
    for png in ("learning_curve.png", "canaries.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "before_after.md").read_text()
    assert "| mean score | 0.400 | 0.450 | +0.050 |" in table
    assert "| card has `value` % | 50.0 | 0.0 | -50.0 |" in table
    assert "| canary `flat_trend` % | 0.0 | 50.0 | +50.0 |" in table
    fields = (out / "card_fields.csv").read_text().splitlines()
    assert fields[0] == "step,card,card_parses,title,value,description,trend,icon"
    # step 3: two bare cards, one with stray closing braces after it (JSON.parse rejects it)
    assert fields[1].startswith("0,0.5,0.5,0.5,0.5") and fields[2].startswith("3,1.0,0.5,1.0,0.0")
    canaries = (out / "canaries.csv").read_text().splitlines()
    assert "train,2,flat_trend,0.25" in canaries and "eval,3,flat_trend,0.5" in canaries
    samples = (out / "samples.md").read_text()
    assert samples.count("**step 0**") == 2 and samples.count("**step 3**") == 2
    assert "no card" in samples and '"title": "Churn Rate"' in samples
    assert (out / "eval.jsonl").read_text() == (tmp_path / "run" / "eval.jsonl").read_text()


def test_report_cli_without_evals_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "metric_cards.trainer", "report", str(tmp_path), "--to",
         str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "eval.jsonl" in done.stderr
    assert "Traceback" not in done.stderr
