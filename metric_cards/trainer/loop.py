"""The whole RL loop on one machine: run-api, the inference server on the current weights, the
env's `serve`, and the trainer, until `steps` updates (or `max_minutes`) are done.

    trainer --register--> run-api <--groups-- env `serve` <--completions-- llama.cpp (policy.gguf)
       |  GET /batch                                                           ^
       +-- GRPO update -> policy.gguf (F16) -> restart llama.cpp on it --------+

Per step: wait for a batch (the env samples it meanwhile), one update, and every `sync_every`
steps the new weights become the served ones. The server is restarted only once the env has
queued the next batch, so no request is cut off: each batch is sampled by the weights of at most
one update before (one step off-policy, the usual asynchronous GRPO set-up). The held-out eval
runs on the served weights before the first step, every `eval_every` steps and at the end;
results go to `eval.jsonl` and `steps.jsonl` in the output directory.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from metric_cards.trainer.api_client import Group, TrajectoryApi, TrajectoryApiError
from metric_cards.trainer.processes import ChildProcess

REPO = Path(__file__).resolve().parents[2]
POLICY_GGUF = "policy.gguf"  # its stem is the served model's name; the file is replaced in place
POLL_S = 1.0  # run-api is polled by the env ten times a second already


class RunError(RuntimeError):
    """The loop cannot go on (a helper process died, a server never answered)."""


@dataclass
class RunConfig:
    out_dir: Path = Path("runs/grpo")
    steps: int = 20
    groups_per_step: int = 4
    group_size: int = 4
    lr: float = 2e-5
    temperature: float = 0.9
    max_tokens: int = 200
    clip_eps: float = 0.2
    kl_coef: float = 0.0
    scale_by_std: bool = True
    # Under this reward most early groups are near-ties (0.04 vs 0.05: no card either way);
    # the floor keeps them from weighing as much as a group with a real card in it.
    min_std: float = 0.05
    grad_clip: float = 1.0
    micro_batch: int = 4
    bf16: bool = True
    sync_every: int = 1
    eval_every: int = 5
    eval_size: int = 32
    checkpoint_every: int = 5
    max_minutes: float | None = None
    model: str | None = None  # GGUF (default: the embedded SmolLM2) or a HF model directory
    resume: bool = False
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    seed: int = 0
    # An inference server you run yourself (no llama.cpp started, no weight sync): for tests
    # and for servers that load weights on their own.
    inference_url: str | None = None
    served_model: str | None = None
    tokenizer: str | None = None
    batch_timeout_s: float = 900.0


def _jsonl_append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class Loop:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.out = Path(config.out_dir)
        self.started = time.monotonic()
        self.children: list[ChildProcess] = []
        self.server: Any = None  # EmbeddedServer while we manage llama.cpp
        self.server_port: int | None = None
        self.api: TrajectoryApi | None = None
        self.api_process: ChildProcess | None = None
        self.env_process: ChildProcess | None = None
        self.step = 0
        self.served_step = -1  # the step whose weights the inference server has

    # ------------------------------------------------------------------------ helpers
    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed / 60:5.1f} min] {message}", flush=True)

    @property
    def managed_server(self) -> bool:
        return self.config.inference_url is None

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("WANDB_API_KEY", None)
        env["WANDB_MODE"] = "disabled"
        return env

    def _check_children(self) -> None:
        for child in self.children:
            if not child.alive():
                raise RunError(
                    f"{child.name} exited (log {child.log_path}); last lines:\n{child.log_tail()}"
                )
        if self.server is not None:
            self.server.check_alive()

    def _minutes_left(self) -> float:
        if self.config.max_minutes is None:
            return float("inf")
        return self.config.max_minutes - (time.monotonic() - self.started) / 60

    # ---------------------------------------------------------------- the pieces
    def _start_server(self, gguf: Path) -> None:
        from metric_cards.local_server import EmbeddedServer

        self.server = EmbeddedServer(
            gguf,
            port=self.server_port,
            n_threads=self.config.threads,
            log_dir=self.out / "logs",
            handle_sigterm=False,
        )
        self.server.start()
        self.server_port = self.server.port

    def _inference(self) -> tuple[str, str]:
        if self.managed_server:
            assert self.server is not None
            return self.server.base_url, self.server.model_name
        return str(self.config.inference_url), str(self.config.served_model or "default")

    def _start_api(self) -> None:
        from metric_cards.local_server import free_port

        port = free_port()
        script = Path(sys.executable).with_name("run-api")
        base = (
            [str(script)] if script.exists() else [sys.executable, "-m", "atroposlib.cli.run_api"]
        )
        self.api_process = ChildProcess(
            "run-api",
            [*base, "--host", "127.0.0.1", "--port", str(port)],
            self.out / "logs" / "run-api.log",
            self._child_env(),
        ).start()
        self.children.append(self.api_process)
        self.api = TrajectoryApi(f"http://127.0.0.1:{port}")
        self.api.wait_ready(60, self.api_process.alive)

    def _start_env(self, tokenizer_dir: str) -> None:
        assert self.api is not None
        base_url, model_name = self._inference()
        c = self.config
        argv = [
            sys.executable, str(REPO / "metric_card_generator.py"), "serve",
            "--env.rollout_server_url", self.api.url,
            "--openai.base_url", base_url,
            "--openai.model_name", model_name,
            "--env.tokenizer_name", tokenizer_dir,
            "--env.group_size", str(c.group_size),
            "--env.temperature", str(c.temperature),
            "--env.max_completion_tokens", str(c.max_tokens),
            "--env.total_steps", str(10**9),  # the trainer decides when the run ends
            "--env.max_batches_offpolicy", "1",
            "--env.steps_per_eval", "0",  # the trainer runs the held-out eval itself
            "--env.use_wandb", "false",
            "--env.seed", str(c.seed + self.step),  # a resumed run sees new prompts
            "--env.data_path_to_save_groups", str(self.out / "rollouts.jsonl"),
        ]  # fmt: skip
        self.env_process = ChildProcess(
            "env serve", argv, self.out / "logs" / "env-serve.log", self._child_env()
        ).start()
        self.children.append(self.env_process)

    def _record_pids(self) -> None:
        """processes.json: the helper processes' pids, for whoever must check they are gone."""
        pids = {child.name: child.pid for child in self.children}
        if self.server is not None:
            pids["llama.cpp server"] = self.server.pid
        (self.out / "processes.json").write_text(json.dumps(pids, indent=2) + "\n")

    def _stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        previous = signal.getsignal(signal.SIGTERM)
        if threading_is_main():
            signal.signal(signal.SIGTERM, _raise_system_exit)
        try:
            return self._run()
        finally:
            self._stop_all()
            if threading_is_main():
                signal.signal(signal.SIGTERM, previous)

    def _run(self) -> dict[str, Any]:
        import torch

        from metric_cards.tokenization import ChatTokenizer
        from metric_cards.trainer.evaluation import evaluate_policy
        from metric_cards.trainer.policy import Policy, load_model

        c = self.config
        torch.set_num_threads(max(1, c.threads))
        torch.manual_seed(c.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "evals").mkdir(exist_ok=True)
        eval_path, steps_path = self.out / "eval.jsonl", self.out / "steps.jsonl"
        if not c.resume:
            for stale in (eval_path, steps_path, self.out / "rollouts.jsonl"):
                stale.unlink(missing_ok=True)
        (self.out / "config.json").write_text(
            json.dumps(
                {k: str(v) if isinstance(v, Path) else v for k, v in asdict(c).items()}, indent=2
            )
            + "\n"  # fmt: skip
        )

        source = self._model_source()
        self.log(f"loading the policy from {source}")
        model = load_model(source)
        policy = Policy(
            model,
            lr=c.lr,
            clip_eps=c.clip_eps,
            kl_coef=c.kl_coef,
            grad_clip=c.grad_clip,
            micro_batch=c.micro_batch,
            scale_by_std=c.scale_by_std,
            min_std=c.min_std,
            bf16=c.bf16,
        )
        if c.resume and (self.out / "checkpoint" / "checkpoint.pt").exists():
            self.step = policy.load(self.out / "checkpoint")["step"]
            self.log(f"resumed from step {self.step}")
        tokenizer_dir = self._tokenizer_dir(source)
        from transformers import AutoTokenizer

        hf_tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        chat_tokenizer = ChatTokenizer(hf_tokenizer)
        eos = hf_tokenizer.eos_token_id
        end_of_turn = int(eos) if isinstance(eos, int) else None

        sync_s = 0.0
        if self.managed_server:
            sync_s, _ = self._sync(policy, source, restart=False, wait_for_env=False)
        evaluated = {row["step"] for row in _read_jsonl(eval_path)}

        def run_eval() -> None:
            if self.step in evaluated:
                return
            base_url, name = self._inference()
            result = evaluate_policy(
                base_url, name, chat_tokenizer, size=c.eval_size, max_tokens=c.max_tokens
            )
            row = {"step": self.step, **result.metrics,
                   "elapsed_min": round((time.monotonic() - self.started) / 60, 2)}  # fmt: skip
            _jsonl_append(eval_path, row)
            with (self.out / "evals" / f"step-{self.step:05d}.jsonl").open("w") as fh:
                for sample in result.samples:
                    fh.write(json.dumps(sample, ensure_ascii=False) + "\n")
            evaluated.add(self.step)
            self.log(
                f"eval step {self.step}: mean score {row['mean_score']:.3f}, valid JSON "
                f"{100 * row['valid_json']:.0f}%, truncated {100 * row['truncated']:.0f}% "
                f"({row['seconds']:.0f}s)"
            )

        run_eval()
        self._start_api()
        assert self.api is not None
        self.api.register(
            batch_size=c.groups_per_step * c.group_size,
            max_token_len=4096,
            num_steps=c.steps,
            starting_step=self.step,
            checkpoint_dir=str(self.out / "checkpoint"),
        )
        self._start_env(tokenizer_dir)
        self._record_pids()
        self.log(
            f"run-api at {self.api.url}, env serving from {self._inference()[0]}; training "
            f"{c.steps - self.step} steps of {c.groups_per_step} groups x {c.group_size}"
        )
        last_step_s = 0.0
        from metric_cards.trainer.rollout_stats import rescore_group, summarise

        while self.step < c.steps:
            if self._minutes_left() < max(1.0, 1.5 * last_step_s / 60):
                self.log("stopping: --max-minutes budget reached")
                break
            step_started = time.monotonic()
            batch = self._wait_for_batch()
            gen_s = time.monotonic() - step_started
            stats = summarise(
                [rescore_group(g, chat_tokenizer, end_of_turn, c.max_tokens) for g in batch],
                "train",
            )
            update = policy.update(batch)
            self.step += 1
            sync_s = 0.0
            if self.managed_server and (self.step % c.sync_every == 0 or self.step == c.steps):
                last = self.step == c.steps
                sync_s, queue_wait_s = self._sync(
                    policy, source, restart=True, wait_for_env=not last
                )
                gen_s += queue_wait_s
            row = {
                "step": self.step,
                "mean_score": sum(s for g in batch for s in g["scores"])
                / max(1, sum(len(g["scores"]) for g in batch)),
                "valid_json": stats["valid_json"],
                "truncated": stats["truncated"],
                "canaries": stats["canaries"],
                "layers": stats["layers"],
                "completion_tokens": int(stats["completion_tokens_mean"] * stats["n"]),
                "trained_tokens": update.trained_tokens,
                "learning_sequences": update.sequences,
                "loss": update.loss,
                "grad_norm": update.grad_norm,
                "kl": update.kl,
                "gen_s": round(gen_s, 2),
                "train_s": round(update.seconds, 2),
                "sync_s": round(sync_s, 2),
                "elapsed_min": round((time.monotonic() - self.started) / 60, 2),
            }
            _jsonl_append(steps_path, row)
            canaries = ", ".join(f"{k} {100 * v:.0f}%" for k, v in stats["canaries"].items() if v)
            self.log(
                f"step {self.step}/{c.steps}: mean score {row['mean_score']:.3f}, valid JSON "
                f"{100 * row['valid_json']:.0f}%, {update.sequences} seqs learned from; "
                f"wait for batch {gen_s:.0f}s, train {update.seconds:.0f}s, sync {sync_s:.0f}s"
                + (f"; canaries: {canaries}" if canaries else "")
            )
            if self.step % c.checkpoint_every == 0:
                policy.save(self.out / "checkpoint", self.step)
            if self.step % c.eval_every == 0 and self.step < c.steps:
                run_eval()
            last_step_s = time.monotonic() - step_started
        if self.step not in evaluated and self.step > 0:
            if self.managed_server and self.served_step != self.step:
                self._sync(policy, source, restart=True, wait_for_env=False)
            run_eval()
        policy.save(self.out / "checkpoint", self.step)
        summary = {
            "steps": self.step,
            "wall_s": round(time.monotonic() - self.started, 1),
            "env_cpu_s": self.env_process.cpu_seconds() if self.env_process else None,
            "api_cpu_s": self.api_process.cpu_seconds() if self.api_process else None,
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.log(f"done: {self.step} steps; results in {self.out}")
        return summary

    def _model_source(self) -> str:
        if self.config.model:
            return self.config.model
        from metric_cards.local_server import resolve_model_path

        return resolve_model_path(None)

    def _tokenizer_dir(self, source: str) -> str:
        if self.config.tokenizer:
            return self.config.tokenizer
        if source.endswith(".gguf"):
            from metric_cards.gguf_tokenizer import tokenizer_dir_for_gguf

            return str(tokenizer_dir_for_gguf(source))
        return source

    def _sync(self, policy: Any, source: str, *, restart: bool, wait_for_env: bool
              ) -> tuple[float, float]:  # fmt: skip
        """Write the weights as GGUF and (re)start llama.cpp on them, on the same port.

        Returns (seconds spent writing and restarting, seconds spent waiting for the env to
        finish the batch it was sampling)."""
        from metric_cards.trainer.gguf_export import write_gguf

        started = time.monotonic()
        if not source.endswith(".gguf"):
            raise RunError("the managed llama.cpp server needs a GGUF model (--model x.gguf)")
        path = write_gguf(policy.model.state_dict(), source, self.out / POLICY_GGUF)
        waited = 0.0
        if wait_for_env:
            # Restart only between batches: the env has queued the next one and sends nothing.
            wait_started = time.monotonic()
            self._wait_until_queued(self.config.groups_per_step)
            waited = time.monotonic() - wait_started
        if restart and self.server is not None:
            self.server.stop()
            self.server = None
        if self.server is None:
            self._start_server(path)
            self._record_pids()
        self.served_step = self.step
        return time.monotonic() - started - waited, waited

    def _wait_until_queued(self, groups: int) -> None:
        assert self.api is not None
        deadline = time.monotonic() + self.config.batch_timeout_s
        while self.api.queued_groups() < groups:
            self._check_children()
            if time.monotonic() > deadline:
                raise RunError(f"the env queued no batch in {self.config.batch_timeout_s:.0f}s")
            time.sleep(POLL_S)

    def _wait_for_batch(self) -> list[Group]:
        assert self.api is not None
        deadline = time.monotonic() + self.config.batch_timeout_s
        while True:
            self._check_children()
            try:
                batch = self.api.batch()
            except TrajectoryApiError as exc:
                raise RunError(str(exc)) from exc
            if batch:
                return batch
            if time.monotonic() > deadline:
                raise RunError(
                    f"no batch from run-api in {self.config.batch_timeout_s:.0f}s; env log "
                    f"{self.env_process.log_path if self.env_process else '?'}"
                )
            time.sleep(POLL_S)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
