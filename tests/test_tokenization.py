"""Tokens and masks for the trainer, on the transformers version we run (5.x)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from metric_cards.tokenization import IGNORE_INDEX, ChatTokenizer

CARD = '{"componentType": "metricCard", "props": {"title": "Revenue", "value": "$1,200"}}'


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def conversation(answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You write metric cards."},
        {"role": "user", "content": "Create a metric card for revenue in retail for May."},
        {"role": "assistant", "content": answer},
    ]


def test_atroposlib_tokenize_for_trainer_is_broken_on_this_transformers(tokenizer):
    """Why we have our own: on transformers 5.x apply_chat_template returns a BatchEncoding,
    so atroposlib's 'tokens' are not token ids at all."""
    from atroposlib.utils.tokenize_for_trainer import tokenize_for_trainer

    try:
        out = tokenize_for_trainer(tokenizer, conversation(CARD))
    except Exception:  # also acceptable proof: it cannot even run
        return
    assert not all(isinstance(t, int) for t in out["tokens"])


def test_prompt_is_masked_and_completion_kept(tokenizer):
    chat = ChatTokenizer(tokenizer)
    out = chat.tokenize(conversation(CARD), finish_reason="stop")
    prompt_text = tokenizer.apply_chat_template(
        conversation(CARD)[:2], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    assert out.tokens[: len(prompt_ids)] == prompt_ids
    assert out.masks[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    completion = out.tokens[len(prompt_ids) :]
    assert out.masks[len(prompt_ids) :] == completion
    assert tokenizer.decode(completion) == CARD + "<|im_end|>\n"
    assert all(isinstance(t, int) for t in out.tokens)
    # same as the template's own full rendering, token for token
    full = tokenizer.apply_chat_template(conversation(CARD), tokenize=False)
    assert tokenizer.decode(out.tokens) == full


def test_truncated_completion_has_no_end_of_turn(tokenizer):
    chat = ChatTokenizer(tokenizer)
    cut = CARD[:40]
    out = chat.tokenize(conversation(cut), finish_reason="length")
    kept = [t for t, m in zip(out.tokens, out.masks, strict=True) if m != IGNORE_INDEX]
    assert tokenizer.decode(kept) == cut
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") not in kept
    assert out.completion_tokens == len(kept)


def test_prompt_tokens_are_shared_across_a_group(tokenizer):
    chat = ChatTokenizer(tokenizer)
    a = chat.tokenize(conversation(CARD))
    b = chat.tokenize(conversation("not json"))
    n = next(i for i, m in enumerate(a.masks) if m != IGNORE_INDEX)
    assert a.tokens[:n] == b.tokens[:n]
    assert len(chat._prompt_cache) == 1


def test_rejects_conversation_without_answer(tokenizer):
    with pytest.raises(ValueError, match="assistant"):
        ChatTokenizer(tokenizer).tokenize(conversation(CARD)[:2])


def test_segment_cached_prompt_encoding_equals_plain_encoding(tokenizer, corpus_rows):
    from metric_cards.groups import prompt_messages

    chat = ChatTokenizer(tokenizer)
    assert chat._special_split is not None
    for row in corpus_rows[:80]:
        text = chat.render(prompt_messages(row["prompt"]), generation_prompt=True)
        assert chat.encode_prompt(text) == chat.encode(text)
    assert chat._segment_cache  # the system prompt segment was reused
