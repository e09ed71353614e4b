"""`serve` end to end: real `run-api`, the fake OpenAI server and the env's `serve` command as
processes talking real HTTP on 127.0.0.1, with the test playing the trainer (POST /register, GET
/batch). Faults: API late, API killed and restarted, inference 500s and timeouts, a 5xx answered
after the API queued the group, two envs on one API, a YAML --config, and giving up in time."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, env_subprocess_env, run_score_cli
from fake_openai import FakeOpenAIServer
from serve_harness import (
    SENT_LINE,
    ApiProcess,
    EnvProcess,
    FaultProxy,
    Trainer,
    free_port,
    serve_args,
    wait_until,
    wandb_history,
)
from transformers import AutoTokenizer

from metric_cards.catalog import SYSTEM_PROMPT, TrainingPrompts
from metric_cards.serve_api import group_key

pytestmark = pytest.mark.slow

DOCS_YAML = REPO / "docs" / "serve.example.yaml"
DOCUMENTED_METRICS = {  # docs/serve.md, "What the env logs to wandb"
    "train/percent_valid_json",
    "train/mean_score",
    *(f"train/{layer}_mean" for layer in ("validity", "schema", "semantic", "formatting")),
    "train/within_group_score_std",
    "train/groups_without_score_spread",
    "train/groups_dropped_no_score_spread",
    "train/failed_requests",
    "train/completion_tokens_mean",
    "train/completion_tokens_max",
    "train/percent_truncated",
    "train/best_and_worst_rollouts",
    "train/groups_sent_to_api",
    "train/api_sends_uncertain",
    "train/api_reconnects",
}


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[ApiProcess]:
    server = ApiProcess(free_port(), tmp_path / "run-api.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def spawn_env(tmp_path: Path) -> Iterator[Any]:
    started: list[EnvProcess] = []

    def spawn(args: list[str], name: str = "env", **environ: str) -> EnvProcess:
        proc = EnvProcess(args, tmp_path / name, {**env_subprocess_env(), **environ}, name)
        started.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in started:
            proc.stop()


def finish(env: EnvProcess, trainer: Trainer, timeout: float = 90) -> None:
    """Keep training until the env has reached total_steps and exited, then take what is left."""
    try:
        trainer.poll_until(lambda: not env.running(), timeout, "the env to reach total_steps")
    except AssertionError as exc:
        tail = env.log()[-6000:]
        raise AssertionError(f"{exc}; {len(trainer.batches)} batches; env log:\n{tail}") from None
    while trainer.poll():
        pass
    assert env.wait(5) == 0, env.log()[-4000:]
    assert "Traceback" not in env.log(), env.log()[-4000:]


def check_group(group: dict[str, Any], group_size: int) -> None:
    """What a trainer relies on: K rollouts, matching shapes, prompt masked with -100 and the
    completion's mask equal to its tokens, scores in [0, 1] and not all equal."""
    tokens, masks, scores = group["tokens"], group["masks"], group["scores"]
    assert len(tokens) == len(masks) == len(scores) == group_size
    assert len(set(scores)) > 1  # ensure_scores_are_not_same is on in serve
    for seq, mask, score, messages in zip(tokens, masks, scores, group["messages"], strict=True):
        assert len(seq) == len(mask)
        n_prompt = next(i for i, m in enumerate(mask) if m != -100)
        assert n_prompt > 10 and len(seq) - n_prompt > 0
        assert all(m == -100 for m in mask[:n_prompt])
        assert mask[n_prompt:] == seq[n_prompt:]
        assert 0.0 <= score <= 1.0
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert messages[0]["content"] == SYSTEM_PROMPT


def assert_sent_equals_received(env_sent: list[tuple[int, str]], trainer: Trainer) -> None:
    """Every group the env logged as sent reached the trainer once; only a remainder smaller
    than one batch may still wait in the API's queue."""
    received = [group_key(g) for g in trainer.groups]
    assert not [k for k, n in Counter(received).items() if n > 1], "a group arrived twice"
    sent = [key for _, key in env_sent]
    assert len(set(sent)) == len(sent)
    assert set(received) <= set(sent)
    left_in_queue = trainer.queued_groups()
    assert len(sent) - len(received) == left_in_queue
    assert left_in_queue * len(trainer.groups[0]["tokens"]) < trainer.batch_size


