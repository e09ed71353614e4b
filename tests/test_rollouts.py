"""The streaming rollout reader (metric_cards.rollouts) and the atomic output helpers.

Rollout files are the real shared corpus wrapped in our format (scored by the real reward) and
in the original environment's legacy format, plus files with malformed lines.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rollout_fixtures import K, legacy_groups, llama3_text, our_groups, write_jsonl

from metric_cards.catalog import SYSTEM_PROMPT, Request, parse_request
from metric_cards.io_utils import atomic_directory, atomic_writer
from metric_cards.jsonutil import dumps_line
from metric_cards.rollouts import (
    FORMAT_LEGACY,
    FORMAT_METRIC_CARD,
    FORMAT_PLAIN,
    Issue,
    RolloutFileError,
    RolloutReader,
    _drop_bulky_arrays,
    _parse_line,
    read_rollouts,
    split_llama3,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scorer():
    from metric_cards.reward import score_completion

    return score_completion


@pytest.fixture(scope="module")
def ours(corpus_rows, scorer):
    return our_groups(corpus_rows, scorer)


@pytest.fixture(scope="module")
def legacy(corpus_rows):
    return legacy_groups(corpus_rows)


def collect(path: Path, **options) -> tuple[list, RolloutReader, list[Issue]]:
    issues: list[Issue] = []
    reader = RolloutReader(path, on_issue=issues.append, **options)
    return list(reader), reader, issues


# --- our format ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compact", [False, True], ids=["env-separators", "compact"])
def test_our_format_round_trip(tmp_path, ours, compact):
    groups, expected = ours
    path = write_jsonl(tmp_path / "ours.jsonl", groups, compact=compact)
    rollouts, reader, issues = collect(path)

    assert issues == []
    assert len(rollouts) == len(expected) == 240
    assert reader.stats.groups == 60 and reader.stats.rollouts == 240
    assert reader.stats.formats == {FORMAT_METRIC_CARD: 60}
    assert reader.stats.bytes_read == path.stat().st_size
    for rollout, want in zip(rollouts, expected, strict=True):
        assert rollout.format == FORMAT_METRIC_CARD
        assert (rollout.group_index, rollout.rollout_index) == (want.group, want.index)
        assert rollout.line_number == want.group + 1
        assert rollout.prompt == want.prompt
        assert rollout.completion == want.completion
        assert rollout.system == SYSTEM_PROMPT
        assert rollout.score == pytest.approx(want.score)
        assert rollout.finish_reason == want.finish_reason
        assert set(rollout.layers) == {"validity", "schema", "semantic", "formatting"}
        assert rollout.request == parse_request(want.prompt)
        assert [m["role"] for m in rollout.messages] == ["system", "user", "assistant"]
        assert rollout.rescored is False
        assert rollout.source == f"{want.group + 1}:{want.index}"


def test_groups_keep_rollouts_together(tmp_path, ours):
    groups, expected = ours
    path = write_jsonl(tmp_path / "ours.jsonl", groups)
    read = list(RolloutReader(path).groups())
    assert len(read) == 60
    for index, group in enumerate(read):
        assert group.group_index == index and group.line_number == index + 1
        assert group.size == K and len(group.rollouts) == K
        assert group.request == parse_request(expected[index * K].prompt)
        assert {r.prompt for r in group.rollouts} == {expected[index * K].prompt}


def test_our_scores_are_never_recomputed(tmp_path, ours, monkeypatch):
    """Scores and layers travel in the file; --rescore only applies to legacy files."""
    groups, _ = ours
    doctored = json.loads(json.dumps(groups[:3]))
    for group in doctored:
        for record in group["metric_card"]["rollouts"]:
            record["score"] = 0.123
            record["layers"] = {"validity": 0.5}
        group["scores"] = [0.123] * K

    def boom(*args, **kwargs):
        raise AssertionError("score_completion must not be called for our format")

    import metric_cards.reward

    monkeypatch.setattr(metric_cards.reward, "score_completion", boom)
    path = write_jsonl(tmp_path / "doctored.jsonl", doctored)
    rollouts, reader, _ = collect(path, rescore=True)
    assert [r.score for r in rollouts] == [0.123] * 12
    assert all(r.layers == {"validity": 0.5} and not r.rescored for r in rollouts)
    assert reader.stats.rescored == 0


def test_null_request_and_extra_fields(tmp_path, ours):
    groups, _ = ours
    group = json.loads(json.dumps(groups[0]))
    group["metric_card"]["request"] = None
    group["inference_logprobs"] = [[-0.5, -1.25e-3], [-2.0]]  # another bulky array
    group["generation_params"] = {"temperature": 1.0}
    group["images"] = None
    path = write_jsonl(tmp_path / "null_request.jsonl", [group])
    rollouts, _, issues = collect(path)
    assert issues == [] and len(rollouts) == K
    assert all(r.request is None for r in rollouts)


def test_reader_streams(tmp_path, ours):
    """The first rollout arrives after reading one line, not the file."""
    groups, _ = ours
    path = write_jsonl(tmp_path / "ours.jsonl", groups)
    reader = RolloutReader(path)
    first = next(iter(reader))
    assert first.line_number == 1
    assert reader.stats.bytes_read < path.stat().st_size / 10


def test_reader_is_single_pass(tmp_path, ours):
    path = write_jsonl(tmp_path / "ours.jsonl", ours[0][:1])
    reader = RolloutReader(path)
    list(reader)
    with pytest.raises(RuntimeError, match="once"):
        list(reader)


def test_read_rollouts_shorthand(tmp_path, ours):
    path = write_jsonl(tmp_path / "ours.jsonl", ours[0][:2])
    assert len(list(read_rollouts(path))) == 2 * K


# --- the fast path that skips token arrays ----------------------------------------------------


def _without_bulky(obj: dict) -> dict:
    return {k: (None if k in ("tokens", "masks") else v) for k, v in obj.items()}


def test_fast_path_matches_a_full_parse(tmp_path, ours):
    groups, _ = ours
    for group in groups[:10]:
        line = json.dumps(group).encode()
        trimmed = _drop_bulky_arrays(line)
        assert len(trimmed) < len(line) / 2  # the arrays really were cut out
        assert _parse_line(line) == _without_bulky(group)


@pytest.mark.parametrize(
    "text",
    [
        # the key names inside message text, escaped as JSON escapes them
        '{"messages": [[{"role": "user", "content": "say \\"tokens\\": [[1]]"}]], '
        '"tokens": [[1, 2], [3]]}',
        # a string value equal to a key name, followed by a list of lists
        '{"a": ["tokens", [[1]]], "tokens": [[5]], "masks": [[-100, 5]]}',
        # an empty list, nested deeper lists, whitespace everywhere
        '{ "tokens" : [ ] , "masks" :\t[[ -100 ,1 ]\n, [2]] }',
        '{"tokens": [[[1]], [[2]]], "masks": [[1]]}',
        # strings inside the arrays: the fast path must not apply
        '{"tokens": [["]]", 1]], "masks": [[1]], "x": "]]"}',
        '{"masks": null, "tokens": [[1, 2]], "k": {"tokens": [[9]]}}',
    ],
)
def test_fast_path_never_changes_other_fields(text):
    expected = json.loads(text)
    parsed = _parse_line(text.encode())
    assert {k: v for k, v in parsed.items() if k not in ("tokens", "masks")} == {
        k: v for k, v in expected.items() if k not in ("tokens", "masks")
    }


# --- legacy format ---------------------------------------------------------------------------


def test_legacy_format(tmp_path, legacy):
    groups, expected = legacy
    path = write_jsonl(tmp_path / "legacy.jsonl", groups)
    rollouts, reader, issues = collect(path)
    assert issues == []
    assert len(rollouts) == 240
    assert reader.stats.formats == {FORMAT_LEGACY: 60}
    for rollout, want in zip(rollouts, expected, strict=True):
        assert rollout.format == FORMAT_LEGACY
        assert rollout.system == SYSTEM_PROMPT
        assert rollout.prompt == want.prompt
        assert rollout.completion == want.completion
        assert rollout.score == want.score and -0.5 <= rollout.score <= 0.5
        assert rollout.finish_reason == want.finish_reason
        assert rollout.layers is None
        assert rollout.request == parse_request(want.prompt)
        assert isinstance(rollout.request, Request)
    assert sum(r.finish_reason == "length" for r in rollouts) == 24


def test_legacy_rescore(tmp_path, legacy, scorer):
    groups, expected = legacy
    path = write_jsonl(tmp_path / "legacy.jsonl", groups[:5])
    rollouts, reader, _ = collect(path, rescore=True)
    assert reader.stats.rescored == 20
    for rollout, want in zip(rollouts, expected, strict=False):
        result = scorer(want.completion, parse_request(want.prompt), want.finish_reason)
        assert rollout.rescored
        assert rollout.score == pytest.approx(result.score)
        assert rollout.layers == pytest.approx(dict(result.layers))
        assert rollout.problems == list(result.problems)


def test_split_llama3():
    text = llama3_text("sys", "ask", '{"a": 1}')
    messages, closed = split_llama3(text)
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "ask"},
        {"role": "assistant", "content": '{"a": 1}'},
    ]
    assert closed
    messages, closed = split_llama3(llama3_text("sys", "ask", '{"a": ', closed=False))
    assert messages[-1]["content"] == '{"a": ' and not closed
    padded = llama3_text("s", "u", "x") + "<|end_of_text|><|finetune_right_pad_id|>" * 3
    assert split_llama3(padded) == (
        [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "x"},
        ],
        True,
    )
    assert split_llama3("no headers at all") == ([], True)


def test_plain_structured_messages_without_our_block(tmp_path, corpus_rows):
    row = corpus_rows[0]
    conversation = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": row["completion"]},
    ]
    path = write_jsonl(tmp_path / "plain.jsonl", [{"scores": [0.25], "messages": [conversation]}])
    (rollout,), reader, issues = collect(path)
    assert issues == [] and reader.stats.formats == {FORMAT_PLAIN: 1}
    assert rollout.format == FORMAT_PLAIN and rollout.score == 0.25
    assert rollout.system == "be brief" and rollout.completion == row["completion"]
    assert rollout.request == parse_request(row["prompt"])


# --- malformed input ----------------------------------------------------------------------------


def malformed_file(tmp_path: Path, ours_groups: list[dict]) -> tuple[Path, dict[int, str]]:
    """Valid groups with broken lines between them; returns the path and {line: reason part}."""
    good = [json.dumps(g) for g in ours_groups[:4]]
    no_assistant = json.loads(good[1])
    no_assistant["messages"][2] = no_assistant["messages"][2][:2]  # rollout 2: no answer
    wrong_count = json.loads(good[2])
    wrong_count["metric_card"]["rollouts"] = wrong_count["metric_card"]["rollouts"][:2]
    nan_score = json.loads(good[3])
    nan_score["metric_card"]["rollouts"][1]["score"] = float("nan")
    nan_score["scores"][1] = float("nan")
    lines = [
        good[0],  # 1
        "{not json",  # 2
        "",  # 3 blank: ignored, not malformed
        good[0][: len(good[0]) // 2],  # 4 a line cut off mid-write
        json.dumps([1, 2, 3]),  # 5 not an object
        json.dumps({"tokens": [[1]], "scores": [0.5]}),  # 6 no messages
        json.dumps(no_assistant),  # 7 rollout 2 unusable, the other 3 fine
        json.dumps(wrong_count),  # 8 metric_card.rollouts has 2 entries for 4 messages
        json.dumps({"scores": [0.1, 0.2], "messages": [["x"]]}),  # 9 scores/messages mismatch
        json.dumps({"scores": [0.1], "messages": [["no headers here"]]}),  # 10 no usable rollout
        json.dumps(nan_score),  # 11 NaN score in rollout 1 (json.dumps writes NaN)
        b"\xff\xfe broken bytes".decode("latin-1"),  # 12 (written as UTF-8 of latin-1: valid)
        good[3],  # 13
    ]
    path = tmp_path / "malformed.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    with path.open("ab") as handle:
        handle.write(b'{"messages": "\xff\xfe"}\n')  # 14: invalid UTF-8
    reasons = {
        2: "invalid JSON",
        4: "invalid JSON: the line ends early, cut off?",
        5: "expected a JSON object",
        6: "no messages",
        8: "metric_card.rollouts",
        9: "scores",
        10: "no usable conversation",
        12: "invalid JSON",
        14: "UTF-8",
    }
    return path, reasons


def test_malformed_lines_are_reported_not_raised(tmp_path, ours):
    path, reasons = malformed_file(tmp_path, ours[0])
    rollouts, reader, issues = collect(path)
    stats = reader.stats
    line_issues = {i.line_number: i.message for i in issues if i.rollout_index is None}
    assert set(line_issues) == set(reasons)
    for line, part in reasons.items():
        assert part in line_issues[line], (line, line_issues[line])
    rollout_issues = {
        (i.line_number, i.rollout_index) for i in issues if i.rollout_index is not None
    }
    assert rollout_issues == {(7, 2), (11, 1)}
    assert stats.malformed_lines == len(reasons) == 9
    assert stats.malformed_rollouts == 2
    assert stats.blank_lines == 1 and stats.lines == 14
    # lines 1, 7 (3 of 4), 11 (3 of 4), 13
    assert [r.line_number for r in rollouts] == [1] * 4 + [7] * 3 + [11] * 3 + [13] * 4
    assert stats.groups == 4 and stats.rollouts == 14
    assert [r.group_index for r in rollouts] == [0] * 4 + [1] * 3 + [2] * 3 + [3] * 4
    assert all(not math.isnan(r.score) for r in rollouts)


def test_default_issue_report_goes_to_stderr(tmp_path, ours, capsys):
    path, reasons = malformed_file(tmp_path, ours[0])
    list(RolloutReader(path, progress=False))
    err = capsys.readouterr().err
    assert f"warning: {path}: line 2: invalid JSON" in err
    assert f"{path}: line 7, rollout 2: no assistant message" in err


def test_issue_printing_is_capped(tmp_path, capsys):
    path = tmp_path / "junk.jsonl"
    path.write_text("junk\n" * 50)
    reader = RolloutReader(path, print_issues=5, max_issues=10)
    assert list(reader) == []
    err = capsys.readouterr().err
    assert err.count("invalid JSON") == 5 and "only counting from here" in err
    assert reader.stats.malformed_lines == 50 and len(reader.stats.issues) == 10


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.mkdir(), "directory"),
    ],
    ids=["missing", "empty", "directory"],
)
def test_unreadable_input_raises_a_clear_error(tmp_path, setup, message):
    path = tmp_path / "input.jsonl"
    setup(path)
    with pytest.raises(RolloutFileError, match=message):
        RolloutReader(path)


def test_progress_bar_on_request(tmp_path, ours, capsys):
    path = write_jsonl(tmp_path / "ours.jsonl", ours[0][:3])
    list(RolloutReader(path, progress=True, description="reading"))
    assert "reading" in capsys.readouterr().err


# --- atomic output -------------------------------------------------------------------------------


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_atomic_writer_replaces_on_success(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with atomic_writer(target) as handle:
        handle.write("new ✓\n")
        assert target.read_text() == "old\n"  # not visible until the block ends
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert leftovers(tmp_path) == []
    with atomic_writer(tmp_path / "bin.dat", "wb") as handle:
        handle.write(dumps_line({"a": "é"}))
    assert (tmp_path / "bin.dat").read_bytes() == '{"a":"é"}\n'.encode()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_atomic_writer_leaves_nothing_on_error(tmp_path, error):
    target = tmp_path / "out.jsonl"
    fresh = tmp_path / "fresh.jsonl"
    target.write_text("old\n")
    for path in (target, fresh):
        with pytest.raises(error), atomic_writer(path) as handle:
            handle.write("half a fi")
            raise error()
    assert target.read_text() == "old\n"
    assert not fresh.exists()
    assert leftovers(tmp_path) == []


def test_atomic_writer_rejects_other_modes(tmp_path):
    with pytest.raises(ValueError), atomic_writer(tmp_path / "x", "a"):
        pass


def test_atomic_directory(tmp_path):
    target = tmp_path / "ds"
    with atomic_directory(target, lambda path: True) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with atomic_directory(target, lambda path: True) as tmp:  # replaces a non-empty directory
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    with pytest.raises(KeyboardInterrupt), atomic_directory(target, lambda path: True) as tmp:
        (tmp / "c.txt").write_text("3")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    # A directory the caller may not replace is left alone, and so is the temporary's content.
    with pytest.raises(FileExistsError), atomic_directory(target, lambda path: False) as tmp:
        (tmp / "d.txt").write_text("4")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert leftovers(tmp_path) == []


def test_sigterm_removes_the_temporary(tmp_path):
    """A CLI killed with SIGTERM (e.g. by a job scheduler) leaves no half file."""
    target = tmp_path / "out.jsonl"
    code = (
        "import sys, time\n"
        "from metric_cards.io_utils import atomic_writer, exit_cleanly_on_sigterm\n"
        "exit_cleanly_on_sigterm()\n"
        f"with atomic_writer({str(target)!r}) as f:\n"
        "    f.write('partial'); f.flush(); print('ready', flush=True); time.sleep(30)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    assert len(leftovers(tmp_path)) == 1  # the temporary exists while writing
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    time.sleep(0.05)
    assert not target.exists() and leftovers(tmp_path) == []


def test_progress_is_automatic_for_large_files(tmp_path, ours, monkeypatch, capsys):
    import metric_cards.rollouts as rollouts

    path = write_jsonl(tmp_path / "ours.jsonl", ours[0][:3])
    assert RolloutReader(path).progress is False  # small file, stderr not a terminal
    monkeypatch.setattr(rollouts, "LARGE_FILE_BYTES", 1000)
    reader = RolloutReader(path)
    assert reader.progress is True
    list(reader)
    assert "ours.jsonl" in capsys.readouterr().err


def test_gzip_input_reads_the_same(tmp_path, ours):
    import gzip

    groups, expected = ours
    plain = write_jsonl(tmp_path / "ours.jsonl", groups)
    packed = tmp_path / "ours.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    rollouts, reader, issues = collect(packed)
    assert issues == [] and len(rollouts) == 240
    assert [(r.prompt, r.completion, r.score) for r in rollouts] == [
        (e.prompt, e.completion, pytest.approx(e.score)) for e in expected
    ]
    assert reader.stats.bytes_read == plain.stat().st_size  # decompressed bytes

    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    rollouts, reader, issues = collect(cut)
    assert 0 < len(rollouts) < 240
    assert issues[-1].line_number == reader.stats.lines + 1
    assert "gzip data ends early" in issues[-1].message


# --- hostile files ------------------------------------------------------------------------------


def test_hostile_lines_are_reported_skipped_and_the_rest_read(tmp_path, ours):
    from rollout_fixtures import hostile_lines, write_hostile_file

    groups, expected = ours
    path, messages = write_hostile_file(tmp_path / "hostile.jsonl", groups)
    rollouts, reader, issues = collect(path)
    lost = [whole for _, _, whole in hostile_lines(groups[0])]
    # Line 1 has a BOM and is read; every hostile line (even numbers) has one issue that names it.
    by_line = {i.line_number: i for i in issues}
    assert sorted(by_line) == [2 * k for k in range(1, len(messages) + 1)]
    for k, message in enumerate(messages, start=1):
        issue = by_line[2 * k]
        assert message in issue.message, issue
        assert (issue.rollout_index is None) == lost[k - 1]
        assert "\n" not in str(issue)
    stats = reader.stats
    assert stats.malformed_lines == sum(lost) and stats.malformed_rollouts == lost.count(False)
    good = [(r.line_number, r.prompt, r.completion, r.score) for r in rollouts if r.line_number % 2]
    want = [(1 if e.group == 0 else 2 * e.group + 1, e.prompt, e.completion, pytest.approx(e.score))
            for e in expected if e.group <= len(messages)]  # fmt: skip
    assert good == want
    # Partly bad lines keep their other rollouts; all scores read are finite and in [0, 1].
    assert sum(1 for r in rollouts if r.line_number % 2 == 0) == 3 * lost.count(False)
    assert all(0.0 <= r.score <= 1.0 for r in rollouts)


def test_lone_surrogates_are_read_as_the_env_wrote_them(tmp_path, ours):
    from rollout_fixtures import SURROGATE_COMPLETION, surrogate_line

    path = write_jsonl(tmp_path / "s.jsonl", [surrogate_line(ours[0][0]), ours[0][1]])
    rollouts, reader, issues = collect(path)
    assert issues == [] and len(rollouts) == 8
    assert rollouts[0].completion == SURROGATE_COMPLETION and "\ud800" in rollouts[0].completion


def test_foreign_scores_need_only_be_within_minus_one_and_one(tmp_path, corpus_rows):
    row = corpus_rows[0]
    text = llama3_text(SYSTEM_PROMPT, row["prompt"], row["completion"])
    lines = [{"scores": [score], "messages": [[text]]} for score in (-0.5, 1.0, -1.5, 10**6)]
    rollouts, reader, issues = collect(write_jsonl(tmp_path / "legacy.jsonl", lines))
    assert [r.score for r in rollouts] == [-0.5, 1.0]
    assert ["outside [-1, 1]" in i.message for i in issues] == [True, True]


def test_out_of_range_layers_are_dropped_with_a_warning(tmp_path, ours):
    group = json.loads(json.dumps(ours[0][0]))
    group["metric_card"]["rollouts"][0]["layers"]["schema"] = 1e308
    group["metric_card"]["rollouts"][0]["layers"]["semantic"] = "high"
    rollouts, reader, issues = collect(write_jsonl(tmp_path / "layers.jsonl", [group]))
    assert len(rollouts) == 4 and reader.stats.warnings == 2
    assert set(rollouts[0].layers) == {"validity", "formatting"}
    assert [i.message for i in issues] == [
        "layer 'schema' is 1e+308, not a number in [0, 1]; ignored",
        "layer 'semantic' is a string, not a number in [0, 1]; ignored",
    ]


def test_a_bom_is_ignored_on_the_first_line_only(tmp_path, ours):
    first, second = (json.dumps(g).encode() for g in ours[0][:2])
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + first + b"\n" + second + b"\n")
    rollouts, reader, issues = collect(path)
    assert issues == [] and len(rollouts) == 8


@pytest.mark.parametrize(
    "unit",
    ["<|start_header_id|>", "<|start_header_id|>user\n", "x<|finetune_right_pad_id|>"],
    ids=["header-starts", "header-newlines", "padding"],
)
def test_legacy_split_is_linear(unit):
    """Splitting is one linear pass: 4x the text costs about 4x, never 16x (a lazy header regex
    searched over 600 KB of header tokens is quadratic: minutes)."""
    prefix = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    times = {}
    for size in (150_000, 600_000):
        text = prefix + unit * (size // len(unit))
        start = time.perf_counter()
        split_llama3(text)
        times[size] = time.perf_counter() - start
    assert times[600_000] < 0.5, times
    assert times[600_000] < 4 * 4 * max(times[150_000], 1e-3), times  # far from quadratic


def test_a_legacy_line_of_header_tokens_reads_fast(tmp_path):
    line = {"scores": [0.1], "messages": [["<|start_header_id|>" * 32_000]]}  # ~600 KB
    start = time.perf_counter()
    rollouts, reader, issues = collect(write_jsonl(tmp_path / "headers.jsonl", [line]))
    assert time.perf_counter() - start < 2.0
    assert rollouts == [] and "no usable conversation" in issues[0].message


@pytest.mark.parametrize("swap", [True, False], ids=["exchange", "two-renames"])
def test_atomic_directory_replaces_in_one_swap_where_it_can(tmp_path, monkeypatch, swap):
    from metric_cards import io_utils

    target = tmp_path / "ds"
    with atomic_directory(target, lambda path: True) as tmp:
        (tmp / "old.txt").write_text("1")
    used = []
    real = io_utils._exchange

    def exchange(a, b):
        used.append(a)
        return real(a, b) if swap else False

    monkeypatch.setattr(io_utils, "_exchange", exchange)
    with atomic_directory(target, lambda path: True) as tmp:
        (tmp / "new.txt").write_text("2")
    assert len(used) == 1 and sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # the old directory is gone
    if swap and sys.platform.startswith("linux"):
        assert real(tmp_path / "ds", tmp_path / "ds")  # renameat2 exists here: one atomic swap
