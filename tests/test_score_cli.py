"""`python -m metric_cards score` as a real subprocess: JSONL in, JSONL out, errors per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metric_cards.catalog import parse_request
from metric_cards.reward import score_completion

REPO = Path(__file__).resolve().parents[1]
GOOD = {
    "prompt": "Create a metric card for revenue in retail for December.",
    "completion": json.dumps(
        {
            "componentType": "metricCard",
            "props": {"title": "Revenue", "value": "$48,250", "icon": "dollar-sign"},
        }
    ),
}


def run(*args: str, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "metric_cards", "score", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_scores_the_corpus_exactly_as_the_library_does(
    corpus_rows: list[dict], tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps(row) for row in corpus_rows])
    result = run(str(source))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == len(corpus_rows) == 240
    for row, scored in zip(corpus_rows, out, strict=True):
        expected = score_completion(row["completion"], parse_request(row["prompt"]), None)
        assert scored["score"] == expected.score
        assert scored["layers"] == expected.layers
        assert scored["problems"] == expected.problems
        assert {key: scored[key] for key in row} == row  # input fields kept as they were


def test_finish_reason_is_used(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD), json.dumps({**GOOD, "finish_reason": "length"})]
    result = run(str(write_jsonl(tmp_path / "in.jsonl", lines)))
    stopped, cut = (json.loads(line) for line in result.stdout.splitlines())
    assert cut["finish_reason"] == "length"
    assert cut["score"] < stopped["score"]
    assert "the completion was cut off (finish_reason=length)" in cut["problems"]


def test_stdin_and_non_catalog_prompts() -> None:
    line = json.dumps({**GOOD, "prompt": "make me a card"})
    result = run("-", stdin=line + "\n")
    assert result.returncode == 0, result.stderr
    scored = json.loads(result.stdout)
    assert scored["score"] == score_completion(GOOD["completion"], None).score


def test_bad_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"prompt": "x"}),
        json.dumps({"prompt": 3, "completion": "x"}),
        "[1, 2]",
        "",
        json.dumps({**GOOD, "finish_reason": 7}),
        json.dumps(GOOD),
    ]
    result = run(str(write_jsonl(tmp_path / "in.jsonl", lines)))
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2
    errors = result.stderr.splitlines()
    assert errors[0].startswith("line 2: skipped, invalid JSON at character 2")
    assert errors[1:] == [
        'line 3: skipped, missing "completion"',
        'line 4: skipped, "prompt" must be a string',
        "line 5: skipped, not a JSON object",
        'line 7: skipped, "finish_reason" must be a string or null',
        f"scored 2 line(s), skipped 5; first: {errors[0]}",
    ]
    assert "Traceback" not in result.stderr


def test_nothing_scorable_exits_non_zero_and_writes_nothing(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["nope", "{}"])
    target = tmp_path / "out.jsonl"
    target.write_text("previous results\n", encoding="utf-8")
    result = run(str(source), "-o", str(target))
    assert result.returncode == 1
    assert "no line could be scored" in result.stderr
    assert target.read_text(encoding="utf-8") == "previous results\n"  # left untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_missing_input_file(tmp_path: Path) -> None:
    result = run(str(tmp_path / "absent.jsonl"))
    assert result.returncode == 2
    assert "input file not found" in result.stderr and "Traceback" not in result.stderr


def test_output_file_is_written_atomically(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)] * 3)
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    result = run(str(source), "-o", str(target))
    assert result.returncode == 0 and result.stdout == ""
    assert len(target.read_text(encoding="utf-8").splitlines()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temp
    missing_dir = run(str(source), "-o", str(tmp_path / "no" / "out.jsonl"))
    assert missing_dir.returncode == 2 and "does not exist" in missing_dir.stderr


def test_unicode_survives(tmp_path: Path) -> None:
    card = {"componentType": "metricCard", "props": {"title": "Umsatz €", "value": "€1.2M"}}
    line = json.dumps({"prompt": "Karte bitte", "completion": json.dumps(card, ensure_ascii=False)})
    result = run(str(write_jsonl(tmp_path / "in.jsonl", [line])))
    assert json.loads(result.stdout)["completion"] == json.dumps(card, ensure_ascii=False)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_has_an_example(flag: str) -> None:
    result = run(flag)
    assert result.returncode == 0
    assert "python -m metric_cards score rollouts.jsonl -o scored.jsonl" in result.stdout


# --- hostile inputs ---------------------------------------------------------------------------


def test_hostile_lines_are_skipped_and_every_later_line_scored(tmp_path: Path) -> None:
    good = json.dumps(GOOD).encode()
    hostile = [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 512 levels"),
        (b'{"prompt": "p", "completion": "\xff"}', "not valid UTF-8"),
        (b'{"prompt": "p", "completion": "x", "n": ' + b"[" * 600 + b"]" * 600 + b"}", "nested"),
    ]
    lines = [good]
    for line, _ in hostile:
        lines += [line, good]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + b"".join(x + b"\n" for x in lines))
    result = run(str(source))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    scored = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(scored) == len(hostile) + 1  # line 1 (after the BOM) and every good line after
    assert all(row["score"] == scored[0]["score"] for row in scored)
    errors = result.stderr.splitlines()
    for k, (_, message) in enumerate(hostile, start=1):
        assert errors[k - 1].startswith(f"line {2 * k}: skipped, ") and message in errors[k - 1]
    assert errors[-1].startswith(f"scored {len(hostile) + 1} line(s), skipped {len(hostile)};")


def test_lone_surrogates_are_scored_as_the_env_scores_them(tmp_path: Path) -> None:
    """The env scores a completion holding "\\ud800" (and writes it escaped): so does the CLI."""
    completion = '{"componentType": "metricCard", "props": {"title": "Rev\ud800", "value": "1"}}'
    rows = [{**GOOD, "completion": completion}, {**GOOD, "prompt": GOOD["prompt"] + "\udfff"}]
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps(row) for row in rows] + ["{}"])
    result = run(str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "line 3: skipped" in result.stderr
    raw = (tmp_path / "out.jsonl").read_bytes()
    raw.decode("utf-8")  # valid UTF-8: the surrogates are written as escapes
    assert b"\\ud800" in raw and b"\\udfff" in raw
    for row, line in zip(rows, raw.splitlines(), strict=True):
        scored = json.loads(line)
        expected = score_completion(row["completion"], parse_request(row["prompt"]), None)
        assert scored["completion"] == row["completion"] and scored["prompt"] == row["prompt"]
        assert scored["score"] == expected.score and scored["problems"] == expected.problems


def test_a_bom_is_accepted_as_the_data_scripts_accept_it(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    result = run(str(source))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads(result.stdout)["score"] > 0.5
    stdin = run("-", stdin="\ufeff" + json.dumps(GOOD) + "\n")
    assert stdin.returncode == 0 and stdin.stdout == result.stdout


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink", "stdin"])
def test_output_may_not_be_the_input(alias: str, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD), "{broken"])
    target = tmp_path / "out.jsonl"
    if alias == "same":
        target = source
    elif alias == "symlink":
        target.symlink_to(source)
    elif alias == "hardlink":
        os.link(source, target)
    before = source.read_bytes()
    if alias == "stdin":  # score - -o IN < IN
        with source.open("rb") as handle:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            result = subprocess.run(
                [sys.executable, "-m", "metric_cards", "score", "-", "-o", str(source)],
                stdin=handle, capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
    else:
        result = run(str(source), "-o", str(target))
    assert result.returncode == 2, result.stderr
    assert "would overwrite the input" in result.stderr and "Traceback" not in result.stderr
    assert source.read_bytes() == before


def test_output_mode_is_not_0600(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    code = (
        "import os, sys\nos.umask(0o022)\nfrom metric_cards.__main__ import main\n"
        "sys.exit(main(['score', sys.argv[1], '-o', sys.argv[2]]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fresh, kept = tmp_path / "fresh.jsonl", tmp_path / "kept.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o640)
    for target in (fresh, kept):
        subprocess.run([sys.executable, "-c", code, str(source), str(target)], env=env, check=True)
    assert fresh.stat().st_mode & 0o777 == 0o644
    assert kept.stat().st_mode & 0o777 == 0o640 and "score" in kept.read_text()


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_leaves_no_temporary_file(signal_name: str, tmp_path: Path) -> None:
    import signal
    import time

    target = tmp_path / "out.jsonl"
    target.write_text("previous\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "metric_cards", "score", "-", "-o", str(target)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write((json.dumps(GOOD) + "\n").encode())
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # until the temporary output exists (the first line is being scored)
    time.sleep(0.5)
    assert len(list(tmp_path.iterdir())) == 2  # out.jsonl and the temporary beside it
    proc.send_signal(getattr(signal, signal_name))
    code = proc.wait(timeout=30)
    stderr = proc.stderr.read().decode()
    assert code == {"SIGTERM": 143, "SIGINT": 130, "SIGHUP": 129}[signal_name], stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    assert target.read_text() == "previous\n"


def test_broken_pipe_exits_141_like_the_data_scripts(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)] * 2000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = f"{sys.executable} -m metric_cards score {source} | head -c 10 > /dev/null"
    result = subprocess.run(
        ["bash", "-c", script + "; echo ${PIPESTATUS[0]}"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.stdout.strip() == "141", result.stderr
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