def test_serve_feeds_the_trainer_through_run_api(
    tmp_path, api, fake_server, tiny_tokenizer_dir, spawn_env
):
    api.start()
    trainer = Trainer(api.url, batch_size=8)
    assert trainer.register()
    env = spawn_env(serve_args(api.url, fake_server.base_url, tiny_tokenizer_dir, total_steps=4))
    finish(env, trainer)

    assert len(trainer.batches) >= 4
    for batch in trainer.batches:
        assert sum(len(g["tokens"]) for g in batch) == 8  # batch_size sequences, whole groups
        for group in batch:
            check_group(group, 4)
            assert group["env_id"] == 0
            # how it was sampled, for the trainer's logprobs (atroposlib's example trainer
            # divides its logits by this temperature)
            assert group["generation_params"] == {
                "temperature": 0.5,
                "top_p": 1.0,
                "max_tokens": 256,
            }
    assert_sent_equals_received(env.sent(), trainer)
    summary = env.summary()
    assert summary["groups_sent"] == len(env.sent()) >= len(trainer.groups)
    assert summary["registrations"] == 1 and summary["sends_uncertain"] == 0
    assert all(r["n"] == 4 and r["messages"][0]["content"] == SYSTEM_PROMPT
               for r in fake_server.requests)  # fmt: skip
    # Reward options are off by default: the trainer's score is exactly the score CLI's.
    end_of_turn = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)).convert_tokens_to_ids(
        "<|im_end|>"
    )
    rows, expected = [], []
    for group in trainer.groups:
        for seq, mask, messages, score in zip(
            group["tokens"], group["masks"], group["messages"], group["scores"], strict=True
        ):
            completion_ids = [t for t, m in zip(seq, mask, strict=True) if m != -100]
            stopped = end_of_turn in completion_ids  # no end-of-turn token: cut at max_tokens
            rows.append(
                {
                    "prompt": messages[1]["content"],
                    "completion": messages[2]["content"],
                    "finish_reason": "stop" if stopped else "length",
                }
            )
            expected.append(score)
    assert {r["finish_reason"] for r in rows} == {"stop", "length"}
    assert [row["score"] for row in run_score_cli(rows)] == expected


def test_serve_waits_for_a_late_api_and_survives_a_restart(
    tmp_path, fake_server, tiny_tokenizer_dir, spawn_env
):
    api = ApiProcess(free_port(), tmp_path / "run-api.log")
    try:
        env = spawn_env(
            serve_args(api.url, fake_server.base_url, tiny_tokenizer_dir, total_steps=5)
        )
        wait_until(lambda: "waiting for a trainer" in env.log(), 60, "the env to wait")
        assert "cannot connect" in env.log() and env.running()

        api.start()  # the API comes up after the env
        trainer = Trainer(api.url, batch_size=4)  # one group per batch
        assert trainer.register()
        trainer.poll_until(lambda: len(trainer.batches) >= 2, 60, "batches from the first API")
        before = list(trainer.groups)

        api.kill()  # mid-run: queue, trainer and env registrations are lost
        wait_until(lambda: "lost the Atropos API" in env.log(), 30, "the env to notice")
        time.sleep(1.5)
        assert env.running()
        mark = len(env.log())
        api.start()
        trainer.poll_until(lambda: "resuming as env" in env.log()[mark:], 60, "the env to resume")
        assert "registering this env again" in env.log()[mark:]
        finish(env, trainer)
    finally:
        api.stop()

    after = trainer.groups[len(before) :]
    assert len(after) >= 5  # total_steps counted again on the restarted API
    for group in trainer.groups:
        check_group(group, 4)
    received = [group_key(g) for g in trainer.groups]
    assert len(set(received)) == len(received), "a group arrived twice"
    sent = {key for _, key in env.sent()}
    assert set(received) <= sent
    # every group the env sent after it re-registered reached the trainer
    resumed_at = env.log().index("resuming as env", mark)
    late = {m[3] for m in SENT_LINE.finditer(env.log()[resumed_at:])}
    assert late and late <= {group_key(g) for g in after}
    summary = env.summary()
    assert summary["registrations"] == 2 and summary["api_reconnects"] >= 1
    assert trainer.registrations == 2


