"""GRPO's loss from Atropos groups: group-normalised advantages, completion-token log-probs and
the clipped policy-gradient objective (optionally with a KL penalty to a frozen reference).

A group from `run-api` is `{"tokens", "masks", "scores", "generation_params", ...}`: `masks[i][t]`
is -100 on prompt tokens and the token id on completion tokens (Atropos' convention), so token
`t` is trained when `masks[i][t] != -100` and is predicted by the logits at position `t - 1`.

Every sequence of a batch starts with the same system prompt, so `completion_logprobs` runs the
longest common prefix once and shares its key/value cache (with gradient) across the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainSequence:
    """One completion to learn from: its tokens, which of them are trained, and its advantage."""

    tokens: list[int]
    trained: list[bool]  # trained[t]: token t is a completion token
    advantage: float
    temperature: float
    score: float

    @property
    def first_trained(self) -> int:
        return self.trained.index(True) if True in self.trained else len(self.tokens)

    @property
    def n_trained(self) -> int:
        return sum(self.trained)


def group_advantages(
    scores: list[float], scale_by_std: bool = True, min_std: float = 0.0, eps: float = 1e-4
) -> list[float]:
    """(score - group mean) / group std (population std, as GRPO): the advantage of each rollout.

    A group whose scores are all equal has no signal: every advantage is 0. `min_std` floors the
    divisor, so a near-tie (scores a few hundredths apart) is not blown up into the same ±1
    advantages as a real difference.
    """
    n = len(scores)
    if n == 0:
        return []
    mean = sum(scores) / n
    centred = [s - mean for s in scores]
    if not scale_by_std:
        return centred
    std = math.sqrt(sum(c * c for c in centred) / n)
    if std < eps:
        return [0.0] * n
    return [c / max(std, min_std) for c in centred]


def sequences_from_group(
    group: dict[str, Any],
    scale_by_std: bool = True,
    min_std: float = 0.0,
    default_temperature: float = 1.0,
) -> list[TrainSequence]:
    """The group's rollouts as TrainSequences (advantages normalised within the group)."""
    scores = [float(s) for s in group["scores"]]
    advantages = group_advantages(scores, scale_by_std, min_std)
    params = group.get("generation_params") or {}
    temperature = float(params.get("temperature") or default_temperature)
    # Temperature 0 is greedy decoding; logits are not rescaled then.
    temperature = temperature if temperature > 0 else 1.0
    out = []
    for tokens, masks, advantage, score in zip(
        group["tokens"], group["masks"], advantages, scores, strict=True
    ):
        if len(tokens) != len(masks):
            raise ValueError(f"tokens and masks differ in length ({len(tokens)} != {len(masks)})")
        trained = [m != IGNORE_INDEX for m in masks]
        trained[0] = False  # nothing predicts the first token
        out.append(TrainSequence(list(tokens), trained, advantage, temperature, score))
    return out


def common_prefix_length(sequences: list[TrainSequence]) -> int:
    """Tokens shared by every sequence, ending before the first trained token's predictor.

    The last prefix position's logits are never needed: the prefix stops at least one token
    before any sequence's first completion token.
    """
    first = sequences[0].tokens
    limit = min(
        min(s.first_trained for s in sequences) - 1, *(len(s.tokens) - 1 for s in sequences)
    )
    n = 0
    while n < limit and all(s.tokens[n] == first[n] for s in sequences):
        n += 1
    return max(n, 0)


def completion_logprobs(
    model: torch.nn.Module, sequences: list[TrainSequence], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of each sequence's own next tokens, `[B, S]`, and the float mask of trained
    tokens, `[B, S]`, over the positions after the shared prefix (S = longest suffix)."""
    prefix = common_prefix_length(sequences)
    suffixes = [s.tokens[prefix:] for s in sequences]
    width = max(len(x) for x in suffixes)
    batch = len(sequences)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, prefix + width), dtype=torch.long)
    attention[:, :prefix] = 1
    targets = torch.full((batch, width), pad_id, dtype=torch.long)
    trained = torch.zeros((batch, width), dtype=torch.float32)
    temperatures = torch.tensor([s.temperature for s in sequences], dtype=torch.float32)
    for i, (seq, suffix) in enumerate(zip(sequences, suffixes, strict=True)):
        ids[i, : len(suffix)] = torch.tensor(suffix)
        attention[i, prefix : prefix + len(suffix)] = 1
        # suffix position j predicts suffix token j + 1
        targets[i, : len(suffix) - 1] = torch.tensor(suffix[1:])
        mask = seq.trained[prefix + 1 :]
        trained[i, : len(mask)] = torch.tensor(mask, dtype=torch.float32)

    cache = None
    if prefix > 0:
        prefix_ids = torch.tensor([sequences[0].tokens[:prefix]])
        out = model(input_ids=prefix_ids, use_cache=True, logits_to_keep=1)
        cache = out.cache
        cache.batch_repeat_interleave(batch)
    out = model(input_ids=ids, attention_mask=attention, cache=cache, use_cache=True)
    logits = out.logits.float() / temperatures[:, None, None]
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logprobs * trained, trained


@dataclass
class LossParts:
    loss: torch.Tensor
    clipped_fraction: float
    kl: float
    mean_ratio: float


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    trained: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    token_normaliser: float | None = None,
) -> LossParts:
    """The clipped GRPO objective, summed over trained tokens and divided by `token_normaliser`
    (default: the trained tokens here; pass the whole batch's count when accumulating
    micro-batches, so every token of the batch weighs the same).

    per token: -min(r·A, clip(r, 1-eps, 1+eps)·A) + kl_coef·KL, with r = exp(logp - old_logp)
    and KL the k3 estimator exp(ref - logp) - (ref - logp) - 1 (Schulman).
    """
    normaliser = token_normaliser if token_normaliser is not None else float(trained.sum())
    normaliser = max(normaliser, 1.0)
    adv = advantages[:, None].to(logprobs.dtype)
    ratio = torch.exp(logprobs - old_logprobs)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    per_token = -torch.minimum(ratio * adv, clipped * adv)
    kl_value = 0.0
    if ref_logprobs is not None and kl_coef > 0:
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + kl_coef * kl
        kl_value = float((kl * trained).sum() / max(float(trained.sum()), 1.0))
    loss = (per_token * trained).sum() / normaliser
    with torch.no_grad():
        n = max(float(trained.sum()), 1.0)
        outside = ((ratio < 1.0 - clip_eps) | (ratio > 1.0 + clip_eps)).float()
        clipped_fraction = float((outside * trained).sum() / n)
        mean_ratio = float((ratio * trained).sum() / n)
    return LossParts(loss, clipped_fraction, kl_value, mean_ratio)
