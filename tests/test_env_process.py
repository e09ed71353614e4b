"""`process` and `evaluate` end to end, against the fake OpenAI server over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, env_subprocess_env, run_score_cli
from transformers import AutoTokenizer

from metric_cards import run_stats
from metric_cards.catalog import SYSTEM_PROMPT, TrainingPrompts, eval_requests, parse_request

LAYERS = set(run_stats.LAYERS)


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


def test_same_file_at_concurrency_1_and_4(tmp_path, fake_server, tiny_tokenizer_dir, env_runner):
    """Groups are written in step order with per-step seeds: the file does not depend on how
    many groups were in flight. Two failed steps are skipped at the same place in both runs."""
    fake_server.delay = 0.05
    fake_server.fail_seeds = {3 * 2, 3 * 5}  # steps 2 and 5 fail whenever they are asked
    files = []
    for concurrency in (1, 4):
        fake_server.requests.clear()
        out = tmp_path / f"c{concurrency}.jsonl"
        args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 8, 3)
        extra = ["--env.process_concurrency", str(concurrency), "--env.request_timeout", "3"]
        proc = env_runner([*args, *extra], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"{concurrency} group(s) in flight" in proc.stdout
        files.append(out.read_bytes())
        # seed = step x K; failed steps were retried, the others asked once
        asked = {r["seed"] for r in fake_server.requests}
        assert asked == {3 * i for i in range(10)}
        assert (
            len(fake_server.requests) - 10
            == sum(r["seed"] in fake_server.fail_seeds for r in fake_server.requests) - 2
        )
    assert files[0] == files[1]
    groups = [json.loads(line) for line in files[0].decode().splitlines()]
    stream = TrainingPrompts(0)
    prompts = [next(stream).prompt for _ in range(10)]
    written = [g["metric_card"]["request"]["prompt"] for g in groups]
    assert written == [prompts[i] for i in (0, 1, 3, 4, 6, 7, 8, 9)]  # steps 2 and 5 skipped


def test_concurrency_keeps_requests_in_flight(
    tmp_path, fake_server, tiny_tokenizer_dir, env_runner
):
    fake_server.delay = 0.5
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 8, 2)
    started = time.monotonic()
    proc = env_runner([*args, "--env.process_concurrency", "8"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_groups(out)) == 8
    answered = sorted(fake_server.answered_at.values())
    # All 8 requests were answered within one latency of each other, not 0.5 s apart.
    assert answered[-1] - answered[0] < 0.45, answered
    assert time.monotonic() - started < 120


def test_failed_step_order_and_failure_limit_do_not_depend_on_concurrency(
    tmp_path, fake_server, tiny_tokenizer_dir, env_runner
):
    """Every request fails: at concurrency 4 the run still stops after exactly
    max_consecutive_failures steps in step order, with no file."""
    fake_server.fail_next = [400] * 1000
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 6, 2)
    extra = ["--env.process_concurrency", "4", "--env.max_consecutive_failures", "2"]
    extra += ["--env.request_timeout", "3"]
    proc = env_runner([*args, *extra], tmp_path, timeout=90)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "error: 2 requests in a row failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (500, "HTTP 500 from http://127.0.0.1:{port}/v1/chat/completions"),
        ("not-json", "the body from http://127.0.0.1:{port}/v1/chat/completions was not JSON"),
        ("no-choices", "the answer had no choices (http://127.0.0.1:{port}/v1/chat/completions)"),
        ("null-message", 'a choice had "message": null (http://127.0.0.1:{port}/v1/chat/'),
        ("reset", "connection reset: http://127.0.0.1:{port}/v1/chat/completions closed"),
    ],
)
def test_failed_requests_say_what_the_server_did(
    tmp_path, fake_server, tiny_tokenizer_dir, env_runner, fault, expected
):
    fake_server.fail_next = [fault] * 1000
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 2, 2)
    extra = ["--env.request_timeout", "3", "--env.max_consecutive_failures", "1"]
    proc = env_runner([*args, *extra], tmp_path, timeout=90)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert expected.format(port=fake_server.port) in errors[0]
    assert "RetryError" not in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def lone_surrogates(prompt: str, index: int) -> tuple[str, str]:
    from fake_openai import good_card

    text = json.dumps(good_card(prompt), indent=2)
    return text.replace('"value": "', '"value": "\ud800', 1) + "\udfff tail", "stop"


def test_lone_surrogates_do_not_stop_process(tmp_path, tiny_tokenizer_dir, env_runner):
    from fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(completion_fn=lone_surrogates) as server:
        out = tmp_path / "rollouts.jsonl"
        proc = env_runner(process_args(out, server.base_url, tiny_tokenizer_dir, 2, 2), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    groups = read_groups(out)  # valid JSON lines: the surrogates are written as \ud800 escapes
    assert len(groups) == 2
    completion = groups[0]["messages"][0][2]["content"]
    assert "\ud800" in completion and completion.endswith("\udfff tail")
    assert b"\\ud800" in out.read_bytes()
    for group in groups:
        assert all(
            len(t) == len(m) > 0 for t, m in zip(group["tokens"], group["masks"], strict=True)
        )


def test_start_header_is_short_and_verbose_prints_the_config(
    tmp_path, fake_server, tiny_tokenizer_dir, env_runner
):
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 1, 2)
    proc = env_runner(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before_summary = proc.stdout.split("MetricCardEnv process summary")[0]
    assert "1 groups x 2 completions, temperature 0.5, seed 0" in before_summary
    assert f"model:    fake-metric-model (server at {fake_server.base_url})" in before_summary
    assert f"rollouts: {out}" in before_summary
    assert "max_consecutive_failures" not in proc.stdout
    assert len(before_summary.splitlines()) < 12
    verbose = env_runner([*args, "--verbose"], tmp_path)
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "max_consecutive_failures=3" in verbose.stdout


def test_cli_config_errors_are_one_line(tmp_path, fake_server, tiny_tokenizer_dir, env_runner):
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 1, 2)
    proc = env_runner([*args, "--env.temperature", "-0.5"], tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: invalid configuration: --env.temperature: Input should be greater than or "
        "equal to 0 (got '-0.5')"
    ]
    yaml_path = tmp_path / "bad.yaml"
    yaml_path.write_text("env:\n  group_size: 2\n  temperature: [0.5\n")
    proc = env_runner([*args, "--config", str(yaml_path)], tmp_path, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {yaml_path}: line 4, column 1: invalid YAML: expected ',' or ']', but got "
        "'<stream end>'"
    ]
    assert fake_server.requests == [] and not out.exists()
    # a negative seed is a seed: the first request carries it
    proc = env_runner([*args, "--env.seed", "-7"], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from metric_cards.sampling import request_seed

    assert fake_server.requests[0]["seed"] == request_seed(-7, 0, 2)
    assert "seed -7" in proc.stdout


@pytest.mark.parametrize("after", [0.5, "header"])
def test_ctrl_c_early_prints_no_traceback_and_leaves_no_file(
    tmp_path, fake_server, tiny_tokenizer_dir, after
):
    """SIGINT while Python is still importing, or while the first group is being sampled."""
    import signal

    fake_server.delay = 30.0
    out = tmp_path / "rollouts.jsonl"
    args = process_args(out, fake_server.base_url, tiny_tokenizer_dir, 2, 2)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "metric_card_generator.py"), *args],
        cwd=tmp_path, env=env_subprocess_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        if after == "header":
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("viewer:"):
                    break
            deadline = time.monotonic() + 60
            while not fake_server.requests and time.monotonic() < deadline:
                time.sleep(0.1)
            assert fake_server.requests, "no request reached the server"
        else:
            time.sleep(after)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (130, -signal.SIGINT), stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "interrupted" in stderr
    assert not out.exists()
