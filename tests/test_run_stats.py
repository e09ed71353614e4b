"""Run statistics: what goes to wandb and into the end-of-run summary, from real scores."""

from __future__ import annotations

import statistics

import pytest

from metric_cards.catalog import Request, eval_requests
from metric_cards.groups import ScoredRollout
from metric_cards.reward import is_strict_json, score_completion
from metric_cards.run_stats import LAYERS, RolloutStats

GOOD = '{"componentType": "metricCard", "props": {"title": "%s", "value": "$48,250"}}'


def rollout(request: Request, completion: str, finish: str = "stop", tokens: int = 5):
    result = score_completion(completion, request, finish)
    return ScoredRollout(
        messages=[
            {"role": "user", "content": request.prompt},
            {"role": "assistant", "content": completion},
        ],
        tokens=[1] * (10 + tokens),
        masks=[-100] * 10 + [1] * tokens,
        result=result,
        score=result.score,
        finish_reason=finish,
        completion_tokens=tokens,
        adjustments={},
    )


@pytest.fixture(scope="module")
def request_():
    return eval_requests(1)[0]


def test_empty_stats_have_no_metrics():
    assert RolloutStats().metrics("train") == {}


def test_metrics_of_two_groups(request_):
    good = GOOD % request_.metric.title()
    repaired = good.replace('"value"', "'value'").replace('"$48,250"', "'$48,250'")
    group_a = [
        rollout(request_, good, tokens=40),
        rollout(request_, "no JSON here", tokens=3),
        rollout(request_, good[:30], "length", tokens=20),
    ]
    group_b = [rollout(request_, good, tokens=40), rollout(request_, good, tokens=40)]
    group_c = [rollout(request_, repaired, tokens=41)]
    stats = RolloutStats()
    for group in (group_a, group_b, group_c):
        stats.add_group(group)
    everything = group_a + group_b + group_c
    metrics = stats.metrics("train")

    assert stats.groups == 3 and stats.count == 6
    assert [is_strict_json(r.result.extraction) for r in everything] == [
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert metrics["train/percent_valid_json"] == pytest.approx(100 * 3 / 6)
    assert metrics["train/mean_score"] == pytest.approx(
        statistics.fmean(r.score for r in everything)
    )
    assert metrics["train/percent_truncated"] == pytest.approx(100 / 6)
    assert metrics["train/completion_tokens_max"] == 41.0
    assert metrics["train/completion_tokens_mean"] == pytest.approx((40 + 3 + 20 + 80 + 41) / 6)
    for layer in LAYERS:
        expected = statistics.fmean(r.result.layers[layer] for r in everything)
        assert metrics[f"train/{layer}_mean"] == pytest.approx(expected)
    # spread is measured inside groups of more than one rollout only (a and b)
    std_a = statistics.pstdev(r.score for r in group_a)
    assert std_a > 0.2
    assert metrics["train/within_group_score_std"] == pytest.approx((std_a + 0.0) / 2)
    assert metrics["train/groups_without_score_spread"] == 1.0  # group b: two equal scores


def test_best_and_worst_keep_the_extremes(request_):
    good = GOOD % request_.metric.title()
    stats = RolloutStats(keep_examples=2)
    texts = [good, "nothing", good[:40], "{}", good.replace("metricCard", "card")] * 4
    for i in range(0, len(texts), 2):
        stats.add_group([rollout(request_, t) for t in texts[i : i + 2]])
    assert len(stats.examples) <= 4 * 2 + 2  # trimmed as it goes
    table = stats.best_and_worst()
    kinds = [row[0] for row in table]
    assert kinds == ["best", "best", "worst", "worst"]
    scores = sorted(score_completion(t, request_).score for t in texts)
    assert [row[1] for row in table] == [scores[-1], scores[-2], scores[0], scores[1]]
    best_completion = table[0][3]
    assert best_completion == good
