"""The process loop's guarantees, on a scripted env: step order whatever the concurrency, bounded
in-flight groups, the failure rule; the JSONL writer; describing failed requests."""

from __future__ import annotations

import asyncio
import json
import random
from types import SimpleNamespace
from typing import Any

import pytest

from metric_cards.io_utils import JsonlGroupWriter
from metric_cards.process_loop import Step, run_groups
from metric_cards.runtime import FatalEnvError
from metric_cards.sampling import (
    BadAnswerError,
    RequestFailedError,
    check_answer,
    describe_error,
    request_seed,
)


class ScriptedEnv:
    """Steps finish after a random delay; the steps in `failing` fail."""

    def __init__(self, failing: set[int] = frozenset(), limit: int = 3, seed: int = 0) -> None:
        self.config = SimpleNamespace(max_consecutive_failures=limit)
        self.failed_requests = 0
        self.next_index = 0
        self.failing = failing
        self.rng = random.Random(seed)
        self.running = 0
        self.most_running = 0
        self.committed: list[int] = []
        self.postprocessed: list[int] = []

    async def get_next_item(self) -> Step:
        step = Step(self.next_index, f"prompt {self.next_index}")
        self.next_index += 1
        return step

    async def sample_group(self, step: Step) -> list[Any]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.rng.random() * 0.02)
        finally:
            self.running -= 1
        if step.index in self.failing:
            raise RequestFailedError(f"step {step.index} failed")
        return [step.index]

    def group_for(self, step: Step, rollouts: list[Any]) -> dict[str, Any]:
        return {"step": step.index}

    async def postprocess_histories(self, group: dict[str, Any]) -> dict[str, Any]:
        self.postprocessed.append(group["step"])
        return group

    async def handle_send_to_api(self, group: dict[str, Any], item: Any = None, **kw: Any) -> None:
        assert kw == {"do_send_to_api": False, "abort_on_any_max_length_exceeded": False}
        self.committed.append(group["step"])

    async def wandb_log(self, metrics: Any = None) -> None:
        pass


@pytest.mark.parametrize("concurrency", [1, 2, 4, 16])
def test_steps_are_committed_in_order(concurrency):
    env = ScriptedEnv(failing={2, 5, 6}, seed=concurrency)
    assert asyncio.run(run_groups(env, 10, concurrency)) == 10
    expected = [i for i in range(13) if i not in {2, 5, 6}]
    assert env.committed == env.postprocessed == expected
    assert env.next_index == 13  # no prompt drawn beyond what the run needed
    assert env.failed_requests == 3
    assert env.most_running <= concurrency
    if concurrency > 1:
        assert env.most_running > 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_failure_limit_counts_steps_in_a_row_in_step_order(concurrency):
    env = ScriptedEnv(failing={1, 3, 4, 5, 6}, limit=3, seed=concurrency)
    with pytest.raises(FatalEnvError, match="3 requests in a row failed; last error: step 5"):
        asyncio.run(run_groups(env, 10, concurrency))
    assert env.committed == [0, 2]


def test_in_flight_steps_are_cancelled_on_a_fatal_error():
    env = ScriptedEnv(failing=set(range(100)), limit=2)
    with pytest.raises(FatalEnvError):
        asyncio.run(run_groups(env, 50, 8))
    assert env.running == 0


def test_writer_creates_its_file_on_the_first_group(tmp_path):
    path = tmp_path / "out.jsonl"
    writer = JsonlGroupWriter(path)
    writer.close()
    assert not path.exists()  # nothing written: no empty file left behind
    writer = JsonlGroupWriter(path)
    writer.write({"text": "café \ud800 end", "n": 1})
    writer.write({"text": "plain"})
    writer.close()
    raw = path.read_bytes()
    raw.decode("utf-8")  # valid UTF-8 throughout
    lines = raw.decode().splitlines()
    assert writer.lines == 2 and len(lines) == 2
    assert "\\ud800" in lines[0] and "caf\\u00e9" in lines[0]  # that line is ASCII-escaped
    assert json.loads(lines[0]) == {"text": "café \ud800 end", "n": 1}
    assert lines[1] == '{"text":"plain"}'


def test_request_seed_depends_on_run_step_and_choice():
    assert request_seed(0, 5, 4) == 20
    assert request_seed(0, 5, 4, choice=3) == 23
    assert request_seed(-7, 0, 2) != request_seed(7, 0, 2)
    assert all(0 <= request_seed(s, 10**9, 64) < 2**31 for s in (-(10**12), 0, 10**12))


def test_check_answer_rejects_what_is_not_a_chat_completion():
    ok = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="x"))])
    assert check_answer(ok) is ok
    for bad, message in [
        ("<html>", "the body was not JSON"),
        (SimpleNamespace(choices=[]), "the answer had no choices"),
        (SimpleNamespace(choices=None), "the answer had no choices"),
        (SimpleNamespace(choices=[SimpleNamespace(message=None)]), '"message": null'),
        (
            SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=[1]))]),
            "content was not a string",
        ),
    ]:
        with pytest.raises(BadAnswerError, match=message):
            check_answer(bad)


def test_describe_error_names_the_url():
    url = "http://127.0.0.1:1/v1/chat/completions"
    assert describe_error(BadAnswerError("the answer had no choices"), url) == (
        f"the answer had no choices ({url})"
    )
    assert describe_error(json.JSONDecodeError("x", "doc", 0), url) == (
        f"the body from {url} was not JSON"
    )
    assert describe_error(ValueError("odd"), url) == f"ValueError from {url}: odd"
