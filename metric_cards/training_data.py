"""Turn rollouts into fine-tuning data: filter, clean, deduplicate, pair, split, analyse.

The logic behind trainingDataScript.py, one rollout (or one group) at a time so a multi-GB
rollout file streams through in flat memory. The only state that grows is the set of 16-byte
digests used for deduplication (and, with --analyze, 8 bytes of score per rollout).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metric_cards.catalog import SYSTEM_PROMPT
from metric_cards.jsonutil import dumps_line, dumps_sorted, is_unicode
from metric_cards.rollouts import Rollout, RolloutGroup
from metric_cards.score_stats import ScoreStats

FORMATS = ("prompt_completion", "messages")
DEDUP_MODES = ("prompt", "global", "off")
SPLIT_MODES = ("prompt", "row")
HQ_FILENAME = "metric_training_high_quality.jsonl"
# Written into every dataset directory we save: only a directory holding it (or an empty one)
# is ever replaced by --dataset; anything else might be the user's and is refused.
DATASET_MARKER = ".metric_cards_dataset"

# Drop reasons, in the order the checks run (a rollout is counted under the first that fails).
NO_SCORE = "no score"
BELOW_THRESHOLD = "score at or below the threshold"
TRUNCATED = "truncated (finish_reason=length) and no complete JSON"
NO_JSON = "no JSON found"
REPAIRED = "JSON only parses after repair"
NOT_A_CARD = "not a metric card"
NOT_UNICODE = "not valid Unicode (a lone surrogate: no tokenizer can encode it)"
DUPLICATE = "duplicate completion"


def card_problem(value: Any) -> str | None:
    """Why `value` is not a usable metric card, or None if it is one.

    The bar for training data: componentType "metricCard" and props with a non-empty title and
    value. (The reward's schema layer is finer; this is the original script's check.)
    """
    if not isinstance(value, dict):
        return "top level is not an object"
    if value.get("componentType") != "metricCard":
        return 'componentType is not "metricCard"'
    props = value.get("props")
    if not isinstance(props, dict):
        return "no props object"
    for key in ("title", "value"):
        item = props.get(key)
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            return f"props.{key} missing"
        if isinstance(item, str) and not item.strip():
            return f"props.{key} empty"
    return None


def system_message(rollout: Rollout) -> str:
    """The rollout's system prompt; the env's own when the file did not carry one."""
    return rollout.system if rollout.system is not None else SYSTEM_PROMPT


def make_row(rollout: Rollout, completion: str, fmt: str, metadata: bool = False) -> dict[str, Any]:
    """One training row in `fmt` (see FORMATS) for `completion` as the answer to `rollout`."""
    if fmt == "messages":
        row: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": system_message(rollout)},
                {"role": "user", "content": rollout.prompt},
                {"role": "assistant", "content": completion},
            ]
        }
    else:
        row = {"prompt": rollout.prompt, "completion": completion}
    if metadata:
        request = rollout.request
        row.update(
            score=rollout.score,
            metric=request.metric if request else None,
            domain=request.domain if request else None,
            period=request.period if request else None,
            source=rollout.source,
        )
    return row


@dataclass
class Example:
    """A kept rollout: the row to write and what decides where it goes."""

    rollout: Rollout
    completion: str  # fences/think/prose stripped
    row: dict[str, Any]
    high_quality: bool


@dataclass
class Decision:
    kept: bool
    reason: str  # "kept" or one of the drop reasons
    example: Example | None = None


@dataclass
class TrainingFilter:
    """Decide, rollout by rollout, what goes into the fine-tuning file."""

    score_threshold: float = 0.8  # keep score > this
    hq_threshold: float = 0.9  # high-quality file: kept and score >= this
    fmt: str = "prompt_completion"
    dedup: str = "prompt"  # "prompt": same card for the same prompt; "global": same card at all
    metadata: bool = False
    extract: Callable[[str], Any] | None = None  # metric_cards.extraction.extract_json
    _seen: set[bytes] = field(default_factory=set)
    reasons: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {self.fmt!r}")
        if self.dedup not in DEDUP_MODES:
            raise ValueError(f"dedup must be one of {DEDUP_MODES}, not {self.dedup!r}")
        if self.extract is None:
            # The single place fences, think blocks and prose are stripped.
            from metric_cards.extraction import extract_json

            self.extract = extract_json

    @property
    def duplicates(self) -> int:
        return self.reasons[DUPLICATE]

    def consider(self, rollout: Rollout) -> Decision:
        decision = self._decide(rollout)
        self.reasons[decision.reason if not decision.kept else "kept"] += 1
        return decision

    def _decide(self, rollout: Rollout) -> Decision:
        score = rollout.score
        if score is None:
            return Decision(False, NO_SCORE)
        if not score > self.score_threshold:
            return Decision(False, BELOW_THRESHOLD)
        assert self.extract is not None
        extraction = self.extract(rollout.completion)
        if extraction.value is None or extraction.repaired:
            if rollout.finish_reason == "length":
                return Decision(False, TRUNCATED)
            return Decision(False, NO_JSON if extraction.value is None else REPAIRED)
        problem = card_problem(extraction.value)
        if problem is not None:
            return Decision(False, f"{NOT_A_CARD}: {problem}")
        if not (is_unicode(extraction.text) and is_unicode(rollout.prompt)):
            return Decision(False, NOT_UNICODE)
        if self.dedup != "off":
            scope = rollout.prompt.encode() if self.dedup == "prompt" else b""
            digest = hashlib.blake2b(
                # Key order and whitespace don't make two cards different.
                scope + b"\x00" + dumps_sorted(extraction.value),
                digest_size=16,
            ).digest()
            if digest in self._seen:
                return Decision(False, DUPLICATE)
            self._seen.add(digest)
        completion = extraction.text.strip()
        row = make_row(rollout, completion, self.fmt, self.metadata)
        example = Example(rollout, completion, row, score >= self.hq_threshold - 1e-9)
        return Decision(True, "kept", example)


# --- preference pairs --------------------------------------------------------------------------


def preference_pair(
    group: RolloutGroup, margin: float, fmt: str = "prompt_completion"
) -> dict[str, Any] | None:
    """Best vs worst rollout of one group, if their scores differ by at least `margin`.

    Completions are kept as the model wrote them (fences, prose and all): what made the
    rejected one worse is exactly what the preference should teach. On equal scores the
    earlier rollout wins, so the choice is deterministic.
    """
    # Rollouts whose text is not valid Unicode are left out: no tokenizer could train on them.
    scored = [
        r
        for r in group.rollouts
        if r.score is not None and is_unicode(r.completion) and is_unicode(r.prompt)
    ]
    if len(scored) < 2:
        return None
    best = max(scored, key=lambda r: r.score)  # type: ignore[arg-type,return-value]
    worst = min(scored, key=lambda r: r.score)  # type: ignore[arg-type,return-value]
    assert best.score is not None and worst.score is not None
    if best.score - worst.score < margin - 1e-9 or best.completion == worst.completion:
        return None
    pair: dict[str, Any]
    if fmt == "messages":
        pair = {
            "prompt": [
                {"role": "system", "content": system_message(best)},
                {"role": "user", "content": best.prompt},
            ],
            "chosen": [{"role": "assistant", "content": best.completion}],
            "rejected": [{"role": "assistant", "content": worst.completion}],
        }
    else:
        pair = {"prompt": best.prompt, "chosen": best.completion, "rejected": worst.completion}
    pair.update(chosen_score=best.score, rejected_score=worst.score, source_line=group.line_number)
    return pair


# --- train/validation split --------------------------------------------------------------------


def prompt_in_validation(prompt: str, seed: int, val_fraction: float) -> bool:
    """Seeded, stateless assignment of a prompt to the validation split.

    All rollouts of one prompt land in the same split, so validation never scores the model on
    a prompt it was trained on. The split's size is val_fraction of the prompts on average.
    """
    digest = hashlib.blake2b(f"{seed}\x00{prompt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < val_fraction


def is_our_dataset(path: Path) -> bool:
    """Whether `path` is a dataset directory this module saved (it holds our marker file)."""
    return path.is_dir() and not path.is_symlink() and (path / DATASET_MARKER).is_file()


def may_replace_dataset(path: Path) -> bool:
    """Whether --dataset may replace what is at `path`: an empty directory or one of ours."""
    if path.is_symlink() or not path.is_dir():
        return False
    return is_our_dataset(path) or not any(path.iterdir())


def dataset_dir_problem(path: Path, keep: Iterable[Path]) -> str | None:
    """Why `path` cannot be the --dataset directory, or None. `keep`: the run's input/outputs."""
    if path.is_symlink():
        return f"{path} is a symbolic link; give the directory itself"
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a directory"
    resolved = path.resolve()
    for other in keep:
        target = other.resolve()
        if target == resolved or resolved in target.parents:
            return f"{path} holds {other}, which this run reads or writes"
    if path.exists() and not may_replace_dataset(path):
        return (
            f"{path} is a non-empty directory that this script did not write (no "
            f"{DATASET_MARKER} in it); it would be replaced: choose a new or empty directory"
        )
    return None


