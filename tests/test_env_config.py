"""The env's configuration rejects nonsense with a clear message (issue 12, item 5)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from metric_cards.env_config import MetricCardEnvConfig, check_yaml_config, normalize_argv
from metric_cards.runtime import FatalEnvError, describe_validation_error


def config(**fields: object) -> MetricCardEnvConfig:
    return MetricCardEnvConfig(tokenizer_name="x", **fields)


def error_of(**fields: object) -> str:
    with pytest.raises(ValidationError) as info:
        config(**fields)
    return describe_validation_error(info.value)


def test_negative_numbers_after_a_space_stay_numbers():
    argv = ["process", "--env.temperature", "-0.5", "--env.seed", "-7", "--env.top_p", "0.9"]
    assert normalize_argv(argv) == [
        "process", "--env.temperature=-0.5", "--env.seed=-7", "--env.top_p", "0.9",
    ]  # fmt: skip
    assert normalize_argv(["--a", "-.5", "--b", "-inf", "--c", "-x"]) == [
        "--a=-.5", "--b=-inf", "--c", "-x",
    ]  # fmt: skip
    assert normalize_argv(["--verbose", "--env.seed", "3"])[0] == "--verbose=true"
    assert normalize_argv(["--env.seed", "3", "--verbose"])[-1] == "--verbose=true"


def test_negative_seed_is_kept_and_negative_temperature_rejected():
    assert config(seed=-7).seed == -7
    message = error_of(temperature="-0.5")
    assert message.startswith("--env.temperature: Input should be greater than or equal to 0")
    assert "-0.5" in message


@pytest.mark.parametrize("field", ["temperature", "seed", "group_size", "eval_size"])
def test_a_flag_without_a_value_is_an_error_not_true(field):
    # atroposlib turns `--env.seed` with no value into True; pydantic alone would read 1.
    message = error_of(**{field: True})
    assert message == f"--env.{field} needs a value (got a bare flag or a boolean)"


def test_booleans_still_accept_booleans():
    assert config(overlong_penalty=True).overlong_penalty is True


@pytest.mark.parametrize("size", [0, -1])
def test_group_size_must_be_positive(size):
    assert error_of(group_size=size).startswith("--env.group_size: Input should be greater than")


@pytest.mark.parametrize("value", ["inf", "nan", float("inf"), "-inf"])
def test_weights_must_be_finite(value):
    assert error_of(weight_schema=value).startswith("--env.weight_schema:")


def test_weights_must_sum_to_a_finite_positive_number():
    big = error_of(weight_validity=1e308, weight_schema=1e308)  # the sum would overflow
    assert big.startswith("--env.weight_validity:") and "1e+308" in big
    zero = error_of(weight_validity=0, weight_schema=0, weight_semantic=0, weight_formatting=0)
    assert "weight" in zero  # the reward config's own rule, or ours
    assert config(weight_validity=2.0).weight_validity == 2.0


def test_eval_size_is_bounded_by_the_held_out_set():
    from metric_cards.catalog import held_out_triples

    pool = len(held_out_triples())
    assert config(eval_size=pool).eval_size == pool
    message = error_of(eval_size=100000)
    assert f"--env.eval_size 100000 is larger than the held-out set ({pool} requests)" in message


def test_unknown_keys_are_rejected():
    assert error_of(group_sise=3) == "--env.group_sise: unknown option"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:\n  group_sise: 3\n", "unknown key(s) in 'env': 'group_sise'"),
        ("envv:\n  group_size: 3\n", "unknown section(s) 'envv'"),
        ("env:\n  group_size: [3\n", "line 3, column 1: invalid YAML"),
        ("- env\n- openai\n", "the config must be a mapping"),
        ("env: 3\n", "section 'env' must be a mapping, not a int"),
        ("openai:\n  - base_urll: x\n", "unknown key(s) in 'openai': 'base_urll'"),
    ],
)
def test_yaml_mistakes_are_one_line_errors(tmp_path, text, expected):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(FatalEnvError) as info:
        check_yaml_config(path)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_a_good_yaml_passes(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("env:\n  group_size: 3\nopenai:\n  base_url: http://x/v1\n  model_name: m\n")
    check_yaml_config(path)
