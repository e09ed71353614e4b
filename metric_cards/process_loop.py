"""`process`: sample N groups with a bounded number in flight, write them in step order, summarise.

atroposlib's own process loop waits for each group before it asks for the next, so an external
vLLM/SGLang server sees one request at a time. This loop keeps up to `concurrency` groups in
flight and commits finished groups strictly in step order: prompts are drawn in order, each
request carries a seed derived from its step (`sampling.request_seed`), and a failed step is
skipped at the same place whatever the concurrency, so a run writes the same file at any
concurrency. A commit does what atroposlib's loop does with a group: `postprocess_histories`,
then `handle_send_to_api(do_send_to_api=False)` (which writes the JSONL line), then `wandb_log`.

Failure rule: `max_consecutive_failures` failed steps in a row, in step order, end the run.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from metric_cards.groups import ScoredRollout
from metric_cards.reward import CANARIES, LAYERS
from metric_cards.run_stats import RolloutStats
from metric_cards.runtime import FatalEnvError
from metric_cards.sampling import RequestFailedError

logger = logging.getLogger("metric_card_generator")

# Default groups in flight for a server given by --openai.base_url (the embedded llama.cpp server
# has a single slot: 1).
EXTERNAL_SERVER_CONCURRENCY = 8


def groups_in_flight(config: Any, embedded: bool) -> int:
    """`--env.process_concurrency`, else the default for the kind of server."""
    if config.process_concurrency is not None:
        return int(config.process_concurrency)
    return 1 if embedded else EXTERNAL_SERVER_CONCURRENCY


@dataclass(frozen=True)
class Step:
    """One prompt of the run and its position in the prompt stream."""

    index: int
    request: Any


class ProcessEnv(Protocol):
    """What the loop needs from the env (MetricCardEnv provides it)."""

    config: Any
    run_stats: RolloutStats
    failed_requests: int
    jsonl_writer: Any

    async def get_next_item(self) -> Step: ...
    async def sample_group(self, step: Step) -> list[ScoredRollout]: ...
    def group_for(self, step: Step, rollouts: list[ScoredRollout]) -> dict[str, Any]: ...
    async def postprocess_histories(self, trajectories: Any) -> Any: ...
    async def handle_send_to_api(
        self, scored_data: Any, item: Any = None, **kwargs: Any
    ) -> Any: ...
    async def wandb_log(self, wandb_metrics: dict[str, Any] | None = None) -> None: ...


async def run_groups(
    env: ProcessEnv, n_groups: int, concurrency: int, on_commit: Any = None
) -> int:
    """Produce `n_groups` groups, at most `concurrency` in flight; return how many were written.

    Raises FatalEnvError after `max_consecutive_failures` failed steps in a row.
    """
    limit = env.config.max_consecutive_failures
    in_flight: dict[int, tuple[Step, asyncio.Task[list[ScoredRollout]]]] = {}
    next_commit = 0
    committed = 0
    failures_in_a_row = 0
    try:
        while committed < n_groups:
            # Launch while fewer than `concurrency` requests are running, never more outstanding
            # steps than groups still missing (so the same prompts are drawn at any concurrency),
            # and a bounded backlog of finished steps waiting for a slow head.
            running = sum(not task.done() for _, task in in_flight.values())
            while (
                running < concurrency
                and committed + len(in_flight) < n_groups
                and len(in_flight) < 4 * concurrency
            ):
                step = await env.get_next_item()
                in_flight[step.index] = (step, asyncio.ensure_future(env.sample_group(step)))
                running += 1
            pending = [task for _, task in in_flight.values() if not task.done()]
            if pending and not in_flight[next_commit][1].done():
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            while next_commit in in_flight and in_flight[next_commit][1].done():
                step, task = in_flight.pop(next_commit)
                next_commit += 1
                try:
                    rollouts = task.result()
                except RequestFailedError as exc:
                    failures_in_a_row += 1
                    env.failed_requests += 1
                    logger.warning("request failed (%d in a row): %s", failures_in_a_row, exc)
                    if failures_in_a_row >= limit:
                        raise FatalEnvError(
                            f"{failures_in_a_row} requests in a row failed; last error: {exc}"
                        ) from exc
                    continue
                failures_in_a_row = 0
                group = await env.postprocess_histories(env.group_for(step, rollouts))
                await env.handle_send_to_api(
                    group, step, do_send_to_api=False, abort_on_any_max_length_exceeded=False
                )
                await env.wandb_log()
                committed += 1
                if on_commit is not None:
                    on_commit()
                if committed >= n_groups:
                    break
    finally:
        for _, task in in_flight.values():
            task.cancel()
        if in_flight:
            await asyncio.gather(*(t for _, t in in_flight.values()), return_exceptions=True)
    return committed


def header(env: Any, concurrency: int) -> str:
    """The few lines `process` prints before its progress bar."""
    config = env.config
    model = env.server.servers[0].config
    where = "embedded llama.cpp server" if env.embedded_server else "server"
    server = f"{model.model_name} ({where} at {model.base_url})"
    out = config.data_path_to_save_groups
    return "\n".join(
        [
            f"MetricCardEnv process: {env.n_groups_to_process} groups x {config.group_size} "
            f"completions, temperature {config.temperature:g}, seed {config.seed}, "
            f"{concurrency} group(s) in flight",
            f"model:    {server}",
            f"rollouts: {out}",
            f"viewer:   {Path(out).with_suffix('.html')}",
        ]
    )


def write_viewer(jsonl_path: str | None, lines: int) -> str | None:
    """Render the HTML viewer beside the JSONL; None when no group was written."""
    if jsonl_path is None or lines == 0:
        return None
    from metric_cards.viewer import render_html

    html_path = str(Path(jsonl_path).with_suffix(".html"))
    try:
        render_html(jsonl_path, html_path)
    except Exception as exc:  # the rollouts are written; a viewer failure must not hide them
        print(
            f"warning: the HTML viewer could not be rendered ({type(exc).__name__}: {exc}); "
            f"the rollouts are complete in {jsonl_path}",
            file=sys.stderr,
        )
        return None
    return html_path


def print_summary(env: Any, seconds: float, html_path: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    stats: RolloutStats = env.run_stats
    metrics = stats.metrics("run")
    table = Table(title="MetricCardEnv process summary", show_header=False)
    table.add_row("groups written", f"{stats.groups} x {env.config.group_size} rollouts")
    table.add_row("valid JSON", f"{metrics.get('run/percent_valid_json', 0):.1f}%")
    table.add_row("mean score", f"{metrics.get('run/mean_score', 0):.3f}")
    for layer in LAYERS:
        table.add_row(f"  mean {layer}", f"{metrics.get(f'run/{layer}_mean', 0):.3f}")
    canaries = stats.canary_rates("run")
    raised = [f"{name} {100 * canaries[f'run/canary_{name}']:.0f}%" for name in CANARIES]
    table.add_row("hacking canaries", ", ".join(raised) if canaries else "n/a")
    table.add_row("within-group score std", f"{metrics.get('run/within_group_score_std', 0):.3f}")
    table.add_row("truncated", f"{metrics.get('run/percent_truncated', 0):.1f}%")
    table.add_row("failed requests", str(env.failed_requests))
    table.add_row("wall time", f"{seconds:.1f}s")
    Console(stderr=False).print(table)
    # Paths outside the table: rich would shorten a long path with an ellipsis.
    print(f"rollouts: {env.config.data_path_to_save_groups}")
    print(f"viewer:   {html_path or '(none: no groups were written)'}", flush=True)


async def process(env: Any, concurrency: int, start_wandb: Any) -> None:
    """The whole `process` command after the env is built: header, setup, groups, viewer,
    summary. `start_wandb()` is called after setup when wandb is on."""
    from tqdm import tqdm

    print(header(env, concurrency), flush=True)
    started = time.monotonic()
    await env.setup()
    if env.config.use_wandb:
        start_wandb()
    env.curr_step = 0
    with tqdm(
        total=env.n_groups_to_process, desc="groups", unit="group", dynamic_ncols=True
    ) as bar:

        def advance() -> None:
            env.curr_step += 1
            bar.update(1)
            bar.set_postfix(mean_score=f"{_mean(env.run_stats.scores):.3f}")

        await run_groups(env, env.n_groups_to_process, concurrency, advance)
    writer = env.jsonl_writer
    writer.close()
    html_path = write_viewer(env.config.data_path_to_save_groups, writer.lines)
    print_summary(env, time.monotonic() - started, html_path)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
