"""MetricCardEnv: an Atropos environment that teaches and measures writing MetricCard JSON.

    python metric_card_generator.py process   # rollouts -> JSONL + HTML (embedded model by default)
    python metric_card_generator.py serve     # scored groups -> Atropos trajectory API -> trainer
    python metric_card_generator.py evaluate  # held-out set -> metrics.json + samples.jsonl

The Atropos shape (config_init, setup, get_next_item, collect_trajectories, evaluate, wandb_log)
and nothing else: the prompts, reward, tokenization, sampling, embedded server, process loop and
CLI plumbing live in the `metric_cards` package (README "Layout").
"""

from __future__ import annotations

from metric_cards.runtime import prepare_environment, quiet_interrupts

if __name__ == "__main__":
    quiet_interrupts()  # before the imports below, which take seconds
prepare_environment()

import asyncio
import logging
import time
from typing import Any

import wandb
from atroposlib.envs.base import APIServerConfig, BaseEnv

from metric_cards import process_loop
from metric_cards.catalog import Request, TrainingPrompts, eval_requests
from metric_cards.env_config import MetricCardEnvConfig, checked_command, normalize_argv
from metric_cards.groups import (
    ScoredRollout,
    build_group,
    eval_sample,
    prompt_messages,
    tokenize_and_score,
)
from metric_cards.io_utils import JsonlGroupWriter
from metric_cards.local_server import (
    EMBEDDED,
    check_embedded_tokenizer,
    resolve_inference_servers,
)
from metric_cards.process_loop import Step, groups_in_flight
from metric_cards.run_stats import RolloutStats
from metric_cards.runtime import (
    FatalEnvError,
    configure_wandb_mode,
    run_cli,
    wait_for_inference_server,
)
from metric_cards.sampling import RequestFailedError, request_seed, sample, watch_server
from metric_cards.serve_api import AtroposApiMixin
from metric_cards.tokenization import ChatTokenizer

logger = logging.getLogger("metric_card_generator")