def test_serve_keeps_going_through_inference_errors_and_timeouts(
    tmp_path, api, fake_server, tiny_tokenizer_dir, spawn_env
):
    api.start()
    trainer = Trainer(api.url, batch_size=4)
    assert trainer.register()
    fake_server.fail_next = [500] * 100_000  # the inference server is broken at first
    extra = ["--env.request_timeout", "2"]
    env = spawn_env(
        serve_args(api.url, fake_server.base_url, tiny_tokenizer_dir, total_steps=6, extra=extra)
    )

    def dropped() -> int:
        return env.log().count("dropping prompt")

    # atroposlib and the openai client retry; request_timeout bounds the whole group
    trainer.poll_until(lambda: dropped() >= 1, 60, "a prompt dropped while the server fails")
    assert len(fake_server.requests) >= 2  # retried before giving up
    assert not trainer.batches
    fake_server.fail_next = []  # recovers
    trainer.poll_until(lambda: len(trainer.batches) >= 2, 60, "batches after the 500s")

    fake_server.delay = 4  # now slower than request_timeout
    before = dropped()
    trainer.poll_until(lambda: dropped() > before, 60, "a prompt dropped on a timeout")
    n_before = len(trainer.batches)
    fake_server.delay = 0
    finish(env, trainer)

    assert len(trainer.batches) > n_before
    assert "no usable answer within 2s" in env.log()
    # the dropped prompts say what the server did, and where
    assert f"HTTP 500 from {fake_server.base_url}/chat/completions" in env.log()
    for group in trainer.groups:
        check_group(group, 4)
    assert_sent_equals_received(env.sent(), trainer)
    summary = env.summary()
    assert summary["failed_requests"] >= 2
    assert env.log().count("dropping prompt") == summary["failed_requests"]


def test_flat_groups_counted_5xx_sends_not_repeated_and_a_blip_needs_no_new_registration(
    tmp_path, api, tiny_tokenizer_dir, spawn_env
):
    api.start()
    trainer = Trainer(api.url, batch_size=4)
    assert trainer.register()
    with (
        FakeOpenAIServer(identical_every=3) as fake,  # every 3rd group: all scores equal
        FaultProxy(api.port, fail_after_forwarding=2) as proxy,  # queued, then answered 502
    ):
        args = serve_args(proxy.url, fake.base_url, tiny_tokenizer_dir, total_steps=6)
        env = spawn_env(args, WANDB_MODE="offline")  # a local wandb run we can read back
        trainer.poll_until(lambda: len(trainer.batches) >= 1, 60, "a first batch")
        proxy.unavailable = True  # the same API answers 503 for a while, then is back
        wait_until(lambda: "lost the Atropos API" in env.log(), 30, "the env to notice")
        time.sleep(1.5)
        proxy.unavailable = False
        finish(env, trainer)

    summary = env.summary()
    log = env.log()
    # groups without score spread: dropped, counted, logged with the running count
    dropped = summary["groups_dropped_no_score_spread"]
    assert dropped >= 1 and dropped <= fake.identical_answers
    assert log.count("whose scores are all equal") == dropped
    assert f"({dropped} so far)" in log
    for group in trainer.groups:
        check_group(group, 4)  # none of them is flat
    # ... and the count reaches wandb, next to the metrics docs/serve.md describes
    history = wandb_history(env.cwd)
    assert history
    prefix = "metric_card_generator_0_"  # atroposlib prefixes keys with the env's API name
    # (a table is stored as <key>/path, <key>/nrows, ...)
    logged = {"/".join(k.removeprefix(prefix).split("/")[:2]) for row in history for k in row}
    assert logged >= DOCUMENTED_METRICS, DOCUMENTED_METRICS - logged
    counts = [row[prefix + "train/groups_dropped_no_score_spread"] for row in history]
    assert counts == sorted(counts) and 1 <= counts[-1] <= dropped
    # the two groups answered 502 after being queued arrive once, and are not resent; nor are
    # groups POSTed during the blip (503: the env cannot tell whether the API queued them)
    assert proxy.failed_after_forwarding == 2
    uncertain = 2 + proxy.unavailable_scored_posts
    assert summary["sends_uncertain"] == uncertain
    assert log.count("not resending") == uncertain
    received = [group_key(g) for g in trainer.groups]
    assert len(set(received)) == len(received), "a group arrived twice"
    sent = [key for _, key in env.sent()]
    assert set(sent) <= set(received)
    assert len(received) == len(sent) + 2 == summary["groups_sent"] + 2
    # the blip: waited, resumed under the same registration (no stale twin in the API)
    assert "HTTP 503" in log and "resuming as env 0" in log
    assert "registering this env again" not in log
    assert summary["api_reconnects"] >= 1 and summary["registrations"] == 1
    assert proxy.scored_posts == summary["groups_sent"] + 2  # one POST per group, no retries


