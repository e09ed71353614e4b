"""The prompt catalog: sizes, round trips, a held-out eval set disjoint from training, seeding."""

from __future__ import annotations

import itertools

import pytest

from metric_cards.catalog import (
    DOMAINS,
    METRICS,
    TEMPLATES,
    TIME_PERIODS,
    Polarity,
    Request,
    TrainingPrompts,
    eval_requests,
    held_out_triples,
    make_request,
    parse_request,
    training_triples,
)
from metric_cards.icons import lucide_names


def test_catalog_has_the_originals_sizes():
    assert (len(DOMAINS), len(METRICS), len(TIME_PERIODS), len(TEMPLATES)) == (18, 30, 25, 5)
    assert len({m.name for m in METRICS}) == 30


def test_every_prompt_parses_back_to_its_request():
    for metric, domain, period, template in itertools.product(
        METRICS, DOMAINS, TIME_PERIODS, range(len(TEMPLATES))
    ):
        request = make_request(metric.name, domain, period, template)
        assert parse_request(request.prompt) == request


def test_foreign_prompts_are_not_requests():
    assert parse_request("Make me a sandwich.") is None
    assert parse_request("Create a metric card for revenue in space mining for May.") is None


def test_request_serialises_round_trip():
    request = make_request("churn rate", "insurance", "Q3 2023", 2)
    assert Request.from_dict(request.to_dict()) == request


def test_every_catalog_icon_is_a_lucide_icon():
    names = lucide_names()
    missing = {(m.name, icon) for m in METRICS for icon in m.icons if icon not in names}
    assert not missing


def test_lower_is_better_metrics_are_the_costs_and_bad_rates():
    lower = {m.name for m in METRICS if m.polarity is Polarity.LOWER_IS_BETTER}
    assert {"churn rate", "bounce rate", "error rate", "customer acquisition cost"} <= lower
    assert "revenue" not in lower


def test_eval_set_is_fixed_and_disjoint_from_training():
    held = set(held_out_triples())
    train = set(training_triples())
    assert held and train and not held & train
    assert len(held) + len(train) == 30 * 18 * 25
    first = eval_requests(50)
    assert first == eval_requests(50)  # fixed
    assert eval_requests(10) == first[:10]  # growing the set keeps the earlier requests
    assert all((r.metric, r.domain, r.period) in held for r in first)
    with pytest.raises(ValueError, match="held-out pool"):
        eval_requests(len(held) + 1)


def test_training_stream_is_seeded_and_never_draws_eval_requests():
    held = set(held_out_triples())
    a = list(itertools.islice(TrainingPrompts(seed=7), 2000))
    b = list(itertools.islice(TrainingPrompts(seed=7), 2000))
    c = list(itertools.islice(TrainingPrompts(seed=8), 2000))
    assert a == b and a != c
    assert not any((r.metric, r.domain, r.period) in held for r in a)
    assert len({r.template for r in a}) == len(TEMPLATES)
    assert len({r.metric for r in a}) == 30