class MetricCardEnv(AtroposApiMixin, BaseEnv):
    name = "metric_card_generator"
    env_config_cls = MetricCardEnvConfig

    # The env tokenises rollouts itself (metric_cards.tokenization) rather than through
    # atroposlib's managed server: that path needs token ids and logprobs from the server, which
    # the embedded llama.cpp server and many OpenAI-compatible servers do not return, and
    # atroposlib's own tokenize_for_trainer mis-reads transformers 5.x and truncated turns.
    def __init__(
        self,
        config: MetricCardEnvConfig,
        server_configs: list[APIServerConfig] | APIServerConfig,
        slurm: bool = False,
        testing: bool = False,
    ) -> None:
        configure_wandb_mode()
        configs = server_configs if isinstance(server_configs, list) else [server_configs]
        self.embedded_server, self.one_choice_per_request = resolve_inference_servers(
            config, configs
        )
        per_group = config.group_size if self.one_choice_per_request else 1
        in_flight = groups_in_flight(config, self.embedded_server is not None)
        for server in configs:  # room for every request of every group in flight
            wanted = in_flight * per_group
            server.num_max_requests_at_once = max(server.num_max_requests_at_once, wanted)
        output = config.data_path_to_save_groups
        config.data_path_to_save_groups = None  # atroposlib would create the file right away
        try:
            super().__init__(config, configs, slurm, testing)
            if self.embedded_server is not None and config.embedded_model_path:
                check_embedded_tokenizer(self.tokenizer, self.embedded_server)
        except (OSError, ValueError) as exc:
            self.stop_embedded_server()
            raise FatalEnvError(
                f"could not load tokenizer {config.tokenizer_name!r}: {exc}. Pass "
                "--env.tokenizer_name with a local tokenizer directory (the Hugging Face hub "
                "is not used at run time)."
            ) from exc
        except BaseException:
            self.stop_embedded_server()
            raise
        self.jsonl_writer = JsonlGroupWriter.beside_existing(output) if output else None
        config.data_path_to_save_groups = self.jsonl_writer.path if self.jsonl_writer else None
        self.server_watches = [w for s in self.server.servers if (w := watch_server(s))]
        self.chat_tokenizer = ChatTokenizer(self.tokenizer)
        self.window_stats = RolloutStats()
        self.run_stats = RolloutStats()
        self.eval_metrics: dict[str, float] = {}
        self.train_prompts: TrainingPrompts | None = None
        self.steps_drawn = 0
        self.eval_set: list[Request] = []
        self.dropped_no_spread = 0
        self.failed_requests = 0

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
                api_key="x",
                num_requests_for_eval=4,
                num_max_requests_at_once=8,
                health_check=False,  # we check reachability ourselves, with a deadline
                timeout=600,
            )
        ]
        return env_config, server_configs

    async def setup(self) -> None:
        self.train_prompts = TrainingPrompts(self.config.seed)
        self.steps_drawn = 0
        self.eval_set = eval_requests(self.config.eval_size)
        for server in self.server.servers:
            cfg = getattr(server, "config", None)
            if cfg is not None and getattr(cfg, "base_url", None):
                await wait_for_inference_server(
                    cfg.base_url, cfg.api_key, self.config.server_startup_timeout
                )

    async def get_next_item(self) -> Step:
        assert self.train_prompts is not None, "setup() must run first"
        step = Step(self.steps_drawn, next(self.train_prompts))
        self.steps_drawn += 1
        return step

    async def sample_completions(
        self, request: Request, n: int, temperature: float, split: str, seed: int | None = None
    ) -> list[Any]:
        kwargs: dict[str, Any] = {
            "messages": prompt_messages(request),
            "n": n,
            "max_tokens": self.config.max_completion_tokens,
            "temperature": temperature,
            "split": split,
        }
        if split == "train":
            # Always sent: llama-cpp-python's server uses 0.95 when a request leaves it out.
            kwargs["top_p"] = self.config.top_p
        if seed is not None:
            kwargs["seed"] = seed
        return await sample(
            self.server.chat_completion,
            kwargs,
            one_choice_per_request=self.one_choice_per_request,
            timeout=self.config.request_timeout,
            watches=self.server_watches,
        )

    def score_completions(self, request: Request, completions: list[Any]) -> list[ScoredRollout]:
        messages = prompt_messages(request)
        return [
            tokenize_and_score(
                request, messages, completion, self.chat_tokenizer, self.config, self.config,
                self.config.max_completion_tokens,
            )
            for completion in completions
        ]  # fmt: skip

    async def sample_group(self, step: Step) -> list[ScoredRollout]:
        """The group of one training step: sampled with the step's seed, then scored."""
        seed = request_seed(self.config.seed, step.index, self.config.group_size)
        completions = await self.sample_completions(
            step.request, self.config.group_size, self.config.temperature, "train", seed
        )
        return self.score_completions(step.request, completions)

    def group_for(self, step: Step, rollouts: list[ScoredRollout]) -> dict[str, Any]:
        self.window_stats.add_group(rollouts)
        self.run_stats.add_group(rollouts)
        return build_group(step.request, rollouts)

    async def collect_trajectories(self, item: Step) -> tuple[dict[str, Any] | None, list]:
        try:
            return self.group_for(item, await self.sample_group(item)), []
        except RequestFailedError as exc:
            self.failed_requests += 1
            logger.warning("dropping prompt %r: %s", item.request.prompt, exc)
            return None, []

    async def handle_send_to_api(self, scored_data, item=None, do_send_to_api=True, **kwargs):
        groups = scored_data if isinstance(scored_data, list) else [scored_data]
        if self.config.ensure_scores_are_not_same:
            flat = [g for g in groups if g is not None and len(set(g["scores"])) == 1]
            if flat:
                self.dropped_no_spread += len(flat)
                logger.info(
                    "dropping %d group(s) whose scores are all equal (%d so far); the trainer "
                    "learns nothing from them", len(flat), self.dropped_no_spread,
                )  # fmt: skip
        return await super().handle_send_to_api(scored_data, item, do_send_to_api, **kwargs)

    async def add_rollouts_for_wandb(self, scored_data, item=None) -> None:
        return None  # our best/worst table (wandb_log) replaces atroposlib's decode-every-group one

    async def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        started = time.time()
        stats = RolloutStats()
        samples: list[dict[str, Any]] = []
        failures: list[str] = []

        async def one(request: Request) -> tuple[Request, ScoredRollout | None, str]:
            try:
                completions = await self.sample_completions(
                    request, 1, self.config.eval_temperature, "eval"
                )
            except RequestFailedError as exc:
                return request, None, str(exc)
            return request, self.score_completions(request, completions)[0], ""

        for request, rollout, error in await asyncio.gather(*map(one, self.eval_set)):
            if rollout is None:
                failures.append(error)
                continue
            stats.add_group([rollout])
            samples.append(eval_sample(request, rollout))
        if not samples:
            raise FatalEnvError(
                f"evaluation failed: none of {len(self.eval_set)} requests succeeded; first "
                f"error: {failures[0] if failures else 'none'}"
            )
        samples.sort(key=lambda s: s["prompt"])
        metrics = stats.metrics("eval")
        metrics["eval/failed_requests"] = float(len(failures))
        self.eval_metrics = metrics
        await self.evaluate_log(
            metrics, start_time=started, end_time=time.time(), samples=samples,
            generation_parameters={
                "temperature": self.config.eval_temperature,
                "max_tokens": self.config.max_completion_tokens,
            },
        )  # fmt: skip
        return metrics

    async def wandb_log(self, wandb_metrics: dict | None = None) -> None:
        metrics = dict(wandb_metrics or {})
        metrics.update(self.window_stats.metrics("train"))
        metrics["train/groups_dropped_no_score_spread"] = float(self.dropped_no_spread)
        metrics["train/failed_requests"] = float(self.failed_requests)
        if self.eval_metrics:
            metrics.update(self.eval_metrics)
            self.eval_metrics = {}
        if self.config.use_wandb and wandb.run is not None and self.window_stats.examples:
            metrics["train/best_and_worst_rollouts"] = self.window_stats.wandb_table()
        self.window_stats = RolloutStats()
        if self.config.use_wandb and wandb.run is None:
            return  # serve before wandb.init, or wandb disabled for evaluate
        await super().wandb_log(metrics)

    # --- the three commands: atroposlib's entry points, with the embedded server stopped at the end
    async def process_manager(self) -> None:
        self.config.group_size = self.group_size_to_process
        try:
            await process_loop.process(
                self, groups_in_flight(self.config, self.embedded_server is not None),
                lambda: wandb.init(
                    project="metric-card-generator", name=self.config.wandb_name,
                    config=self.config.model_dump(mode="json"),
                ),
            )  # fmt: skip
        finally:
            self.stop_embedded_server()
            if self.jsonl_writer is not None:
                self.jsonl_writer.close()

    async def _run_evaluate(self) -> None:
        try:
            await self.setup()
            await self.evaluate()
        finally:
            self.stop_embedded_server()

    async def env_manager(self) -> None:
        try:
            await super().env_manager()
        finally:
            self.stop_embedded_server()

    def stop_embedded_server(self) -> None:
        if self.embedded_server is not None:
            self.embedded_server.stop()
            self.embedded_server = None

    @classmethod
    def cli(cls) -> None:
        commands = {
            "serve": cls.get_cli_serve_config_cls(),
            "process": cls.get_cli_process_config_cls(),
            "evaluate": cls.get_cli_evaluate_config_cls(),
        }
        checked = {name: checked_command(command) for name, command in commands.items()}
        run_cli(checked, f"CLI for {cls.__name__}", normalize_argv)


if __name__ == "__main__":
    MetricCardEnv.cli()
