"""Shared fixtures: paths, the corpus, a locally trained tokenizer, the fake OpenAI server, and a
runner for the env's CLI as a real subprocess.

tests/ is on sys.path (pyproject's pytest `pythonpath`), so helpers such as fake_openai and
tiny_tokenizer import by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer
from tiny_tokenizer import build_tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
# The 240 real DeepHermes-3 3B completions (tests/data/README.md says where they come from).
CORPUS = TESTS / "data" / "deephermes3_3b_metric_cards.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def corpus_rows() -> list[dict]:
    """The 240 real DeepHermes-3 3B completions of the corpus (read-only)."""
    with CORPUS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from metric_cards.catalog import SYSTEM_PROMPT, TEMPLATES

    corpus = [SYSTEM_PROMPT] * 4 + list(TEMPLATES) * 4
    corpus += CORPUS.read_text(encoding="utf-8").splitlines()[:60]
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny_tokenizer"), corpus)


@pytest.fixture()
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def env_subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_MODE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_env(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run `python metric_card_generator.py ARGS` in `cwd` and return the finished process."""
    return subprocess.run(
        [sys.executable, str(REPO / "metric_card_generator.py"), *args],
        cwd=cwd,
        env=env_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_score_cli(rows: list[dict]) -> list[dict]:
    """Score rows with `python -m metric_cards score -`: what the CLI says for each completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "metric_cards", "score", "-"],
        input="".join(json.dumps(r) + "\n" for r in rows),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env_subprocess_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="session")
def env_runner():
    return run_env
