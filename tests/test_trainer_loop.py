"""The whole loop through its CLI: real `run-api`, the env's real `serve`, the trainer; a tiny
model built here and the fake OpenAI server as the inference server (so no weight sync). Two
steps, a resume, and Ctrl-C leaving nothing running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import env_subprocess_env  # noqa: E402

from metric_cards.catalog import parse_request  # noqa: E402
from metric_cards.reward import score_completion  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    directory = tmp_path_factory.mktemp("tiny_model")
    LlamaForCausalLM(config).save_pretrained(str(directory))
    return directory


def trainer_command(out: Path, model: Path, tokenizer: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "metric_cards.trainer", "run",
        "--out", str(out),
        "--model", str(model),
        "--tokenizer", str(tokenizer),
        "--inference-url", url,
        "--served-model", "fake-metric-model",
        "--groups-per-step", "2",
        "--group-size", "4",
        "--eval-size", "6",
        "--eval-every", "1",
        "--lr", "1e-3",
        "--fp32",
        "--threads", "1",
        "--batch-timeout", "120",
        *extra,
    ]  # fmt: skip


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited but not been reaped yet
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def assert_all_stopped(out: Path) -> None:
    pids = json.loads((out / "processes.json").read_text())
    assert set(pids) == {"run-api", "env serve"}  # no llama.cpp with --inference-url
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [name for name, pid in pids.items() if alive(pid)]


def test_two_steps_through_run_api_then_resume(
    tmp_path, fake_server, tiny_model_dir, tiny_tokenizer_dir
) -> None:
    out = tmp_path / "run"
    command = trainer_command(out, tiny_model_dir, tiny_tokenizer_dir, fake_server.base_url)
    done = subprocess.run(
        [*command, "--steps", "2"], env=env_subprocess_env(), cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "step 2/2" in done.stdout
    assert_all_stopped(out)

    steps = rows(out / "steps.jsonl")
    assert [s["step"] for s in steps] == [1, 2]
    for step in steps:
        assert 0.0 <= step["mean_score"] <= 1.0 and 0.0 <= step["valid_json"] <= 1.0
        # the fake server's groups have spread: every step learned from some sequences
        assert step["learning_sequences"] > 0 and step["trained_tokens"] > 0
        assert step["train_s"] > 0 and step["sync_s"] == 0.0

    evals = rows(out / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 1, 2]
    samples = rows(out / "evals" / "step-00000.jsonl")
    assert len(samples) == evals[0]["n"] == 6
    for sample in samples:  # the env's own score for the env's own held-out prompts
        request = parse_request(sample["prompt"])
        assert request is not None
        expected = score_completion(sample["completion"], request, sample["finish_reason"])
        assert sample["score"] == pytest.approx(expected.score)
    assert evals[0]["mean_score"] == pytest.approx(sum(s["score"] for s in samples) / 6)

    # the trainer really received the env's groups through run-api and changed the weights
    from transformers import AutoModelForCausalLM

    checkpoint = torch.load(out / "checkpoint" / "checkpoint.pt", weights_only=False)
    assert checkpoint["step"] == 2
    initial = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).state_dict()
    assert any(not torch.equal(v, checkpoint["model"][k]) for k, v in initial.items())
    env_log = (out / "logs" / "env-serve.log").read_text()
    assert env_log.count("sent group") >= 4

    resumed = subprocess.run(
        [*command, "--steps", "3", "--resume"], env=env_subprocess_env(), cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resumed from step 2" in resumed.stdout
    assert [s["step"] for s in rows(out / "steps.jsonl")] == [1, 2, 3]
    assert [e["step"] for e in rows(out / "eval.jsonl")] == [0, 1, 2, 3]
    assert_all_stopped(out)


def test_ctrl_c_stops_everything(tmp_path, fake_server, tiny_model_dir, tiny_tokenizer_dir):
    out = tmp_path / "run"
    command = trainer_command(out, tiny_model_dir, tiny_tokenizer_dir, fake_server.base_url)
    log = (tmp_path / "trainer.log").open("wb")
    proc = subprocess.Popen(
        [*command, "--steps", "1000"], env=env_subprocess_env(), cwd=REPO,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not (out / "steps.jsonl").exists():
            assert proc.poll() is None, (tmp_path / "trainer.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no step within 180 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert "interrupted" in (tmp_path / "trainer.log").read_text()
    assert_all_stopped(out)
