"""The reward the trainer reports with: the env's defaults (the score a group carries is the
env's; this is only for the trainer's own summaries and the held-out eval)."""

from __future__ import annotations

from metric_cards.adjustments import AdjustmentConfig
from metric_cards.reward import RewardConfig

REWARD = RewardConfig()
ADJUSTMENTS = AdjustmentConfig()