class JitteryServer(FakeOpenAIServer):
    """Answers after a random 20-400 ms, like a real server under load, so two envs' groups
    arrive interleaved rather than in bursts."""

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        time.sleep(random.uniform(0.02, 0.4))
        return super()._answer(body)


def test_two_envs_feed_one_api(tmp_path, api, tiny_tokenizer_dir, spawn_env):
    api.start()
    trainer = Trainer(api.url, batch_size=8, step_time=0.2)  # two groups per batch
    assert trainer.register()
    with JitteryServer() as fake:
        envs = {
            seed: spawn_env(
                serve_args(api.url, fake.base_url, tiny_tokenizer_dir, seed=seed, total_steps=16),
                name=f"env_seed{seed}",
            )
            for seed in (1, 2)
        }
        trainer.poll_until(lambda: not any(e.running() for e in envs.values()), 120, "both")
        while trainer.poll():
            pass

    env_of_seed: dict[int, int] = {}
    for seed, env in envs.items():
        assert env.wait(5) == 0, env.log()[-3000:]
        registered = [line for line in env.log().splitlines() if "registered with" in line]
        assert len(registered) == 1
        env_of_seed[seed] = int(registered[0].split(" as env ")[1].split()[0])
    assert sorted(env_of_seed.values()) == [0, 1]  # both registered, each with its own id

    seed_of_env = {env_id: seed for seed, env_id in env_of_seed.items()}
    streams = {}
    for seed in (1, 2):
        prompts = TrainingPrompts(seed)
        streams[seed] = {next(prompts).prompt for _ in range(500)}
    by_env: Counter[int] = Counter()
    for group in trainer.groups:
        check_group(group, 4)
        prompt = group["messages"][0][1]["content"]
        assert prompt in streams[seed_of_env[group["env_id"]]]  # that env's own prompt stream
        by_env[group["env_id"]] += 1
    assert by_env[0] >= 4 and by_env[1] >= 4
    mixed = [b for b in trainer.batches if len({g["env_id"] for g in b}) == 2]
    assert mixed, [[g["env_id"] for g in b] for b in trainer.batches]
    for env_id, env in ((env_of_seed[seed], env) for seed, env in envs.items()):
        assert all(e == env_id for e, _ in env.sent())
    assert_sent_equals_received([*envs[1].sent(), *envs[2].sent()], trainer)