class DatasetWriter:
    """Collect rows in JSONL scratch files, then save a `datasets.DatasetDict` to disk.

    Rows stream to disk as they come; `datasets` converts them to Arrow (memory-mapped) and
    saves train/validation splits. `split="prompt"` keeps each prompt's rollouts together;
    `split="row"` is datasets' own seeded `train_test_split` (exact sizes, rows shuffled).
    """

    def __init__(self, scratch: Path, seed: int, val_fraction: float, split: str) -> None:
        if split not in SPLIT_MODES:
            raise ValueError(f"split must be one of {SPLIT_MODES}, not {split!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
        self.scratch = scratch
        self.seed = seed
        self.val_fraction = val_fraction
        self.split = split
        names = ("train", "validation") if split == "prompt" else ("all",)
        self.paths = {name: scratch / f"{name}.jsonl" for name in names}
        self._files = {name: path.open("wb") for name, path in self.paths.items()}
        self.counts: Counter[str] = Counter()

    def add(self, row: dict[str, Any], prompt: str) -> None:
        if self.split == "prompt":
            name = (
                "validation"
                if prompt_in_validation(prompt, self.seed, self.val_fraction)
                else "train"
            )
        else:
            name = "all"
        self._files[name].write(dumps_line(row))
        self.counts[name] += 1

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()

    def save(self, target: Path) -> dict[str, int]:
        """Build the DatasetDict and save_to_disk(target); returns the split sizes."""
        self.close()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local JSON in, local Arrow out
        import datasets

        datasets.disable_progress_bars()
        cache = self.scratch / "hf-cache"  # keep Arrow files out of ~/.cache and delete them
        if self.split == "prompt":
            splits = {}
            for name, path in self.paths.items():
                if self.counts[name]:
                    splits[name] = datasets.Dataset.from_json(str(path), cache_dir=str(cache))
            dataset = datasets.DatasetDict(splits)
        else:
            full = datasets.Dataset.from_json(str(self.paths["all"]), cache_dir=str(cache))
            if self.val_fraction > 0 and len(full) >= 2:
                parts = full.train_test_split(test_size=self.val_fraction, seed=self.seed)
                dataset = datasets.DatasetDict(train=parts["train"], validation=parts["test"])
            else:
                dataset = datasets.DatasetDict(train=full)
        dataset.save_to_disk(str(target))
        marker = {"written_by": "metric_cards.training_data.DatasetWriter", "splits": list(dataset)}
        (target / DATASET_MARKER).write_bytes(dumps_line(marker))
        return {name: len(split) for name, split in dataset.items()}


# --- analysis ----------------------------------------------------------------------------------

_MAX_PROBLEM_KINDS = 5000  # problems are free text: cap the distinct ones counted


@dataclass
class Analysis:
    """What --analyze prints: where rollouts went and what they looked like."""

    all_scores: ScoreStats = field(default_factory=ScoreStats)
    kept_scores: ScoreStats = field(default_factory=ScoreStats)
    metrics: dict[str, Counter[str]] = field(default_factory=dict)  # metric -> {total, kept, hq}
    domains: dict[str, Counter[str]] = field(default_factory=dict)
    problems: Counter[str] = field(default_factory=Counter)
    finish_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, rollout: Rollout, decision: Decision) -> None:
        self.all_scores.add(rollout.score, rollout.layers)
        request = rollout.request
        metric = request.metric if request else "(not from the catalog)"
        domain = request.domain if request else "(not from the catalog)"
        for table, key in ((self.metrics, metric), (self.domains, domain)):
            counts = table.setdefault(key, Counter())
            counts["total"] += 1
            if decision.kept:
                counts["kept"] += 1
                if decision.example and decision.example.high_quality:
                    counts["hq"] += 1
        if decision.kept:
            self.kept_scores.add(rollout.score, rollout.layers)
        self.finish_reasons[str(rollout.finish_reason)] += 1
        for problem in rollout.problems:
            if problem in self.problems or len(self.problems) < _MAX_PROBLEM_KINDS:
                self.problems[problem] += 1


def format_counts_table(title: str, table: dict[str, Counter[str]]) -> list[str]:
    width = max([len(title)] + [len(k) for k in table]) + 2
    lines = [f"  {title:<{width}} {'total':>7} {'kept':>7} {'kept %':>7} {'hq':>6}"]
    for key, counts in sorted(table.items(), key=lambda kv: (-kv[1]["total"], kv[0])):
        total, kept = counts["total"], counts["kept"]
        share = 100 * kept / total if total else 0.0
        lines.append(f"  {key:<{width}} {total:>7} {kept:>7} {share:>6.1f}% {counts['hq']:>6}")
    return lines


def format_reasons(reasons: Counter[str], total: int) -> list[str]:
    lines = []
    for reason, count in sorted(reasons.items(), key=lambda kv: (kv[0] != "kept", -kv[1])):
        share = 100 * count / total if total else 0.0
        lines.append(f"  {reason:<58} {count:>8} {share:>6.1f}%")
    return lines
