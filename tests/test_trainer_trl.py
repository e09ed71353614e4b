"""The reward and prompts for TRL users: `metric_cards.trl`, and one real GRPOTrainer step on
the CPU with a tiny model built here (no hub)."""

from __future__ import annotations

import json
import os

import pytest

from metric_cards.catalog import SYSTEM_PROMPT, eval_requests
from metric_cards.reward import score_completion
from metric_cards.trl import metric_card_dataset, metric_card_reward

REQUEST = eval_requests(1)[0]
CARD = json.dumps(
    {
        "componentType": "metricCard",
        "props": {
            "title": REQUEST.metric.title(),
            "value": "42",
            "description": f"{REQUEST.metric} for {REQUEST.domain}, {REQUEST.period}",
        },
    }
)


def test_reward_plain_and_conversational_match_the_env_score() -> None:
    expected = score_completion(CARD, REQUEST).score
    conversation = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": REQUEST.prompt},
    ]
    plain = metric_card_reward([CARD, "no json here"], prompts=[REQUEST.prompt] * 2)
    chat = metric_card_reward(
        [[{"role": "assistant", "content": CARD}]],
        prompts=[conversation],
        completion_ids=[[1, 2]],
        trainer_state=None,
    )
    with_system = metric_card_reward([CARD], prompts=[f"{SYSTEM_PROMPT}\n{REQUEST.prompt}"])
    assert plain == [expected, 0.0]
    assert chat == [expected] == with_system
    # without the prompt the request is unknown: a generic semantic check, another score
    assert metric_card_reward([CARD]) != [expected]
    with pytest.raises(ValueError, match="2 prompts for 1 completions"):
        metric_card_reward([CARD], prompts=[REQUEST.prompt] * 2)


def test_dataset_has_the_system_prompt_and_the_eval_split_is_held_out() -> None:
    train = metric_card_dataset(8, seed=3)
    assert len(train) == 8
    first = train[0]
    assert first["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert first["prompt"][1]["role"] == "user" and first["metric"] in first["prompt"][1]["content"]
    held_out = {r.prompt for r in eval_requests(64)}
    assert not {row["prompt"][1]["content"] for row in metric_card_dataset(200)} & held_out
    evals = metric_card_dataset(4, split="eval", conversational=False)
    assert evals[0]["prompt"] == f"{SYSTEM_PROMPT}\n{eval_requests(1)[0].prompt}"
    with pytest.raises(ValueError, match="split"):
        metric_card_dataset(1, split="test")


@pytest.mark.slow
def test_one_grpo_trainer_step_on_cpu(tmp_path, tiny_tokenizer_dir) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
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
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = LlamaForCausalLM(config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls: list[tuple[list, list]] = []

    def reward(completions, prompts=None, **kwargs):
        calls.append((completions, prompts))
        scores = metric_card_reward(completions, prompts, **kwargs)
        # The tiny random model writes no JSON (all 0): add a length term so the group has
        # spread and the step really updates the weights.
        return [s + len(c[-1]["content"]) / 1000 for s, c in zip(scores, completions, strict=True)]

    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        max_steps=1,
        learning_rate=1e-2,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=metric_card_dataset(8),
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.state.global_step == 1
    completions, prompts = calls[0]
    assert len(completions) == len(prompts) == 4
    assert completions[0][-1]["role"] == "assistant"  # conversational, as the dataset is
    assert prompts[0][0] == {"role": "system", "content": SYSTEM_PROMPT}
    logged = trainer.state.log_history[0]
    assert "reward" in logged
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert changed, "one GRPO step changed no weight"