def test_yaml_config_from_the_docs_with_two_inference_servers_and_overlong_penalty(
    tmp_path, api, tiny_tokenizer_dir, spawn_env
):
    """The example YAML in docs/ runs as is (only URLs and the tokenizer swapped for local
    ones); CLI flags override it; the overlong penalty lowers long completions' scores."""
    config = yaml.safe_load(DOCS_YAML.read_text())
    from atroposlib.envs.base import APIServerConfig

    from metric_card_generator import MetricCardEnvConfig

    assert set(config) <= {"env", "openai", "slurm", "testing"}
    assert set(config["env"]) <= set(MetricCardEnvConfig.model_fields)  # no silently ignored key
    assert isinstance(config["openai"], list) and len(config["openai"]) >= 2
    for server in config["openai"]:
        assert set(server) <= set(APIServerConfig.model_fields)

    api.start()
    trainer = Trainer(api.url, batch_size=8)
    assert trainer.register()
    with FakeOpenAIServer() as fake_a, FakeOpenAIServer() as fake_b:
        config["env"].update(
            rollout_server_url=api.url, tokenizer_name=str(tiny_tokenizer_dir), total_steps=3
        )
        config["openai"] = [
            {**config["openai"][0], "base_url": fake_a.base_url, "model_name": "fake-metric-model"},
            {**config["openai"][1], "base_url": fake_b.base_url, "model_name": "fake-metric-model"},
        ]  # fmt: skip
        path = tmp_path / "serve.yaml"
        path.write_text(yaml.safe_dump(config))
        overrides = [
            "--env.overlong_penalty", "true",
            "--env.max_completion_tokens", "128",
            "--env.overlong_buffer_tokens", "64",
            "--env.data_path_to_save_groups", str(tmp_path / "rollouts.jsonl"),
        ]  # fmt: skip
        env = spawn_env(["serve", "--config", str(path), *overrides])
        finish(env, trainer)
        assert fake_a.requests and fake_b.requests  # both inference servers were used

    for group in trainer.groups:
        check_group(group, config["env"]["group_size"])
    assert_sent_equals_received(env.sent(), trainer)
    # the JSONL copy carries the per-rollout record; the trainer got the adjusted scores
    written = [json.loads(line) for line in (tmp_path / "rollouts.jsonl").read_text().splitlines()]
    by_key = {group_key(g): g for g in written}
    penalised = 0
    for group in trainer.groups:
        record = by_key[group_key(group)]["metric_card"]["rollouts"]
        for score, rollout in zip(group["scores"], record, strict=True):
            assert score == rollout["score"]
            n = rollout["completion_tokens"]
            if n <= 128 - 64:
                assert rollout["adjustments"] == {} and score == rollout["base_score"]
            else:
                penalty = -0.5 * min(1.0, (n - 64) / 64)
                assert rollout["adjustments"] == {"overlong": pytest.approx(penalty)}
                assert score == pytest.approx(max(0.0, rollout["base_score"] + penalty))
                penalised += rollout["base_score"] > 0
    assert penalised >= 1


def test_serve_gives_up_after_api_wait_timeout(tmp_path, fake_server, tiny_tokenizer_dir):
    port = free_port()  # nobody listens
    args = serve_args(f"http://127.0.0.1:{port}", fake_server.base_url, tiny_tokenizer_dir)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "metric_card_generator.py"), *args,
         "--env.api_wait_timeout", "3"],
        cwd=tmp_path, env=env_subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "gave up waiting for a trainer" in proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "--env.api_wait_timeout" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 40


def test_serve_gives_up_when_the_api_stays_away_mid_run(
    tmp_path, api, fake_server, tiny_tokenizer_dir, spawn_env
):
    api.start()
    trainer = Trainer(api.url, batch_size=4)
    assert trainer.register()
    extra = ["--env.api_wait_timeout", "3"]
    env = spawn_env(
        serve_args(api.url, fake_server.base_url, tiny_tokenizer_dir, total_steps=50, extra=extra)
    )
    trainer.poll_until(lambda: len(trainer.batches) >= 2, 60, "batches")
    api.kill()
    killed = time.monotonic()
    assert env.wait(30) == 1
    waited = time.monotonic() - killed
    log = env.log()
    assert "lost the Atropos API" in log
    assert "error: gave up waiting for the Atropos API" in log and "to come back" in log
    assert "Traceback" not in log
    assert 3 <= waited < 15  # waited api_wait_timeout, then did not hang on held groups
    assert "serve finished:" in log  # the summary still comes out
