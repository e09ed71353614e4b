"""The README's main job, for real: `process` with no server flags starts the embedded
SmolLM2-135M llama.cpp server, samples real completions, and stops the server at the end."""

from __future__ import annotations

import json
import re

import pytest
from embedded import require_embedded_model, server_pids
from transformers import AutoTokenizer

from metric_cards.gguf_tokenizer import tokenizer_dir_for_gguf

pytestmark = pytest.mark.slow  # about 2 minutes: the real model samples 8 completions


def test_process_with_the_embedded_model(tmp_path, env_runner):
    model_path = require_embedded_model()
    out = tmp_path / "runs" / "rollouts.jsonl"
    proc = env_runner(
        [
            "process",
            "--env.total_steps",
            "2",
            "--env.group_size",
            "4",
            "--env.data_path_to_save_groups",
            str(out),
        ],  # fmt: skip
        tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    ready = re.search(r"Embedded server ready at http://127\.0\.0\.1:(\d+)/v1", proc.stdout)
    assert ready, proc.stdout[-2000:]
    assert server_pids(int(ready.group(1))) == []  # the env stopped its server: no orphan

    groups = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(groups) == 2
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir_for_gguf(model_path))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    end_of_turn = tokenizer.encode("<|im_end|>\n", add_special_tokens=False)
    assert end_of_turn[0] == im_end and len(end_of_turn) == 2
    all_scores = []
    for group in groups:
        assert len(group["tokens"]) == len(group["masks"]) == len(group["scores"]) == 4
        for tokens, masks, messages, rollout in zip(
            group["tokens"],
            group["masks"],
            group["messages"],
            group["metric_card"]["rollouts"],
            strict=True,
        ):
            completion = messages[-1]["content"]
            assert completion.strip(), "the model returned an empty completion"
            n_prompt = next(i for i, m in enumerate(masks) if m != -100)
            assert masks[n_prompt:] == tokens[n_prompt:]
            assert tokenizer.decode(tokens[:n_prompt]).endswith("<|im_start|>assistant\n")
            kept = tokens[n_prompt:]
            if rollout["finish_reason"] == "length":
                assert im_end not in kept
            else:
                # the template's end of turn, once, at the very end
                assert kept[-2:] == end_of_turn and kept.count(im_end) == 1
            assert 0.0 <= rollout["score"] <= 1.0
            all_scores.append(rollout["score"])
    # completions were sampled independently (llama.cpp ignores n: the env asked 4 times)
    assert len({m[-1]["content"] for g in groups for m in g["messages"]}) > 2
    html = out.with_suffix(".html").read_text(encoding="utf-8")
    assert "metric" in html.lower() and len(html) > 2000
