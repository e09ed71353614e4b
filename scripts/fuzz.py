#!/usr/bin/env python3
"""Fuzz the reward and every reader with hostile completions (issue 12).

A seeded generator mutates the real corpus cards (character edits, truncation, fences, <think>
tags, prose, second cards, deep nesting, huge and non-finite numbers, JS/Python literals, lone
surrogates, random Unicode, padding up to and past the size cap, the shapes of
tests/hostile_text.py) and runs every completion through:

  score    metric_cards.reward.score_completion (CPU time of each call is recorded)
  env      metric_cards.groups.score_rollout (tokenizer + reward: the trainer's path), then the
           env's JSONL writer (metric_card_generator.JsonlGroupWriter) for the group
  cli      `python -m metric_cards score IN -o OUT` (score_cli.main, in-process) on the JSONL the
           completions make
  reader   metric_cards.rollouts.RolloutReader over the rollout files (our format and the legacy
           one, rescored), with malformed lines mixed in
  viewer   metric_cards.viewer.render_html over the same files

and checks: no exception anywhere, every score in [0, 1], env score == CLI score == the direct
score. It reports the crashes (stage, exception, the first input), the mismatches, the slowest
completion and its time, and exits 1 if anything failed.

    python scripts/fuzz.py                            # 10,000 completions, seed 0
    python scripts/fuzz.py --n 20000 --seed 7 --budget 300 --save /tmp/fuzz
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import machine

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from hostile_text import SHAPES  # noqa: E402
from rollout_fixtures import llama3_text  # noqa: E402

from metric_cards.catalog import SYSTEM_PROMPT, parse_request  # noqa: E402
from metric_cards.extraction import MAX_COMPLETION_CHARS  # noqa: E402
from metric_cards.reward import score_completion  # noqa: E402

CORPUS = REPO / "tests" / "data" / "deephermes3_3b_metric_cards.jsonl"
K = 4  # completions per group, as the env writes them
BATCH = 256  # completions per rollout file / CLI input file

# --- the generator -----------------------------------------------------------------------------

HOSTILE_CHARS = (
    "{}[]\":,'\\/*#`<>-+.eE0123456789 \n\t\r"
    "abcxyzTNIfn$%€é中\u200b\u202e\ufeff\x00\x1f\x7f\U0001f600\ud800\udfff"
)
UNICODE_RANGES = [
    (0x20, 0x7F),
    (0x80, 0x800),
    (0x800, 0xD800),
    (0xD800, 0xE000),
    (0xE000, 0x110000),
]
PROSE = [
    "Here is the card:",
    "Sure! ```",
    "</think>",
    "<think>",
    "I cannot do that.",
    "{not json}",
    "// comment",
    "Note: values are estimates.",
    "```json",
    "```",
]
NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "0x1F",
    "+5",
    ".5",
    "5.",
    "-0",
    "9" * 400,
    "9" * 4301,
    "-" + "9" * 10_000,
    "1" + "0" * 308,
    "12.5e",
    "1_000",
]


class Generator:
    """Seeded hostile completions: a corpus card through one to three mutations."""

    def __init__(self, seed: int, cards: list[str], prompts: list[str]) -> None:
        self.rng = random.Random(seed)
        self.cards = cards
        self.prompts = prompts
        self.mutations: list[Callable[[str], str]] = [
            self.edit_characters,
            self.truncate,
            self.fence,
            self.think,
            self.prose,
            self.second_card,
            self.deep_nesting,
            self.strange_number,
            self.other_language,
            self.surrogates,
            self.pad,
            self.shape,
            self.random_unicode,
        ]

    def prompt(self) -> str:
        rng = self.rng
        if rng.random() < 0.9:
            return rng.choice(self.prompts)
        return rng.choice(["", "\ud800", "x" * 5000, "Create a card", self.random_unicode("")])

    def completion(self) -> str:
        text = self.rng.choice(self.cards)
        for mutate in self.rng.sample(self.mutations, self.rng.randint(1, 3)):
            text = mutate(text)
        return text

    def finish_reason(self) -> str | None:
        return self.rng.choice(["stop", "stop", "stop", "length", None])

    def _at(self, text: str) -> int:
        return self.rng.randint(0, len(text))

    def edit_characters(self, text: str) -> str:
        chars = list(text)
        for _ in range(self.rng.choice([1, 2, 5, 20])):
            where = self._at(chars)
            kind = self.rng.random()
            if kind < 0.4 or not chars:
                chars.insert(where, self.rng.choice(HOSTILE_CHARS))
            elif kind < 0.7:
                del chars[min(where, len(chars) - 1)]
            else:
                chars[min(where, len(chars) - 1)] = self.rng.choice(HOSTILE_CHARS)
        return "".join(chars)

    def truncate(self, text: str) -> str:
        return text[: self._at(text)]

    def fence(self, text: str) -> str:
        rng = self.rng
        fence = rng.choice(["```json\n{}\n```", "```\n{}```", "```{}", "````json {} ````"])
        text = fence.replace("{}", text, 1)
        extra = rng.choice(["```\n", "```json\n```\n", "``` ", "`"]) * rng.choice([1, 10, 1000])
        return rng.choice([text, extra + text, text + extra, extra + text + extra])

    def think(self, text: str) -> str:
        rng = self.rng
        thought = rng.choice(["hmm", "{", '{"componentType": "x"}', text, "<think>" * 50, ""])
        return rng.choice(
            [
                f"<think>{thought}</think>{text}",
                f"<think>{text}</think>",
                f"<think>{text}",
                f"{thought}</think>{text}",
                f"{text}<think>{thought}</think>",
                "<THINK></think>" * rng.choice([1, 100, 2000]) + text,
                f"<think><think>{thought}</think></think>{text}",
            ]
        )

    def prose(self, text: str) -> str:
        before = " ".join(self.rng.choices(PROSE, k=self.rng.randint(0, 4)))
        after = " ".join(self.rng.choices(PROSE, k=self.rng.randint(0, 4)))
        return f"{before}\n{text}\n{after}"

    def second_card(self, text: str) -> str:
        return text + self.rng.choice(["\n", "", " and "]) + self.rng.choice(self.cards)

    def deep_nesting(self, text: str) -> str:
        depth = self.rng.choice([10, 63, 64, 65, 100, 1000, 20_000])
        opener, closer = self.rng.choice([("[", "]"), ('{"a":', "}"), ("{", "}")])
        nested = opener * depth + "1" + closer * depth * self.rng.choice([0, 1])
        where = text.find('"value":')
        if where == -1 or self.rng.random() < 0.3:
            return nested + text
        return text[: where + 8] + nested + text[where + 8 :]

    def strange_number(self, text: str) -> str:
        for number in ("12.5", "5", "10", "-3.2", "25"):
            if number in text:
                return text.replace(number, self.rng.choice(NUMBERS), 1)
        return text.replace(":", ": " + self.rng.choice(NUMBERS) + ",", 1)

    def other_language(self, text: str) -> str:
        rng = self.rng
        edits = [
            lambda t: t.replace("true", rng.choice(["True", "undefined", "!0"])),
            lambda t: t.replace("false", "False").replace("null", "None"),
            lambda t: t.replace('"', "'"),
            lambda t: t.replace('"componentType"', "componentType").replace('"props"', "props"),
            lambda t: t.replace(",", ", // note\n", 1),
            lambda t: t.replace(",", ", /* c */", 1),
            lambda t: t[: t.rfind("}")] + ",}" if "}" in t else t,
            lambda t: t.replace('"', "\u201c", 2),
        ]
        return rng.choice(edits)(text)

    def surrogates(self, text: str) -> str:
        insert = self.rng.choice(["\\ud800", "\\udfff", "\ud800", "\udfff", "\\ud83d\\ude00"])
        where = text.find('"', text.find('"title"') + 9)
        if where == -1:
            where = self._at(text)
        return text[: where + 1] + insert * self.rng.choice([1, 3, 100]) + text[where + 1 :]

    def pad(self, text: str) -> str:
        size = self.rng.choice([MAX_COMPLETION_CHARS - 10, MAX_COMPLETION_CHARS + 10, 48_000])
        unit = self.rng.choice([" ", "\n", "a", "```", "{", "1", "<think>", "é"])
        padding = unit * max(0, (size - len(text)) // len(unit))
        return self.rng.choice([text + padding, padding + text])

    def shape(self, text: str) -> str:
        name = self.rng.choice(sorted(SHAPES))
        return SHAPES[name](self.rng.choice([100, 2000, MAX_COMPLETION_CHARS, 40_000]))

    def random_unicode(self, text: str) -> str:
        rng = self.rng
        out = []
        for _ in range(rng.choice([1, 50, 2000])):
            low, high = rng.choice(UNICODE_RANGES)
            out.append(chr(rng.randrange(low, high)))
        return "".join(out) if not text or rng.random() < 0.5 else text + "".join(out)

    def malformed_line(self) -> str:
        """A rollout-file line that is not a well-formed group."""
        rng = self.rng
        group = {"messages": [[{"role": "user", "content": "x"}]], "scores": [0.5]}
        choices = [
            lambda: json.dumps(group)[: rng.randint(1, 30)],
            lambda: "[" * 100_000 + "]" * 100_000,
            lambda: '{"messages": ' + "[" * 100_000,
            lambda: json.dumps({**group, "scores": [int("9" * 400)]}),
            lambda: json.dumps({**group, "scores": [rng.choice([1e308, -1e308, 1e6])]}),
            lambda: json.dumps(group).replace("0.5", rng.choice(["NaN", "Infinity", "1e400"])),
            lambda: json.dumps({"messages": [["\ud800"]], "scores": [0.1]}),
            lambda: "\ufeff" + json.dumps(group),
            lambda: json.dumps(rng.choice([None, 1, "x", [], {"messages": None}])),
            lambda: json.dumps({"messages": [[{"role": "assistant", "content": None}]]}),
            lambda: self.random_unicode(""),
            lambda: json.dumps({**group, "metric_card": {"rollouts": [None], "request": 5}}),
        ]
        return rng.choice(choices)()


# --- running the readers -------------------------------------------------------------------------


@dataclass
class Case:
    index: int
    prompt: str
    completion: str
    finish_reason: str | None
    score: float | None = None  # score_completion's
    env_score: float | None = None  # score_rollout's result.score


_CHARACTER = re.compile(r"character '[^']*'")
_DETAILS = re.compile(r"(?<![\w-])\d+(?:-\d+)?")


@dataclass
class Report:
    crashes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # -> [count, example]
    mismatches: dict[str, list[Any]] = field(default_factory=dict)
    slowest: dict[str, list[tuple[float, int, str]]] = field(default_factory=dict)  # by stage
    counts: dict[str, int] = field(default_factory=dict)

    def crash(self, stage: str, error: BaseException, example: Any) -> None:
        text = str(error).splitlines()[0][:120] if str(error) else ""
        # one entry per kind of crash: positions and characters vary between inputs
        text = _DETAILS.sub("N", _CHARACTER.sub("character C", text))
        message = f"{type(error).__name__}: {text}"
        where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        if where is not None:
            message += f" ({Path(where.filename).name}:{where.lineno})"
        entry = self.crashes.setdefault((stage, message), [0, example])
        entry[0] += 1

    def mismatch(self, kind: str, example: Any) -> None:
        self.mismatches.setdefault(kind, [0, example])[0] += 1

    def timed(self, seconds: float, stage: str, case: Case) -> None:
        entries = self.slowest.setdefault(stage, [])
        entries.append((seconds, case.index, case.completion))
        if len(entries) > 64:
            entries.sort(reverse=True)
            del entries[8:]

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


class Harness:
    def __init__(self, report: Report, workdir: Path) -> None:
        from metric_cards.adjustments import AdjustmentConfig
        from metric_cards.reward import RewardConfig

        self.report = report
        self.workdir = workdir
        self.reward = RewardConfig()
        self.adjustment = AdjustmentConfig()
        self.tokenizer = self._tokenizer()

    def _tokenizer(self) -> Any:
        from tiny_tokenizer import build_tiny_tokenizer
        from transformers import AutoTokenizer

        from metric_cards.tokenization import ChatTokenizer

        corpus = [SYSTEM_PROMPT] * 4 + CORPUS.read_text(encoding="utf-8").splitlines()[:60]
        path = build_tiny_tokenizer(self.workdir / "tokenizer", corpus)
        return ChatTokenizer(AutoTokenizer.from_pretrained(str(path)))

    def run_batch(self, cases: list[Case], malformed: list[str]) -> None:
        groups = self.score_and_group(cases)
        rollout_file = self.write_rollouts(groups, cases, malformed)
        self.run_cli(cases)
        self.read(rollout_file)
        self.render(rollout_file)

    # score + env
    def score_and_group(self, cases: list[Case]) -> list[dict[str, Any]]:
        from metric_cards.groups import Completion, build_group, prompt_messages, score_rollout

        report = self.report
        groups = []
        for start in range(0, len(cases), K):
            chunk = cases[start : start + K]
            prompt = chunk[0].prompt
            request = parse_request(prompt)
            rollouts = []
            for case in chunk:
                case.prompt = prompt
                result = None
                try:
                    started = time.process_time()
                    result = score_completion(case.completion, request, case.finish_reason)
                    report.timed(time.process_time() - started, "score", case)
                    case.score = result.score
                    if not 0.0 <= result.score <= 1.0:
                        report.mismatch("score outside [0, 1]", case.completion)
                except Exception as error:
                    report.crash("score", error, case.completion)
                report.count("score")
                try:
                    started = time.process_time()
                    rollout = score_rollout(
                        request,
                        prompt_messages(prompt),
                        Completion(case.completion, case.finish_reason),
                        self.tokenizer,
                        self.reward,
                        self.adjustment,
                        256,
                    )
                    report.timed(time.process_time() - started, "env", case)
                    case.env_score = rollout.result.score
                    rollouts.append(rollout)
                except Exception as error:
                    report.crash("env", error, case.completion)
                    if result is not None:  # keep the completion for the writer and readers
                        rollouts.append(_untokenized(request, prompt, case, result))
                report.count("env")
                both = case.env_score is not None and case.score is not None
                if both and case.env_score != case.score:
                    report.mismatch("env score != score_completion", case.completion)
            try:
                groups.append(build_group(request, rollouts))
            except Exception as error:
                report.crash("env-group", error, [c.completion for c in chunk])
        return groups

    def write_rollouts(
        self, groups: list[dict[str, Any]], cases: list[Case], malformed: list[str]
    ) -> Path:
        """The env's writer for each group (each crash reported; the group is then written
        ASCII-escaped so the readers still see it), legacy lines and malformed lines."""
        from metric_card_generator import JsonlGroupWriter

        path = self.workdir / "rollouts.jsonl"
        writer = JsonlGroupWriter(str(path))
        rng = random.Random(len(cases))
        try:
            for group in groups:
                try:
                    writer.write(group)
                except Exception as error:
                    self.report.crash("env-writer", error, group["messages"][0][-1]["content"])
                    writer._file.write(json.dumps(group) + "\n")
                self.report.count("env-writer")
        finally:
            writer.close()
        with path.open("ab") as raw:  # bytes: a malformed line may not even be UTF-8
            for case in cases[::8]:  # the original environment's format, random scores
                text = llama3_text(SYSTEM_PROMPT, case.prompt, case.completion, rng.random() < 0.8)
                raw.write(json.dumps({"messages": [[text]], "scores": [0.1]}).encode() + b"\n")
            for line in malformed:
                raw.write(line.replace("\n", " ").encode("utf-8", "surrogatepass") + b"\n")
        return path

    def run_cli(self, cases: list[Case]) -> None:
        source, target = self.workdir / "cli-in.jsonl", self.workdir / "cli-out.jsonl"
        lines = [
            json.dumps(
                {
                    "fuzz_id": case.index,
                    "prompt": case.prompt,
                    "completion": case.completion,
                    "finish_reason": case.finish_reason,
                }
            )
            for case in cases
        ]
        if not self._cli(source, target, lines):
            for line, case in zip(lines, cases, strict=True):  # find which lines crash it
                if not self._cli(source, target, [line]):
                    self.report.crash("cli", self._last_cli_error, case.completion)
        self.report.count("cli", len(cases))
        by_id = {case.index: case for case in cases}
        scored = set()
        if target.exists():
            for line in target.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
                record = json.loads(line)
                case = by_id[record["fuzz_id"]]
                scored.add(case.index)
                if record["score"] != case.score:
                    self.report.mismatch("CLI score != score_completion", case.completion)

    def _cli(self, source: Path, target: Path, lines: list[str]) -> bool:
        from metric_cards import score_cli

        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        target.unlink(missing_ok=True)
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                status = score_cli.main([str(source), "-o", str(target)])
        except Exception as error:
            self._last_cli_error: BaseException = error
            return False
        if status != 0:
            self._last_cli_error = RuntimeError(f"exit {status}: {errors.getvalue()[:200]}")
            return False
        return True

    def read(self, path: Path) -> None:
        from metric_cards.rollouts import RolloutReader

        for rescore in (False, True):
            try:
                reader = RolloutReader(path, rescore=rescore, progress=False, on_issue=_ignore)
                rollouts = list(reader)
            except Exception as error:
                self.report.crash(
                    f"reader(rescore={rescore})", error, path.read_text(errors="replace")[:2000]
                )
                continue
            self.report.count("reader lines", reader.stats.lines)
            if rescore:
                for rollout in rollouts:
                    if rollout.format == "legacy":
                        self._compare_rescored(rollout)

    def _compare_rescored(self, rollout: Any) -> None:
        try:
            request = parse_request(rollout.prompt)
            want = score_completion(rollout.completion, request, rollout.finish_reason).score
        except Exception:
            return  # already reported by the score stage
        if rollout.score != want:
            self.report.mismatch("legacy rescore != score_completion", rollout.completion)

    def render(self, path: Path) -> None:
        from metric_cards.viewer import render_html

        try:
            render_html(path, self.workdir / "view.html", quiet=True, allow_empty=True)
        except Exception as error:
            self.report.crash("viewer", error, path.read_text(errors="replace")[:2000])
        self.report.count("viewer files")


def _ignore(issue: Any) -> None:
    pass


def _untokenized(request: Any, prompt: str, case: Case, result: Any) -> Any:
    """The rollout score_rollout would have made, without tokens (its tokenizer failed)."""
    from metric_cards.groups import ScoredRollout, prompt_messages

    assistant = {"role": "assistant", "content": case.completion}
    return ScoredRollout(
        messages=[*prompt_messages(prompt), assistant],
        tokens=[],
        masks=[],
        result=result,
        score=result.score,
        finish_reason=case.finish_reason,
        completion_tokens=0,
        adjustments={},
    )


# --- main ----------------------------------------------------------------------------------------


def batches(generator: Generator, n: int) -> Iterator[tuple[list[Case], list[str]]]:
    index = 0
    while index < n:
        size = min(BATCH, n - index)
        cases = []
        for _ in range(size):
            prompt = generator.prompt() if index % K == 0 else ""
            cases.append(Case(index, prompt, generator.completion(), generator.finish_reason()))
            index += 1
        malformed = [generator.malformed_line() for _ in range(8)]
        yield cases, malformed


def print_report(report: Report, n: int, seconds: float, cpu: float) -> None:
    print(f"machine: {machine()}")
    print(f"completions: {n} in {seconds:.0f} s wall, {cpu:.0f} s CPU")
    print("runs: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.counts.items())))
    total = sum(count for count, _ in report.crashes.values())
    print(f"crashes: {total} ({len(report.crashes)} distinct)")
    for (stage, message), (count, example) in sorted(report.crashes.items()):
        print(f"  [{stage}] x{count} {message}")
        print(f"      first input: {ascii(example)[:160]}")
    total = sum(count for count, _ in report.mismatches.values())
    print(f"mismatches: {total}")
    for kind, (count, example) in sorted(report.mismatches.items()):
        print(f"  x{count} {kind}; first input: {ascii(example)[:160]}")
    for stage, entries in sorted(report.slowest.items()):
        entries.sort(reverse=True)
        for seconds_taken, index, completion in entries[:3]:
            print(
                f"slowest {stage}: {seconds_taken * 1e3:.1f} ms CPU, input {index}, "
                f"{len(completion):,} chars, starts {ascii(completion[:60])}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="completions to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=600.0, help="stop after this many s")
    parser.add_argument("--save", type=Path, help="write the crashing inputs here (JSONL)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    generator = Generator(args.seed, [r["completion"] for r in rows], [r["prompt"] for r in rows])
    report = Report()
    started, cpu_started = time.perf_counter(), time.process_time()
    done = 0
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        harness = Harness(report, Path(tmp))
        # Warm up as a running env is: per-process data (icon set, profiles) is built once.
        harness.score_and_group([Case(-1, r["prompt"], r["completion"], "stop") for r in rows[:K]])
        report.slowest.clear()
        report.counts.clear()
        for cases, malformed in batches(generator, args.n):
            harness.run_batch(cases, malformed)
            done += len(cases)
            if time.perf_counter() - started > args.budget:
                print(f"budget of {args.budget:.0f} s reached after {done} completions")
                break
    print_report(report, done, time.perf_counter() - started, time.process_time() - cpu_started)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        with (args.save / "slowest.jsonl").open("w", encoding="utf-8") as out:
            for stage, entries in sorted(report.slowest.items()):
                for seconds_taken, _, completion in entries[:5]:
                    record = {"stage": stage, "seconds": seconds_taken, "completion": completion}
                    out.write(json.dumps(record) + "\n")
        with (args.save / "crashes.jsonl").open("w", encoding="utf-8") as out:
            for (stage, message), (count, example) in report.crashes.items():
                record = {"stage": stage, "error": message, "count": count, "input": example}
                out.write(json.dumps(record) + "\n")
    return 1 if report.crashes or report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
