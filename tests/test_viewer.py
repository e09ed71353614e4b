"""The rollout viewer's HTML, without a browser: structure, escaping, data, summary and CLI.

The page itself is exercised in real Chromium by tests/test_viewer_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from viewer_fixtures import (
    HOSTILE_CARD,
    HOSTILE_COMPLETIONS,
    HOSTILE_PROBLEM,
    HOSTILE_PROMPT,
    FixtureFile,
    our_group,
    write_corpus_file,
)

from metric_cards import viewer
from metric_cards.extraction import extract_json
from metric_cards.viewer import EmptyInputError, ViewerError, card_view, render_html

REPO = Path(__file__).resolve().parents[1]


class _Page(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag
            if tag == "script":
                self.scripts.append((dict(attrs), ""))
            else:
                self.styles.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        elif self._in == "style":
            self.styles[-1] += data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _data(page: _Page) -> dict[str, Any]:
    blocks = [text for attrs, text in page.scripts if attrs.get("type") == "application/json"]
    assert len(blocks) == 1
    return json.loads(blocks[0])


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, corpus_rows: list[dict]
) -> tuple[FixtureFile, str]:
    path = tmp_path_factory.mktemp("viewer") / "rollouts.jsonl"
    fixture = write_corpus_file(path, corpus_rows)
    stats = render_html(path)
    assert stats.output_path == path.with_suffix(".html")
    assert (stats.groups, stats.rollouts) == (fixture.groups, fixture.rollouts)
    assert stats.malformed_lines == fixture.malformed_lines
    return fixture, stats.output_path.read_text(encoding="utf-8")


def test_data_block_holds_every_rollout_in_file_order(rendered: tuple[FixtureFile, str]) -> None:
    fixture, html = rendered
    data = _data(_parse(html))
    assert len(data["groups"]) == fixture.groups == 64
    assert len(data["rollouts"]) == fixture.rollouts == 254
    assert [r["s"] for r in data["rollouts"]] == pytest.approx(fixture.scores)
    assert [g["index"] for g in data["groups"]] == list(range(fixture.groups))
    assert data["layer_names"] == ["validity", "schema", "semantic", "formatting"]
    # Each group's mean over its rollouts, as in the file.
    for index, group in enumerate(data["groups"]):
        mine = [r["s"] for r in data["rollouts"] if r["g"] == index]
        assert group["mean"] == pytest.approx(sum(mine) / len(mine), abs=1e-6)
    # The legacy group: flagged, random scores as written, layers unknown.
    legacy = [i for i, g in enumerate(data["groups"]) if g["legacy"]]
    assert len(legacy) == 1
    legacy_rollouts = [r for r in data["rollouts"] if r["g"] == legacy[0]]
    assert len(legacy_rollouts) == 4
    assert all(r["l"] is None and -0.5 <= r["s"] <= 0.5 for r in legacy_rollouts)
    assert all(r["l"] is not None for r in data["rollouts"] if r["g"] != legacy[0])


def test_hostile_strings_survive_as_data_and_never_as_markup(
    rendered: tuple[FixtureFile, str],
) -> None:
    _, html = rendered
    page = _parse(html)
    # Exactly our two scripts: the JSON block and the viewer code. No payload made a third.
    assert [a.get("type") for a, _ in page.scripts] == ["application/json", None]
    assert html.count("<script") == 2 and html.count("</script") == 2
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert "javascript:" not in (value or "").lower(), (tag, name, value)
    assert not any(tag in ("a", "img", "iframe", "link", "object", "embed") for tag, _ in page.tags)
    # Outside the JSON block (escaped there), no payload text is on the page at all.
    outside = html.replace(page.scripts[0][1], "")
    assert "pwned" not in outside and "alert(1)" not in outside
    json_block = page.scripts[0][1]
    assert "<" not in json_block and ">" not in json_block and "&" not in json_block
    # ...and JSON.parse gives back the exact hostile strings, to be shown with textContent.
    data = _data(page)
    cards = {r["c"]: r["k"] for r in data["rollouts"]}
    card = cards[HOSTILE_COMPLETIONS[1]]
    props = HOSTILE_CARD["props"]
    assert (card["t"], card["v"], card["d"]) == (
        props["title"],
        props["value"],
        props["description"],
    )
    assert card["cl"] == props["className"] == '"><script>alert(1)</script>'
    assert card["i"] == props["icon"] and card["ic"] is None  # unknown icon: a marker, no SVG
    assert card["tr"] == {"v": props["trend"]["value"], "p": True, "dir": 0}
    assert cards[HOSTILE_COMPLETIONS[0]]["st"] == "invalid"
    assert HOSTILE_PROMPT in [g["prompt"] for g in data["groups"]]
    assert HOSTILE_PROBLEM in data["problems"]
    hostile_id = data["problems"].index(HOSTILE_PROBLEM)
    assert sum(hostile_id in r["pr"] for r in data["rollouts"]) == 2


def test_csp_allows_only_our_inline_code(rendered: tuple[FixtureFile, str]) -> None:
    _, html = rendered
    page = _parse(html)
    metas = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert len(metas) == 1 and metas[0]["http-equiv"] == "Content-Security-Policy"
    csp = dict(d.strip().split(" ", 1) for d in (metas[0]["content"] or "").split(";"))
    assert csp["default-src"] == "'none'"
    code = page.scripts[1][1]
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert csp["script-src"] == f"'sha256-{digest}'"
    style_digest = base64.b64encode(hashlib.sha256(page.styles[0].encode()).digest()).decode()
    assert csp["style-src"] == f"'sha256-{style_digest}'"
    assert "unsafe-inline" not in metas[0]["content"] and "unsafe-eval" not in metas[0]["content"]
    # The CSP blocks inline style attributes, so the page must not have any.
    assert not any("style" in attrs for _, attrs in page.tags)
    # The viewer code never hands data to an HTML parser.
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", code)


def test_page_is_self_contained(rendered: tuple[FixtureFile, str]) -> None:
    _, html = rendered
    page = _parse(html)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html.replace(page.scripts[0][1], "")))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert not any("src" in attrs for tag, attrs in page.tags if tag != "script")
    assert not any(t == "link" for t, _ in page.tags)


def test_summary_figures(rendered: tuple[FixtureFile, str]) -> None:
    fixture, html = rendered
    data = _data(_parse(html))
    completions = [r["c"] for r in data["rollouts"]]
    strict = [isinstance(e.value, dict) and not e.repaired for e in map(extract_json, completions)]
    expected_valid = f"{100 * sum(strict) / len(strict):.1f}%"
    mean = sum(fixture.scores) / len(fixture.scores)
    assert re.search(r'id="stat-groups">64<', html)
    assert re.search(r'id="stat-rollouts">254<', html)
    assert f'id="stat-valid">{expected_valid}<' in html
    assert f'id="stat-mean">{mean:.3f}<' in html
    assert 'id="stat-truncated">1<' in html  # the cut-off one (the corpus is all finished)
    # hacking canaries: each raised one with its share of the rollouts, as the file says
    raised = [name for r in data["rollouts"] for name in r["cn"]]
    assert "example_copied" in raised
    share = 100 * raised.count("example_copied") / len(data["rollouts"])
    assert f"example_copied {share:.0f}%" in html[html.index('id="stat-canaries"') :]
    layers = re.findall(r'<span class="name">(\w+)</span>', html)
    assert layers == ["validity", "schema", "semantic", "formatting"]
    with_layers = [r["l"] for r in data["rollouts"] if r["l"] is not None]
    validity_mean = sum(ls[0] for ls in with_layers) / len(with_layers)
    assert f'<span class="num">{validity_mean:.3f}</span>' in html
    # Histogram: 10 bars whose counts add up to every rollout with a score.
    counts = [int(n) for n in re.findall(r"<title>[^<]*: (\d+)</title>", html)]
    assert len(counts) == 10 and sum(counts) == fixture.rollouts
    # Malformed lines are listed, with their line numbers.
    notice = html[html.index('id="malformed"') :]
    assert all(f"line {n}:" in notice for n in (65, 66, 67))


def test_icons_come_from_the_lucide_sprite(rendered: tuple[FixtureFile, str]) -> None:
    _, html = rendered
    data = _data(_parse(html))
    used = {r["k"]["ic"] for r in data["rollouts"] if r["k"].get("ic") is not None}
    symbols = re.findall(r'<symbol id="(ic-\d+|ui-\w+)" viewBox="0 0 24 24">', html)
    assert {f"ic-{i}" for i in used} == {s for s in symbols if s.startswith("ic-")}
    assert {"ui-up", "ui-down", "ui-flat"} <= set(symbols)
    # The corpus has icons Lucide lacks ("renew", ...): they get the marker, not a made-up SVG.
    unknown = {r["k"]["i"] for r in data["rollouts"] if "i" in r["k"] and r["k"]["ic"] is None}
    assert "renew" in unknown


def test_card_view_shapes() -> None:
    card = card_view(
        json.dumps(
            {
                "componentType": "metricCard",
                "props": {
                    "title": "Churn Rate",
                    "value": "3.2%",
                    "description": "Monthly churn",
                    "trend": {"value": -0.4, "isPositive": True},
                    "icon": "user-minus",
                    "className": "big",
                },
            }
        ),
        viewer.IconSprite(),
    )
    assert card == {
        "m": "bare",
        "st": "ok",
        "t": "Churn Rate",
        "v": "3.2%",
        "d": "Monthly churn",
        "tr": {"v": "0.4%", "p": True, "dir": -1},  # falling and good: a green down arrow
        "cl": "big",
        "i": "user-minus",
        "ic": 0,
    }
    assert card_view("{not json")["st"] in ("invalid", "repaired")
    assert card_view("no json here") == {"m": "none", "st": "invalid", "e": "Invalid JSON"}
    assert card_view("")["e"] == "Empty output"
    assert card_view("[1, 2]")["e"] == "JSON list, not an object"
    no_props = card_view('{"componentType": "table"}')
    assert no_props["ct"] == "table" and no_props["np"] and no_props["t"] is None
    repaired = card_view('{"componentType": "metricCard", "props": {"title": "A", "value": "1",}}')
    assert repaired["st"] == "repaired" and repaired["t"] == "A"
    odd = card_view(
        json.dumps({"props": {"title": 5, "value": {"a": 1}, "trend": {"value": "-12%"}}})
    )
    assert (odd["t"], odd["v"]) == ("5", '{"a":1}')
    assert odd["tr"] == {"v": "-12%", "p": None, "dir": -1}
    long = card_view(json.dumps({"props": {"title": "x" * 5000}}))
    assert len(long["t"]) == viewer.MAX_FIELD_CHARS and long["t"].endswith("…")


def test_scores_come_from_the_file_not_the_scorer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus_rows: list[dict]
) -> None:
    group = our_group(corpus_rows[0]["prompt"], [corpus_rows[0]["completion"]])
    group["metric_card"]["rollouts"][0].update(
        score=0.123, layers={"validity": 1, "schema": 0.5, "semantic": 0.25, "formatting": 0},
        problems=["written by hand"],
    )  # fmt: skip
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(group) + "\n", encoding="utf-8")

    def no_scoring(*args: object, **kwargs: object) -> None:
        raise AssertionError("the viewer must not re-score")

    monkeypatch.setattr("metric_cards.reward.score_completion", no_scoring)
    render_html(path, tmp_path / "one.html")
    data = _data(_parse((tmp_path / "one.html").read_text(encoding="utf-8")))
    (rollout,) = data["rollouts"]
    assert rollout["s"] == 0.123 and rollout["l"] == [1, 0.5, 0.25, 0]
    assert [data["problems"][i] for i in rollout["pr"]] == ["written by hand"]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ViewerError, match="not found"):
        render_html(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ViewerError, match="empty"):
        render_html(empty)
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nope\n[1]\n\n", encoding="utf-8")
    with pytest.raises(EmptyInputError, match="no rollouts.*2 malformed"):
        render_html(junk)
    stats = render_html(junk, allow_empty=True)  # e.g. an env run that produced nothing
    assert stats.rollouts == 0 and 'id="stat-rollouts">0<' in stats.output_path.read_text()
    with pytest.raises(ViewerError, match="output directory does not exist"):
        render_html(junk, tmp_path / "no" / "such" / "dir.html", allow_empty=True)
    with pytest.raises(ViewerError, match="overwrite the input"):
        render_html(junk, junk)
    assert junk.read_text() == "nope\n[1]\n\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic_writer left no temporary behind


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metric_cards", "render", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli(tmp_path: Path, corpus_rows: list[dict]) -> None:
    path = tmp_path / "run.jsonl"
    fixture = write_corpus_file(path, corpus_rows[:8], extras=False)
    done = _cli(str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        f"wrote {path.with_suffix('.html')}: 2 groups, {fixture.rollouts} rollouts" in done.stdout
    )
    assert path.with_suffix(".html").stat().st_size > 10_000
    done = _cli(str(path), "-o", str(tmp_path / "out.html"), "--title", "<My run>", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "<title>&lt;My run&gt;</title>" in (tmp_path / "out.html").read_text(encoding="utf-8")

    for args, message in [
        (["missing.jsonl"], "error: input file not found: missing.jsonl"),
        ([str(tmp_path)], "error: input is a directory"),
    ]:
        done = _cli(*args, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    done = _cli("empty.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "error: input file is empty" in done.stderr
    (tmp_path / "bad.jsonl").write_text("{oops\n", encoding="utf-8")
    done = _cli("bad.jsonl", cwd=tmp_path)
    assert done.returncode == 1 and "error: no rollouts in bad.jsonl" in done.stderr
    assert "warning: " in done.stderr and "line 1" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "bad.html").exists()
    done = _cli(cwd=tmp_path)
    assert done.returncode == 2 and "usage:" in done.stderr


# --- hostile files ------------------------------------------------------------------------------


def test_hostile_lines_render_as_skipped_lines(tmp_path: Path, corpus_rows: list[dict]) -> None:
    """Lone surrogates, 10^5-deep nesting, 400-digit and ±1e308 scores: listed, not fatal."""
    from rollout_fixtures import hostile_lines, our_groups, write_hostile_file

    from metric_cards.reward import score_completion

    groups, _ = our_groups(corpus_rows[:32], score_completion)
    source, messages = write_hostile_file(tmp_path / "hostile.jsonl", groups)
    lost = [whole for _, _, whole in hostile_lines(groups[0])]
    done = _cli(str(source), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"skipped {sum(lost)} malformed lines and {lost.count(False)} malformed rollouts" in (
        done.stdout
    )
    html = source.with_suffix(".html").read_text(encoding="utf-8")
    data = _data(_parse(html))
    assert len(data["groups"]) == len(messages) + 1 + lost.count(False)
    assert all(0.0 <= r["s"] <= 1.0 for r in data["rollouts"])
    for k, message in enumerate(messages, start=1):
        assert f"line {2 * k}" in html and message in html  # the notice names each line
    counts = [int(n) for n in re.findall(r"<title>[^<]*: (\d+)</title>", html)]
    assert sum(counts) == len(data["rollouts"])


def test_lone_surrogates_render(tmp_path: Path, corpus_rows: list[dict]) -> None:
    from rollout_fixtures import SURROGATE_COMPLETION, surrogate_line

    group = our_group(corpus_rows[0]["prompt"], [r["completion"] for r in corpus_rows[:4]])
    source = tmp_path / "s.jsonl"
    source.write_text(surrogate_line(group) + "\n", encoding="utf-8")
    stats = render_html(source)
    assert (stats.rollouts, stats.malformed_lines) == (4, 0)
    html = stats.output_path.read_bytes().decode("utf-8")  # valid UTF-8
    data = _data(_parse(html))
    assert data["rollouts"][0]["c"] == SURROGATE_COMPLETION  # JSON.parse gives the same text
    assert data["rollouts"][0]["k"]["t"] == "Rev\ud800"


def test_output_may_not_be_a_link_to_the_input(tmp_path: Path, corpus_rows: list[dict]) -> None:
    import os

    source = tmp_path / "run.jsonl"
    write_corpus_file(source, corpus_rows[:8], extras=False)
    before = source.read_bytes()
    os.link(source, tmp_path / "hard.html")
    (tmp_path / "soft.html").symlink_to(source)
    for alias in ("hard.html", "soft.html"):
        with pytest.raises(ViewerError, match="overwrite the input"):
            render_html(source, tmp_path / alias)
        done = _cli(str(source), "-o", alias, cwd=tmp_path)
        assert done.returncode == 2 and "overwrite the input" in done.stderr
    assert source.read_bytes() == before


def test_long_strings_are_embedded_cut(tmp_path: Path, corpus_rows: list[dict]) -> None:
    from viewer_fixtures import LONG_COMPLETION_CHARS, write_long_strings_file

    source = tmp_path / "long.jsonl"
    completions = write_long_strings_file(source, corpus_rows)
    stats = render_html(source)
    assert stats.rollouts == 4
    assert stats.html_bytes < 1_000_000  # 20 MB of answers, a page well under 1 MB
    data = _data(_parse(stats.output_path.read_text(encoding="utf-8")))
    card, prose, normal, _ = data["rollouts"]
    assert len(card["c"]) == viewer.MAX_EMBEDDED_CHARS and card["c_len"] == len(completions[0])
    assert card["c"] == completions[0][: viewer.MAX_EMBEDDED_CHARS]
    assert len(card["k"]["t"]) == viewer.MAX_FIELD_CHARS and card["k"]["t"].endswith("…")
    assert prose["c_len"] == LONG_COMPLETION_CHARS
    assert normal["c"] == completions[2] and "c_len" not in normal
