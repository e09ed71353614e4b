"""The three data scripts, run as subprocesses on the real corpus in our and the legacy format.

What is asserted is content: which rollouts are kept, what the rows say, duplicate counts,
DPO pairs, dataset split sizes, bucket counts, the PNG, exit codes and the lines errors name.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from rollout_fixtures import Expected, K, legacy_groups, our_groups, write_jsonl

from metric_cards.catalog import SYSTEM_PROMPT
from metric_cards.extraction import extract_json

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("extract_metric_training.py", "trainingDataScript.py", "show_score_distribution.py")
HQ = "metric_training_high_quality.jsonl"


def run_script(script: str, *args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def ours(corpus_rows, tmp_path_factory):
    """The corpus as 60 groups of 4 with known oddities (see rollout_fixtures._apply_variants)."""
    from metric_cards.reward import score_completion

    groups, expected = our_groups(corpus_rows, score_completion, variants=True)
    path = write_jsonl(tmp_path_factory.mktemp("ours") / "metric_rollouts.jsonl", groups)
    return path, groups, expected


@pytest.fixture(scope="module")
def legacy(corpus_rows, tmp_path_factory):
    groups, expected = legacy_groups(corpus_rows)
    path = write_jsonl(tmp_path_factory.mktemp("legacy") / "legacy_rollouts.jsonl", groups)
    return path, groups, expected


def is_card(value: object) -> bool:
    if not isinstance(value, dict) or value.get("componentType") != "metricCard":
        return False
    props = value.get("props")
    return isinstance(props, dict) and bool(props.get("title")) and bool(props.get("value"))


def expected_training(expected: list[Expected], threshold: float):
    """(kept [(Expected, stripped text)], duplicates) by the documented rules."""
    kept, seen, duplicates = [], set(), 0
    for item in expected:
        if not item.score > threshold:
            continue
        extraction = extract_json(item.completion)
        if extraction.value is None or extraction.repaired or not is_card(extraction.value):
            continue
        key = (item.prompt, json.dumps(extraction.value, sort_keys=True))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        kept.append((item, extraction.text.strip()))
    return kept, duplicates


# --- extract_metric_training.py ------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.8])
def test_extract_keeps_every_rollout_above_threshold(ours, tmp_path, threshold):
    path, _, expected = ours
    out = tmp_path / "extract.jsonl"
    proc = ok(run_script(SCRIPTS[0], path, out, "--score_threshold", threshold))
    rows = read_jsonl(out)
    want = [e for e in expected if e.score > threshold]
    assert [(r["prompt"], r["completion"]) for r in rows] == [
        (e.prompt, e.completion) for e in want
    ]
    assert all(set(r) == {"prompt", "completion"} for r in rows)
    assert f"wrote {len(want)} of 240 rollouts" in proc.stdout
    if threshold == 0.0:  # all of a group counts, not only its first rollout (the old bug)
        assert len({e.index for e in want}) == K


def test_extract_legacy_random_scores(legacy, tmp_path):
    path, _, expected = legacy
    out = tmp_path / "extract.jsonl"
    ok(run_script(SCRIPTS[0], path, out, "--score_threshold", 0.0))
    want = [(e.prompt, e.completion) for e in expected if e.score > 0.0]
    assert 60 < len(want) < 180  # random scores in [-0.5, 0.5]
    assert [(r["prompt"], r["completion"]) for r in read_jsonl(out)] == want


# --- trainingDataScript.py ---------------------------------------------------------------------


def test_training_filters_strips_and_dedups(ours, tmp_path):
    path, _, expected = ours
    out = tmp_path / "train.jsonl"
    proc = ok(run_script(SCRIPTS[1], path, out, "--score_threshold", 0.0))
    rows = read_jsonl(out)
    kept, duplicates = expected_training(expected, 0.0)
    # 240 rollouts - 10 non-cards - 10 truncated - 20 duplicates (fenced copy, re-dumped copy)
    assert (len(rows), duplicates) == (200, 20)
    assert [(r["prompt"], r["completion"]) for r in rows] == [(e.prompt, t) for e, t in kept]
    for row in rows:
        assert set(row) == {"prompt", "completion"}
        assert "```" not in row["completion"] and "Here is the metric card" not in row["completion"]
        assert "chartCard" not in row["completion"]
        assert is_card(json.loads(row["completion"]))
    assert "kept 200 of 240 rollouts" in proc.stdout
    assert "20 duplicate completion(s)" in proc.stdout


def test_training_metadata_hq_and_threshold(ours, tmp_path):
    path, _, expected = ours
    by_source = {f"{e.group + 1}:{e.index}": e for e in expected}
    out = tmp_path / "train.jsonl"
    ok(run_script(SCRIPTS[1], path, out, "--score_threshold", 0.5, "--hq_threshold", 0.8,
                  "--metadata"))  # fmt: skip
    rows = read_jsonl(out)
    kept, _ = expected_training(expected, 0.5)
    assert len(rows) == len(kept) > 0
    for row in rows:
        source = by_source[row["source"]]
        assert row["score"] == pytest.approx(source.score) and row["score"] > 0.5
        assert row["prompt"] == source.prompt
    hq = read_jsonl(tmp_path / HQ)
    assert hq == [r for r in rows if r["score"] >= 0.8]
    assert 0 < len(hq) < len(rows)  # the corpus has both kinds above 0.5


def test_training_chat_format(ours, tmp_path):
    path, _, expected = ours
    out = tmp_path / "chat.jsonl"
    ok(run_script(SCRIPTS[1], path, out, "--format", "messages", "--score_threshold", 0.0))
    rows = read_jsonl(out)
    kept, _ = expected_training(expected, 0.0)
    assert len(rows) == len(kept)
    for row, (item, text) in zip(rows, kept, strict=True):
        assert row["messages"] == [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": item.prompt},
            {"role": "assistant", "content": text},
        ]


def test_training_dpo_pairs(ours, tmp_path):
    path, _, expected = ours
    margin = 0.1
    out, dpo = tmp_path / "train.jsonl", tmp_path / "dpo.jsonl"
    proc = ok(run_script(SCRIPTS[1], path, out, "--dpo", dpo, "--dpo_margin", margin))
    groups: dict[int, list[Expected]] = defaultdict(list)
    for item in expected:
        groups[item.group].append(item)
    want = []
    for g, items in sorted(groups.items()):
        best = max(items, key=lambda e: e.score)
        worst = min(items, key=lambda e: e.score)
        # "at least the margin", with the same float tolerance as the script
        if best.score - worst.score >= margin - 1e-9 and best.completion != worst.completion:
            want.append((g, best, worst))
    pairs = read_jsonl(dpo)
    assert len(pairs) == len(want) > 0
    for pair, (g, best, worst) in zip(pairs, want, strict=True):
        assert pair["source_line"] == g + 1
        assert pair["prompt"] == best.prompt
        assert (pair["chosen"], pair["rejected"]) == (best.completion, worst.completion)
        assert pair["chosen_score"] == pytest.approx(best.score)
        assert pair["rejected_score"] == pytest.approx(worst.score)
        assert pair["chosen_score"] - pair["rejected_score"] >= margin - 1e-9
    assert f"DPO pairs (gap >= {margin}): {len(want)} of 60 groups" in proc.stdout

    chat_dpo = tmp_path / "dpo_chat.jsonl"
    ok(run_script(SCRIPTS[1], path, out, "--dpo", chat_dpo, "--dpo_margin", margin,
                  "--format", "messages"))  # fmt: skip
    first = read_jsonl(chat_dpo)[0]
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert first["chosen"] == [{"role": "assistant", "content": pairs[0]["chosen"]}]


def test_training_dataset_split_by_prompt(ours, tmp_path):
    import datasets

    path, _, _ = ours
    out = tmp_path / "train.jsonl"
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        target = tmp_path / f"ds_{name}"
        args = ("--score_threshold", 0.0, "--dataset", target, "--val_fraction", 0.25)
        proc = ok(run_script(SCRIPTS[1], path, out, *args, "--seed", seed))
        runs[name] = datasets.load_from_disk(str(target))
        assert f"dataset -> {target}" in proc.stdout
    ds = runs["a"]
    assert set(ds) == {"train", "validation"}
    assert len(ds["train"]) + len(ds["validation"]) == 200
    assert 0 < len(ds["validation"]) < 100
    assert not set(ds["train"]["prompt"]) & set(ds["validation"]["prompt"])  # no leakage
    rows = {(r["prompt"], r["completion"]) for r in read_jsonl(out)}
    both = list(ds["train"]) + list(ds["validation"])
    assert {(r["prompt"], r["completion"]) for r in both} == rows
    assert list(runs["b"]["validation"]) == list(ds["validation"])  # same seed, same split
    assert set(runs["c"]["validation"]["prompt"]) != set(ds["validation"]["prompt"])
    assert not list(tmp_path.glob(".*"))  # no scratch or temporary left


def test_training_dataset_split_by_row_is_exact(ours, tmp_path):
    import datasets

    path, _, _ = ours
    target = tmp_path / "ds"
    ok(run_script(SCRIPTS[1], path, tmp_path / "t.jsonl", "--dataset", target))
    (target / "stale.txt").write_text("replaced")  # a dataset of ours is replaced whole
    ok(run_script(SCRIPTS[1], path, tmp_path / "t.jsonl", "--score_threshold", 0.0,
                  "--format", "messages", "--dataset", target, "--split_by", "row",
                  "--val_fraction", 0.25, "--seed", 7))  # fmt: skip
    ds = datasets.load_from_disk(str(target))
    assert (len(ds["train"]), len(ds["validation"])) == (150, 50)
    assert ds["train"][0]["messages"][0]["role"] == "system"
    assert not (target / "stale.txt").exists()
    assert (target / ".metric_cards_dataset").is_file()


def test_training_analyze_and_debug(ours, tmp_path):
    path, _, expected = ours
    proc = ok(run_script(SCRIPTS[1], path, tmp_path / "t.jsonl", "--score_threshold", 0.0,
                         "--analyze", "--debug"))  # fmt: skip
    out = proc.stdout
    assert "Decisions (threshold: score > 0.0):" in out
    reasons = {}
    for line in out.split("Decisions")[1].split("\n\n")[0].splitlines()[1:]:
        label, count, _ = line.rsplit(None, 2)
        reasons[label.strip()] = int(count)
    assert reasons["kept"] == 200 and reasons["duplicate completion"] == 20
    assert reasons['not a metric card: componentType is not "metricCard"'] == 10
    assert sum(reasons.values()) == 240
    table = out.split("Per metric:")[1].split("\n\n")[0].splitlines()[2:]
    assert sum(int(line.split()[-4]) for line in table) == 240  # total column
    assert sum(int(line.split()[-3]) for line in table) == 200  # kept column
    assert "Scores, all rollouts:" in out and "Layer means (all / kept):" in out
    scores = [e.score for e in expected]
    assert f"mean   {statistics.fmean(scores):.4f}" in out
    assert "[debug] line 1 rollout 0 score" in proc.stderr
    assert "[debug] line 5 rollout 0 score" in proc.stderr  # group 4: the truncated one
    assert "dropped: " in proc.stderr and "sample output" in proc.stderr


# --- show_score_distribution.py ----------------------------------------------------------------


def bucket_of(score: float) -> float:
    """Independent restatement of the documented buckets: [k/10, (k+1)/10), last one closed."""
    k = math.floor(score * 10 + 1e-9)
    return min(k, 9) / 10 if score <= 1.0 else k / 10


def test_distribution_numbers(ours, tmp_path):
    path, groups, expected = ours
    png = tmp_path / "plots" / "scores.png"
    proc = ok(run_script(SCRIPTS[2], path, "--plot", png))
    out = proc.stdout
    scores = [e.score for e in expected]
    assert "count  240" in out
    assert f"min    {min(scores):.4f}" in out and f"max    {max(scores):.4f}" in out
    assert f"mean   {statistics.fmean(scores):.4f}" in out
    assert f"median {statistics.median(scores):.4f}" in out
    assert f"std    {statistics.pstdev(scores):.4f}" in out
    for layer in ("validity", "schema", "semantic", "formatting"):
        values = [r["layers"][layer] for g in groups for r in g["metric_card"]["rollouts"]]
        assert f"{layer:<12} {statistics.fmean(values):.4f}  (n=240)" in out

    buckets = out.split("Score buckets (width 0.1):")[1].split("\n\n")[0].splitlines()[2:]
    assert len(buckets) == 10  # [0.0, 0.1) ... [0.9, 1.0]
    counts = defaultdict(int)
    for score in scores:
        counts[bucket_of(score)] += 1
    for line in buckets:
        low = float(line.split(",")[0].strip(" ["))
        count, percent = line.split()[-2:]
        assert int(count) == counts[round(low, 1)], line
        assert percent == f"{100 * counts[round(low, 1)] / 240:.1f}%"

    table = out.split("Rollouts at or above each threshold:")[1].split("\n\n")[0]
    for line in table.splitlines()[2:]:
        threshold, count, _ = line.split()
        assert int(count) == sum(s >= float(threshold) - 1e-9 for s in scores), line
    assert [float(line.split()[0]) for line in table.splitlines()[2:]] == [
        0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    ]  # fmt: skip
    assert "█" in out.split("Histogram:")[1]

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 300 and height > 300
    assert f"wrote {png}" in out


def test_distribution_legacy_and_rescore(legacy, tmp_path):
    path, _, expected = legacy
    out = ok(run_script(SCRIPTS[2], path)).stdout
    scores = [e.score for e in expected]
    assert f"mean   {statistics.fmean(scores):.4f}" in out
    assert "[-0.50, -0.40)" in out  # buckets widen to the legacy range
    assert "none in this file" in out
    rescored = ok(run_script(SCRIPTS[2], path, "--rescore"))
    assert "validity" in rescored.stdout and "rescored 240 rollouts" in rescored.stderr


# --- errors, shared by the three scripts -------------------------------------------------------


def script_args(script: str, source: Path, tmp_path: Path) -> list[object]:
    return [source] if script == SCRIPTS[2] else [source, tmp_path / "out" / "result.jsonl"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_has_examples(script):
    proc = ok(run_script(script, "--help"))
    assert "usage:" in proc.stdout and "examples:" in proc.stdout and script in proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_and_empty_input(script, tmp_path):
    missing = run_script(script, *script_args(script, tmp_path / "nope.jsonl", tmp_path))
    assert missing.returncode == 2
    assert "input file not found" in missing.stderr and "Traceback" not in missing.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_script(script, *script_args(script, empty, tmp_path))
    assert proc.returncode == 2 and "input file is empty" in proc.stderr
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n  \n")
    proc = run_script(script, *script_args(script, blank, tmp_path))
    assert proc.returncode == 1 and "only blank lines" in proc.stderr
    assert not (tmp_path / "out" / "result.jsonl").exists()
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_only_malformed_lines(script, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [[{"role": "user"}]], "scores": [1]}\n{oops\n')
    proc = run_script(script, *script_args(script, bad, tmp_path))
    assert proc.returncode == 1
    assert "line 1" in proc.stderr and "line 2: invalid JSON" in proc.stderr
    assert "all 2 non-blank line(s) are malformed" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("script", SCRIPTS)
def test_some_malformed_lines_are_skipped_and_named(script, ours, tmp_path):
    path, _, _ = ours
    lines = path.read_text(encoding="utf-8").splitlines()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([lines[0], "{broken", lines[1], "[]", lines[2][:500]]) + "\n")
    proc = ok(run_script(script, *script_args(script, mixed, tmp_path)))
    assert "line 2: invalid JSON" in proc.stderr
    assert "line 4: expected a JSON object" in proc.stderr
    assert "line 5: invalid JSON" in proc.stderr
    assert "3 malformed line(s) skipped; first at line 2" in proc.stderr
    assert "read 8 rollouts in 2 groups" in proc.stderr
    strict = run_script(script, *script_args(script, mixed, tmp_path), "--strict")
    assert strict.returncode == 1 and "--strict" in strict.stderr


@pytest.mark.parametrize("script", SCRIPTS[:2])
def test_output_must_not_be_the_input(script, ours, tmp_path):
    path, _, _ = ours
    proc = run_script(script, path, path)
    assert proc.returncode == 2 and "overwrite the input" in proc.stderr


def test_interrupted_run_leaves_no_partial_output(ours, tmp_path):
    """Ctrl-C in the middle: old outputs untouched, no new or temporary file anywhere."""
    path, _, _ = ours
    out = tmp_path / "train.jsonl"
    out.write_text("previous run\n")
    code = (
        "import runpy, sys\n"
        "import metric_cards.rollouts as rollouts\n"
        "original = rollouts.RolloutReader._group\n"
        "def interrupted(self, line, number):\n"
        "    if number == 30:\n"
        "        raise KeyboardInterrupt\n"
        "    return original(self, line, number)\n"
        "rollouts.RolloutReader._group = interrupted\n"
        f"sys.argv = ['trainingDataScript.py', {str(path)!r}, {str(out)!r}, '--dpo',\n"
        f"            {str(tmp_path / 'dpo.jsonl')!r}, '--dataset', {str(tmp_path / 'ds')!r}]\n"
        f"runpy.run_path({str(REPO / SCRIPTS[1])!r}, run_name='__main__')\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]


def test_progress_flag(ours, tmp_path):
    path, _, _ = ours
    shown = ok(run_script(SCRIPTS[2], path, "--progress"))
    assert "%|" in shown.stderr and path.name in shown.stderr  # tqdm's bar, on stderr
    assert "%|" not in shown.stdout
    hidden = ok(run_script(SCRIPTS[2], path, "--no-progress"))
    assert "%|" not in hidden.stderr


# --- hostile inputs and outputs ----------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_dataset_never_replaces_what_the_script_did_not_write(ours, tmp_path):
    path, _, _ = ours
    work = tmp_path / "work"
    work.mkdir()
    source = work / "rollouts.jsonl"
    source.write_bytes(path.read_bytes())
    (work / "notes.txt").write_text("mine")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old.jsonl").write_text("old results\n")
    linked = tmp_path / "link"
    linked.symlink_to(out_dir)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("years of work")
    before = snapshot(tmp_path)
    for target, message in [
        (work, "holds"),  # the directory of the input (and of other files of the user)
        (out_dir, "holds"),  # the output's directory: the output would be replaced with it
        (tmp_path / "other", "non-empty directory that this script did not write"),
        (linked, "symbolic link"),
        (source, "is a file"),
    ]:
        proc = run_script(SCRIPTS[1], source, out_dir / "train.jsonl", "--dataset", target)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert snapshot(tmp_path) == before  # nothing deleted, nothing written
    # The input inside a dataset directory of ours is refused too.
    ok(run_script(SCRIPTS[1], source, out_dir / "train.jsonl", "--dataset", tmp_path / "ds"))
    inner = tmp_path / "ds" / "rollouts.jsonl"
    inner.write_bytes(source.read_bytes())
    proc = run_script(SCRIPTS[1], inner, out_dir / "t2.jsonl", "--dataset", tmp_path / "ds")
    assert proc.returncode == 2 and "holds" in proc.stderr and inner.exists()
    # An existing empty directory is fine.
    (tmp_path / "empty").mkdir()
    ok(run_script(SCRIPTS[1], source, out_dir / "train.jsonl", "--dataset", tmp_path / "empty"))
    assert (tmp_path / "empty" / "dataset_dict.json").is_file()


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_no_output_may_be_a_link_to_the_input(script, link, ours, tmp_path):
    path, _, _ = ours
    source = tmp_path / "rollouts.jsonl"
    source.write_bytes(path.read_bytes())
    alias = tmp_path / "alias.jsonl"
    if link == "symlink":
        alias.symlink_to(source)
    else:
        os.link(source, alias)
    before = source.read_bytes()
    if script == SCRIPTS[2]:
        attempts = [("--plot", alias)]
    elif script == SCRIPTS[1]:
        attempts = [(alias,), (tmp_path / "t.jsonl", "--hq_output", alias),
                    (tmp_path / "t.jsonl", "--dpo", alias)]  # fmt: skip
    else:
        attempts = [(alias,)]
    for extra in attempts:
        proc = run_script(script, source, *extra)
        assert proc.returncode == 2, proc.stderr
        assert "overwrite the input" in proc.stderr
        assert source.read_bytes() == before


def test_outputs_get_the_usual_mode_and_keep_an_existing_one(ours, tmp_path):
    path, _, _ = ours
    out, kept = tmp_path / "new.jsonl", tmp_path / "kept.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o640)
    code = (
        "import os, runpy, sys\n"
        "os.umask(0o022)\n"
        f"sys.argv = ['x', {str(path)!r}, sys.argv[1]]\n"
        f"runpy.run_path({str(REPO / SCRIPTS[0])!r}, run_name='__main__')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for target in (out, kept):
        subprocess.run([sys.executable, "-c", code, str(target)], env=env, check=True)
    assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() != "old\n"


@pytest.mark.parametrize("script", SCRIPTS)
def test_hostile_lines_are_one_line_messages_and_the_rest_is_processed(script, ours, tmp_path):
    from rollout_fixtures import hostile_lines, write_hostile_file

    path, groups, _ = ours
    source, messages = write_hostile_file(tmp_path / "hostile.jsonl", groups)
    lost = [whole for _, _, whole in hostile_lines(groups[0])]
    proc = ok(run_script(script, *script_args(script, source, tmp_path), "--score_threshold", 0.0)
              if script != SCRIPTS[2] else run_script(script, source))  # fmt: skip
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    for k, message in enumerate(messages, start=1):
        named = [w for w in warnings if f": line {2 * k}" in w]
        assert len(named) == 1 and message in named[0], (message, warnings)
    good = 4 * (len(messages) + 1) + 3 * lost.count(False)
    assert f"read {good} rollouts in {len(messages) + 1 + lost.count(False)} groups" in proc.stderr
    assert f"{sum(lost)} malformed line(s) skipped" in proc.stderr
    if script == SCRIPTS[2]:
        # Scores outside [0, 1] are skipped, so the bucket table stays [0, 1] (a score of 1e6
        # would otherwise widen it to ten million rows).
        assert len(proc.stdout.splitlines()) < 60
        assert "max    1.0000" in proc.stdout or "max    0." in proc.stdout


def test_lone_surrogates_go_everywhere_but_training_data(ours, tmp_path):
    from rollout_fixtures import SURROGATE_COMPLETION, surrogate_line

    _, groups, _ = ours
    source = write_jsonl(tmp_path / "s.jsonl", [surrogate_line(groups[0]), groups[1]])
    extracted = tmp_path / "extract.jsonl"
    ok(run_script(SCRIPTS[0], source, extracted, "--score_threshold", 0.0))
    raw = extracted.read_bytes()
    raw.decode("utf-8")  # valid UTF-8, the surrogate escaped
    assert json.loads(raw.splitlines()[0])["completion"] == SURROGATE_COMPLETION
    train, dpo = tmp_path / "train.jsonl", tmp_path / "dpo.jsonl"
    args = ("--analyze", "--dpo", dpo, "--dpo_margin", 0.0, "--dataset", tmp_path / "ds")
    proc = ok(run_script(SCRIPTS[1], source, train, "--score_threshold", 0.0, *args))
    assert "not valid Unicode (a lone surrogate" in proc.stdout
    assert all(row["completion"].encode() for row in read_jsonl(train))
    assert not any("\\ud800" in line for line in train.read_text().splitlines())
    assert not any(SURROGATE_COMPLETION in (p["chosen"], p["rejected"]) for p in read_jsonl(dpo))
    dist = ok(run_script(SCRIPTS[2], source))
    assert "read 8 rollouts in 2 groups" in dist.stderr


def test_bucket_width_is_bounded(ours):
    path, _, _ = ours
    proc = run_script(SCRIPTS[2], path, "--bucket_width", "1e-9")
    assert proc.returncode == 2 and "--bucket_width must be in [0.01, 1]" in proc.stderr
