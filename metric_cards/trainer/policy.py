"""The policy being trained: a causal LM in float32 on the CPU, its AdamW optimizer, one GRPO
update from a batch of groups, and checkpoints that a run resumes from."""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metric_cards.trainer.grpo import (
    TrainSequence,
    completion_logprobs,
    grpo_loss,
    sequences_from_group,
)

CHECKPOINT_FILE = "checkpoint.pt"


def load_model(path: str) -> torch.nn.Module:
    """A GGUF file (dequantised to float32 by transformers + gguf) or a Hugging Face model dir."""
    from transformers import AutoModelForCausalLM

    source = Path(path)
    if source.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(
            str(source.parent), gguf_file=source.name, dtype=torch.float32
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    model.config.use_cache = True
    return model


@dataclass
class UpdateStats:
    loss: float
    grad_norm: float
    clipped_fraction: float
    kl: float
    trained_tokens: int
    sequences: int
    seconds: float


class Policy:
    def __init__(self, model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0,
                 clip_eps: float = 0.2, kl_coef: float = 0.0, grad_clip: float = 1.0,
                 micro_batch: int = 4, scale_by_std: bool = True, min_std: float = 0.0,
                 bf16: bool = True) -> None:  # fmt: skip
        self.model = model
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=lr,
            betas=(0.9, 0.99),
            weight_decay=weight_decay,
        )
        self.clip_eps = clip_eps
        self.kl_coef = kl_coef
        self.grad_clip = grad_clip
        self.micro_batch = micro_batch
        self.scale_by_std = scale_by_std
        self.min_std = min_std
        # Forward and backward in bfloat16 (weights, gradients and AdamW stay float32): about
        # twice as fast on CPUs with AVX512-BF16/AMX, and log-probs only steer a gradient here.
        self.bf16 = bf16
        self.reference: torch.nn.Module | None = None
        if kl_coef > 0:
            import copy

            self.reference = copy.deepcopy(model).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)

    def update(self, groups: list[dict[str, Any]]) -> UpdateStats:
        """One optimizer step on the batch: every trained token of the batch weighs the same."""
        started = time.monotonic()
        sequences: list[TrainSequence] = []
        for group in groups:
            sequences.extend(sequences_from_group(group, self.scale_by_std, self.min_std))
        # Sequences with advantage 0 (a group without spread) add nothing to the gradient.
        learnable = [s for s in sequences if s.advantage != 0.0 and s.n_trained > 0]
        total_tokens = sum(s.n_trained for s in learnable)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, clipped_sum, kl_sum = 0.0, 0.0, 0.0
        for start in range(0, len(learnable), self.micro_batch):
            chunk = learnable[start : start + self.micro_batch]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                logprobs, trained = completion_logprobs(self.model, chunk)
                ref = None
                if self.reference is not None:
                    with torch.no_grad():
                        ref, _ = completion_logprobs(self.reference, chunk)
            advantages = torch.tensor([s.advantage for s in chunk])
            # One update per batch: the old policy is the current one (ratio 1, gradient of
            # the plain policy-gradient); clipping bites only if a batch is revisited.
            parts = grpo_loss(
                logprobs.float(),
                logprobs.detach().float(),
                advantages,
                trained,
                clip_eps=self.clip_eps,
                ref_logprobs=ref.float() if ref is not None else None,
                kl_coef=self.kl_coef,
                token_normaliser=float(total_tokens),
            )
            parts.loss.backward()
            n = float(trained.sum())
            loss_sum += float(parts.loss.detach())
            clipped_sum += parts.clipped_fraction * n
            kl_sum += parts.kl * n
        grad_norm = 0.0
        if learnable:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            )
            if math.isfinite(grad_norm):
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.eval()
        denominator = max(total_tokens, 1)
        return UpdateStats(
            loss=loss_sum,
            grad_norm=grad_norm,
            clipped_fraction=clipped_sum / denominator,
            kl=kl_sum / denominator,
            trained_tokens=total_tokens,
            sequences=len(learnable),
            seconds=time.monotonic() - started,
        )

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: Path, step: int, extra: dict[str, Any] | None = None) -> Path:
        """The model, the optimizer and the step, atomically (a crash mid-write keeps the old)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CHECKPOINT_FILE
        tmp = directory / f".{CHECKPOINT_FILE}.tmp-{os.getpid()}"
        state = {
            "step": step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "extra": extra or {},
        }
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def load(self, directory: Path) -> dict[str, Any]:
        """Restore a checkpoint written by `save`; returns its step and extra data."""
        state = torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        return {"step": int(state["step"]), "extra": state.get("extra", {})}
