"""`process` and `evaluate` end to end, against the fake OpenAI server over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, env_subprocess_env, run_score_cli
from transformers import AutoTokenizer

from metric_cards.catalog import SYSTEM_PROMPT, eval_requests, parse_request

LAYERS = {"validity", "schema", "semantic", "formatting"}


def process_args(out: Path, server_url: str, tokenizer: Path, groups: int, k: int) -> list[str]:
    return [
        "process",
        "--env.total_steps", str(groups),
        "--env.group_size", str(k),
        "--env.data_path_to_save_groups", str(out),
        "--env.tokenizer_name", str(tokenizer),
        "--openai.base_url", server_url,
        "--openai.model_name", "fake-metric-model",
    ]  # fmt: skip


def read_groups(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_process_writes_scored_groups_with_correct_masks(
    tmp_path, fake_server, tiny_tokenizer_dir, env_runner
):
    out = tmp_path / "out" / "rollouts.jsonl"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    proc = env_runner(process_args(out, fake_server.base_url, tiny_tokenizer_dir, 3, 4), workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    groups = read_groups(out)
    assert len(groups) == 3
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    cli_rows = []
    for group in groups:
        assert len(group["tokens"]) == len(group["masks"]) == len(group["scores"]) == 4
        block = group["metric_card"]
        request = block["request"]
        assert parse_request(request["prompt"]).metric == request["metric"]
        assert len(block["rollouts"]) == 4
        for i in range(4):
            tokens, masks, messages = group["tokens"][i], group["masks"][i], group["messages"][i]
            rollout = block["rollouts"][i]
            assert [m["role"] for m in messages] == ["system", "user", "assistant"]
            assert messages[0]["content"] == SYSTEM_PROMPT
            assert messages[1]["content"] == request["prompt"]
            assert len(tokens) == len(masks)
            # prompt masked, completion kept as its own token ids, nothing in between
            n_prompt = next(j for j, m in enumerate(masks) if m != -100)
            assert all(m == -100 for m in masks[:n_prompt])
            assert masks[n_prompt:] == tokens[n_prompt:]
            assert tokenizer.decode(tokens[:n_prompt]).endswith("<|im_start|>assistant\n")
            completion = tokenizer.decode(tokens[n_prompt:])
            if rollout["finish_reason"] == "length":
                assert end_of_turn not in tokens[n_prompt:]  # never teach a fake end of turn
                assert completion == messages[2]["content"]
            else:
                assert completion == messages[2]["content"] + "<|im_end|>\n"
            assert rollout["completion_tokens"] == len(tokens) - n_prompt
            assert set(rollout["layers"]) == LAYERS
            assert 0.0 <= group["scores"][i] <= 1.0
            assert rollout["score"] == rollout["base_score"] == group["scores"][i]
            assert rollout["adjustments"] == {}
            cli_rows.append(
                {
                    "prompt": messages[1]["content"],
                    "completion": messages[2]["content"],
                    "finish_reason": rollout["finish_reason"],
                }
            )
    # The trainer's score for a completion is exactly what the score CLI says for it.
    scored = run_score_cli(cli_rows)
    env_scores = [s for g in groups for s in g["scores"]]
    env_layers = [r["layers"] for g in groups for r in g["metric_card"]["rollouts"]]
    assert [row["score"] for row in scored] == env_scores
    assert [row["layers"] for row in scored] == env_layers
    # a mix of good and bad completions gives a real spread, not random numbers
    assert max(env_scores) > 0.8 and min(env_scores) < 0.3
    assert len({r["finish_reason"] for g in groups for r in g["metric_card"]["rollouts"]}) == 2

    html = out.with_suffix(".html")
    assert html.exists() and html.stat().st_size > 1000
    assert "<script>alert" not in html.read_text(encoding="utf-8")
    assert "valid JSON" in proc.stdout and str(out) in proc.stdout  # the summary
    assert "wandb: no API key found" in proc.stdout
    assert list(workdir.iterdir()) == []  # no side files in the working directory
    assert sorted(p.name for p in out.parent.iterdir()) == ["rollouts.html", "rollouts.jsonl"]
    sent = fake_server.requests[0]
    assert sent["n"] == 4 and sent["messages"][0]["content"] == SYSTEM_PROMPT


def test_evaluate_writes_metrics_and_samples(tmp_path, fake_server, tiny_tokenizer_dir, env_runner):
    evals = tmp_path / "evals"
    proc = env_runner(
        [
            "evaluate",
            "--env.data_dir_to_save_evals",
            str(evals),
            "--env.eval_size",
            "6",
            "--env.tokenizer_name",
            str(tiny_tokenizer_dir),
            "--openai.base_url",
            fake_server.base_url,
            "--openai.model_name",
            "fake-metric-model",
        ],  # fmt: skip
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((evals / "metrics.json").read_text())["results"]["all"]
    samples = [json.loads(x) for x in (evals / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    assert {s["prompt"] for s in samples} == {r.prompt for r in eval_requests(6)}
    assert metrics["eval/rollouts"] == 6
    mean = sum(s["score"] for s in samples) / 6
    assert abs(metrics["eval/mean_score"] - mean) < 1e-9
    for layer in LAYERS:
        expected = sum(s["layers"][layer] for s in samples) / 6
        assert abs(metrics[f"eval/{layer}_mean"] - expected) < 1e-9
    assert all(r["temperature"] == 0.0 and r.get("n", 1) == 1 for r in fake_server.requests)


def test_dead_server_fails_fast_with_a_clear_error(tmp_path, tiny_tokenizer_dir, env_runner):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, f"http://127.0.0.1:{port}/v1", tiny_tokenizer_dir, 2, 2)
    started = time.monotonic()
    proc = env_runner([*args, "--env.server_startup_timeout", "3"], tmp_path, timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert "not reachable" in proc.stderr and f"127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 45
    assert not out.exists()  # no empty output left behind


def test_server_failing_mid_run_stops_with_error(
    tmp_path, fake_server, tiny_tokenizer_dir, env_runner
):
    fake_server.fail_next = [500] * 1000
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 2, 2)
    extra = ["--env.request_timeout", "4", "--env.max_consecutive_failures", "2"]
    started = time.monotonic()
    proc = env_runner([*args, *extra], tmp_path, timeout=90)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "requests in a row failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60
    assert not out.exists()


def test_data_scripts_read_what_process_wrote(
    tmp_path, fake_server, tiny_tokenizer_dir, env_runner
):
    """The three data scripts on a file written by `process` (not a hand-made fixture)."""
    out = tmp_path / "rollouts.jsonl"
    proc = env_runner(process_args(out, fake_server.base_url, tiny_tokenizer_dir, 4, 4), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = read_groups(out)
    rollouts = [
        (g["messages"][i][1]["content"], g["messages"][i][2]["content"], g["scores"][i])
        for g in groups
        for i in range(4)
    ]

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / script), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env_subprocess_env(),
            timeout=120,
        )

    extracted = tmp_path / "extracted.jsonl"
    res = run("extract_metric_training.py", str(out), str(extracted), "--score_threshold", "0.5")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in extracted.read_text().splitlines()]
    expected = [(p, c) for p, c, s in rollouts if s > 0.5]
    assert [(r["prompt"], r["completion"]) for r in rows] == expected

    training = tmp_path / "training.jsonl"
    res = run("trainingDataScript.py", str(out), str(training), "--score_threshold", "0.5")
    assert res.returncode == 0, res.stderr
    kept = [json.loads(line) for line in training.read_text().splitlines()]
    assert kept and all("```" not in r["completion"] for r in kept)
    for row in kept:
        card = json.loads(row["completion"])
        assert card["componentType"] == "metricCard"
    assert (tmp_path / "metric_training_high_quality.jsonl").exists()

    res = run("show_score_distribution.py", str(out))
    assert res.returncode == 0, res.stderr
    assert f"{len(rollouts)}" in res.stdout
    mean = sum(s for _, _, s in rollouts) / len(rollouts)
    assert f"{mean:.3f}" in res.stdout or f"{mean:.4f}" in res.stdout


def test_server_that_ignores_n_gets_one_request_per_completion(
    tmp_path, tiny_tokenizer_dir, env_runner
):
    from fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(honour_n=False) as server:
        out = tmp_path / "rollouts.jsonl"
        args = process_args(out, server.base_url, tiny_tokenizer_dir, 2, 3)
        proc = env_runner([*args, "--openai.n_kwarg_is_ignored", "true"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        groups = read_groups(out)
        assert [len(g["scores"]) for g in groups] == [3, 3]
        assert len(server.requests) == 6  # 2 groups x 3, each n=1: nothing sent twice
        assert all(r.get("n", 1) == 1 for r in server.requests)
