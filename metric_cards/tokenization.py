"""Tokens and loss masks for the trainer, correct on transformers 4.x and 5.x.

atroposlib's `tokenize_for_trainer` calls `apply_chat_template(chat)` and treats the result as a
list of ids. On transformers 5.x that call returns a dict-like `BatchEncoding`, so the "tokens"
become its keys, every group fails the length checks and is dropped silently. It also cannot
handle a truncated completion under templates whose end-of-turn marker is not the last token
(ChatML ends a turn with `<|im_end|>\\n`). Here we render the template to *text* (stable across
versions), split it at the generation prompt, and tokenize the two halves:

* prompt tokens: the template with `add_generation_prompt=True`, exactly what an OpenAI-compatible
  server renders and feeds the model; masked with -100.
* completion tokens: the assistant turn as the template writes it, including the end-of-turn
  marker when the model stopped by itself, and without it when `finish_reason == "length"`
  (the model never produced one, so the trainer must not be taught to). Kept in the mask as
  their token ids, which is atroposlib's convention.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass(frozen=True, slots=True)
class TokenizedRollout:
    tokens: list[int]
    masks: list[int]

    @property
    def completion_tokens(self) -> int:
        return sum(1 for m in self.masks if m != IGNORE_INDEX)


class ChatTokenizer:
    """Wraps a Hugging Face tokenizer; caches the prompt half, which a whole group shares."""

    def __init__(self, tokenizer: Any, cache_size: int = 256) -> None:
        self.tokenizer = tokenizer
        self._prompt_cache: OrderedDict[str, tuple[str, list[int]]] = OrderedDict()
        self._cache_size = cache_size
        self._segment_cache: dict[str, list[int]] = {}
        self._special_split = _special_token_splitter(tokenizer)

    def render(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
        if not isinstance(text, str):  # defensive: some versions wrap single results in a list
            text = text[0]
        return text

    def encode(self, text: str) -> list[int]:
        # Special tokens written by the template (<|im_start|>, <|begin_of_text|>, ...) are in
        # the text already; adding them again would double the BOS.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, text: str) -> list[int]:
        """Like `encode`, but reuses the ids of long segments between special tokens.

        A tokenizer splits its special tokens out before anything else, so the text between two
        of them is encoded on its own; the system prompt, the same for every request, is then
        encoded once per run instead of once per group.
        """
        if self._special_split is None:
            return self.encode(text)
        ids: list[int] = []
        for part in self._special_split.split(text):
            if not part:
                continue
            cached = self._segment_cache.get(part)
            if cached is None:
                cached = self.encode(part)
                if len(part) >= 256 and len(self._segment_cache) < 64:
                    self._segment_cache[part] = cached
            ids.extend(cached)
        return ids

    def prompt(self, messages: list[dict[str, str]]) -> tuple[str, list[int]]:
        key = "\x00".join(f"{m['role']}\x01{m['content']}" for m in messages)
        hit = self._prompt_cache.get(key)
        if hit is not None:
            self._prompt_cache.move_to_end(key)
            return hit
        text = self.render(messages, generation_prompt=True)
        value = (text, self.encode_prompt(text))
        self._prompt_cache[key] = value
        if len(self._prompt_cache) > self._cache_size:
            self._prompt_cache.popitem(last=False)
        return value

    def tokenize(
        self, messages: list[dict[str, str]], finish_reason: str | None = None
    ) -> TokenizedRollout:
        """Tokens and masks of a conversation whose last message is the assistant's answer."""
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError("the last message must be the assistant's completion")
        messages = [{**m, "content": without_lone_surrogates(m["content"])} for m in messages]
        prompt_text, prompt_ids = self.prompt(messages[:-1])
        full_text = self.render(messages, generation_prompt=False)
        if not full_text.startswith(prompt_text):
            # A template that renders history differently once an answer follows (rare):
            # fall back to the answer alone after the generation prompt.
            turn = messages[-1]["content"]
        else:
            turn = full_text[len(prompt_text) :]
        if finish_reason == "length":
            turn = _without_end_of_turn(turn, messages[-1]["content"])
        completion_ids = self.encode(turn)
        return TokenizedRollout(
            tokens=prompt_ids + completion_ids,
            masks=[IGNORE_INDEX] * len(prompt_ids) + completion_ids,
        )


def without_lone_surrogates(text: str) -> str:
    """`text` with each lone surrogate (e.g. from a JSON "\\ud800" escape in a server's answer)
    replaced by U+FFFD: tokenizers only take text that UTF-8 can encode."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _without_end_of_turn(turn: str, content: str) -> str:
    """The assistant turn cut right after its content (drops `<|im_end|>\\n`, `<|eot_id|>`...)."""
    for candidate in (content, content.strip(), content.rstrip()):
        if candidate:
            end = turn.rfind(candidate)
            if end != -1:
                return turn[: end + len(candidate)]
    return content


def _special_token_splitter(tokenizer: Any) -> re.Pattern[str] | None:
    """A regex that splits text at the tokenizer's added/special tokens, keeping them; None when
    an added token strips whitespace around it (then splitting could change the ids)."""
    added = getattr(tokenizer, "added_tokens_decoder", None)
    if not added:
        return None
    tokens = []
    for token in added.values():
        if getattr(token, "lstrip", False) or getattr(token, "rstrip", False):
            return None
        if getattr(token, "normalized", False) or not getattr(token, "special", True):
            return None
        tokens.append(str(token))
    alternatives = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
    return re.compile(f"({alternatives})")
