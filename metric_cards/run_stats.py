"""Running statistics of scored rollouts: what goes to wandb and into the end-of-run summary."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from metric_cards.groups import ScoredRollout
from metric_cards.reward import CANARIES, LAYERS, is_strict_json


@dataclass
class RolloutStats:
    """Accumulates rollouts between two wandb logs (or over a whole run)."""

    keep_examples: int = 4
    scores: list[float] = field(default_factory=list)
    valid: int = 0
    layer_sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0.0))
    canary_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CANARIES, 0))
    group_stds: list[float] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    truncated: int = 0
    groups: int = 0
    no_spread_groups: int = 0
    # (score, prompt, completion, layers, problems) of the best and worst rollouts seen
    examples: list[tuple[float, str, str, dict[str, float], list[str]]] = field(
        default_factory=list
    )

    def add_group(self, rollouts: list[ScoredRollout]) -> None:
        self.groups += 1
        group_scores = [r.score for r in rollouts]
        if len(group_scores) > 1:
            self.group_stds.append(statistics.pstdev(group_scores))
            if len(set(group_scores)) == 1:
                self.no_spread_groups += 1
        for rollout in rollouts:
            self.scores.append(rollout.score)
            self.valid += is_strict_json(rollout.result.extraction)
            for layer in LAYERS:
                self.layer_sums[layer] += rollout.result.layers[layer]
            for name, raised in rollout.result.canaries.items():
                self.canary_counts[name] += raised
            self.completion_tokens.append(rollout.completion_tokens)
            self.truncated += rollout.finish_reason == "length"
            self.examples.append(
                (
                    rollout.score,
                    rollout.messages[-2]["content"],
                    rollout.messages[-1]["content"],
                    dict(rollout.result.layers),
                    list(rollout.result.problems),
                )
            )
        # Keep only the extremes: the table shows the best and worst rollouts.
        if len(self.examples) > 4 * self.keep_examples:
            self.examples.sort(key=lambda e: e[0])
            self.examples = (
                self.examples[: self.keep_examples] + self.examples[-self.keep_examples :]
            )

    @property
    def count(self) -> int:
        return len(self.scores)

    def metrics(self, prefix: str) -> dict[str, float]:
        if not self.scores:
            return {}
        out = {
            f"{prefix}/percent_valid_json": 100.0 * self.valid / self.count,
            f"{prefix}/mean_score": statistics.fmean(self.scores),
            f"{prefix}/rollouts": float(self.count),
            f"{prefix}/percent_truncated": 100.0 * self.truncated / self.count,
            f"{prefix}/completion_tokens_mean": statistics.fmean(self.completion_tokens),
            f"{prefix}/completion_tokens_max": float(max(self.completion_tokens)),
        }
        for layer in LAYERS:
            out[f"{prefix}/{layer}_mean"] = self.layer_sums[layer] / self.count
        out.update(self.canary_rates(prefix))
        if self.group_stds:
            out[f"{prefix}/within_group_score_std"] = statistics.fmean(self.group_stds)
            out[f"{prefix}/groups_without_score_spread"] = float(self.no_spread_groups)
        return out

    def canary_rates(self, prefix: str) -> dict[str, float]:
        """`<prefix>/canary_<name>`: the share of rollouts that raised each hacking canary."""
        if not self.scores:
            return {}
        return {f"{prefix}/canary_{name}": n / self.count for name, n in self.canary_counts.items()}

    def best_and_worst(self) -> list[tuple[str, float, str, str, dict[str, float], list[str]]]:
        ranked = sorted(self.examples, key=lambda e: e[0])
        worst = ranked[: self.keep_examples]
        best = ranked[-self.keep_examples :][::-1] if len(ranked) > self.keep_examples else []
        return [("best", *e) for e in best] + [("worst", *e) for e in worst]
