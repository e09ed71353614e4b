"""The optional reward adjustments: off by default, DAPO's soft overlong punishment when on."""

from __future__ import annotations

import pytest

from metric_cards.adjustments import (
    AdjustmentConfig,
    adjustments_for,
    apply_adjustments,
    overlong_adjustment,
)

ON = AdjustmentConfig(overlong_penalty=True, overlong_buffer_tokens=64, overlong_penalty_factor=0.5)


def test_off_by_default_changes_nothing():
    assert overlong_adjustment(256, 256, AdjustmentConfig()) == 0.0
    assert adjustments_for(10_000, 256, AdjustmentConfig()) == {}
    assert apply_adjustments(0.73, {}) == 0.73


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (100, 0.0),  # well inside the free zone
        (192, 0.0),  # last free token: 256 - 64
        (193, -0.5 / 64),  # first token of the buffer
        (224, -0.25),  # half-way through the buffer
        (256, -0.5),  # at the limit: the whole factor
        (400, -0.5),  # beyond the limit: capped
    ],
)
def test_linear_inside_the_buffer(tokens, expected):
    assert overlong_adjustment(tokens, 256, ON) == pytest.approx(expected)


def test_buffer_longer_than_the_limit_is_cut_to_the_limit():
    config = AdjustmentConfig(overlong_penalty=True, overlong_buffer_tokens=500)
    # the whole range 0..100 is the buffer: 50 tokens is half-way
    assert overlong_adjustment(50, 100, config) == pytest.approx(-0.25)


def test_recorded_only_when_non_zero():
    assert adjustments_for(100, 256, ON) == {}
    assert adjustments_for(256, 256, ON) == {"overlong": pytest.approx(-0.5)}


@pytest.mark.parametrize(
    ("score", "adjustments", "expected"),
    [
        (0.9, {"overlong": -0.25}, 0.65),
        (0.2, {"overlong": -0.5}, 0.0),  # never below 0
        (0.9, {"bonus": 0.5}, 1.0),  # never above 1
        (0.5, {"a": -0.1, "b": -0.2}, 0.2),  # summed
    ],
)
def test_adjusted_score_stays_in_range(score, adjustments, expected):
    assert apply_adjustments(score, adjustments) == pytest.approx(expected)


def test_config_rejects_nonsense():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        AdjustmentConfig(overlong_buffer_tokens=0)
    with pytest.raises(ValidationError):
        AdjustmentConfig(overlong_penalty_factor=-1)
