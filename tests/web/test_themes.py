"""The run page's theme strip and the experiment page's attractor map, through Starlette's TestClient."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from duologue.analysis.themes import builtin_themes
from duologue.store import MessageTheme, SemanticSummary, Store
from duologue.web import create_app
from duologue.web.chat import chat_blocks
from duologue.web.themes import theme_view

from .themes_sample import (
    COLLAPSE,
    COLLAPSE_RUN,
    DRIFT,
    DRIFT_RUN,
    EXPERIMENT,
    EXPERIMENT_RUNS,
    HOSTILE_LABEL,
    HOSTILE_THEME_RUN,
    LIVE_THEME_RUN,
    PAIRING_A,
    PAIRING_B,
    UNANALYSED_RUN,
    build_theme_store,
)


@pytest.fixture(scope="module")
def theme_db(tmp_path_factory) -> Path:
    return build_theme_store(tmp_path_factory.mktemp("themes") / "runs" / "duologue.db")


@pytest.fixture(scope="module")
def client(theme_db):
    with TestClient(create_app(theme_db)) as client:
        yield client


def strip_cells(page: str) -> list[tuple[str, str, str]]:
    """(classes, data-message, title) of each strip cell, in order."""
    strip = page.split('id="theme-strip"', 1)[1].split("</div>", 1)[0]
    return [
        (c, i, html.unescape(t))
        for c, i, t in re.findall(r'<a class="cell ([^"]*)" href="#m\d+" data-message="(\d+)" title="([^"]*)"', strip)
    ]


LABELS = {**{t.id: t.label for t in builtin_themes().themes}, None: "none"}


def test_store_gives_each_message_its_theme(theme_db):
    with Store(theme_db) as store:
        themes = store.message_themes(DRIFT_RUN)
        assert [t.index for t in themes] == list(range(1, len(DRIFT) + 1))
        bliss = {"gratitude", "unity", "stillness", "wordless"}  # the faces of the spiritual bliss family
        assert {t.theme for t in themes[11:]} <= bliss  # messages 12…: deep in the drift
        assert store.run_semantic(DRIFT_RUN).attractor_onset == 9
        assert store.message_themes(UNANALYSED_RUN) == [] and store.run_semantic(UNANALYSED_RUN) is None


def test_run_page_shows_the_strip_the_entry_and_the_badges(client, theme_db):
    page = client.get(f"/runs/{DRIFT_RUN}").text
    cells = strip_cells(page)
    assert len(cells) == len(DRIFT) == 20
    assert [int(i) for _, i, _ in cells] == list(range(1, 21))
    with Store(theme_db) as store:
        stored = store.message_themes(DRIFT_RUN)
    # Each cell is coloured (a class) by its theme; the title names message, theme and topic.
    for (classes, _, title), m in zip(cells, stored, strict=True):
        label = LABELS[m.theme]
        assert title.startswith(f"message {m.index}: {label}")
        assert ("t-none" in classes) == (m.theme is None) and ("t-task" in classes) == (m.theme == "on_task")
    assert cells[8][2].startswith("message 9: gratitude")
    gratitude = {c.split()[0] for c, _, t in cells if ": gratitude" in t}
    assert len(gratitude) == 1 and re.fullmatch(r"t\d", gratitude.pop())
    # The attractor's entry: on the cell, under the strip, in the summary and before message 9 in the chat.
    assert [i for c, i, _ in cells if "entry" in c.split()] == ["9"]
    assert '<span class="strip-mark entry" id="strip-entry">▲ entered spiritual bliss at message 9</span>' in page
    assert '<span id="attractor"><a href="#attractor-entry">entered spiritual bliss at message 9</a>' in page
    assert '<span id="end-state">spiritual bliss</span>' in page
    assert '<span id="convergence">none</span>' in page
    chat = page.split('id="chat"', 1)[1]
    assert re.search(r'id="attractor-entry">entered spiritual bliss at message 9</div>\s*<article[^>]* id="m9"', chat)
    # A badge on each message with a theme, in the message's header.
    badges = [
        b
        for article in chat.split("<article")[1:]
        for b in re.findall(
            r'^[^>]* id="m(\d+)".*?<header>.*?<span class="badge (t[\w-]+)" title="[^"]*">([^<]*)</span>'
            r"</header>",
            article,
            re.S,
        )
    ]
    assert {int(i) for i, _, _ in badges} == {m.index for m in stored if m.theme or m.topic}
    last = LABELS[stored[19].theme]
    assert ("20", next(c for c, _, t in cells if "message 20:" in t).split()[0], last) in badges
    # The legend: every theme of the strip once, with its message count.
    legend = page.split('id="theme-legend"', 1)[1].split("</ul>", 1)[0]
    names = re.findall(r'<span class="name">([^<]*)</span> <span class="n">(\d+)</span>', legend)
    assert dict(names)["gratitude"] == str(sum(m.theme == "gratitude" for m in stored))
    assert sum(int(n) for _, n in names) == 20


def test_convergence_onset_is_marked(client, theme_db):
    with Store(theme_db) as store:
        semantic = store.run_semantic(COLLAPSE_RUN)
    assert (semantic.convergence_onset, semantic.attractor, semantic.attractor_onset) == (7, "role_collapse", 8)
    page = client.get(f"/runs/{COLLAPSE_RUN}").text
    cells = strip_cells(page)
    assert len(cells) == len(COLLAPSE)
    assert [i for c, i, _ in cells if "convergence" in c.split()] == ["7"]
    assert [i for c, i, _ in cells if "entry" in c.split()] == ["8"]
    assert re.search(r'id="strip-convergence">◆ converged since message 7 \(strength 0\.\d\d\)</span>', page)
    assert '<span id="convergence"><a href="#convergence-onset">converged since message 7' in page
    assert "entered role collapse at message 8" in page
    chat = page.split('id="chat"', 1)[1]
    assert re.search(r'id="convergence-onset">converged since message 7 [^<]*</div>\s*<article[^>]* id="m7"', chat)


def test_theme_labels_from_a_user_file_are_escaped(client):
    page = client.get(f"/runs/{HOSTILE_THEME_RUN}").text
    assert HOSTILE_LABEL not in page and "<script>window" not in page and "<b>grateful" not in page
    assert str(escape(f"entered {HOSTILE_LABEL} at message 9")) in page
    assert any(t.startswith(f"message 12: {HOSTILE_LABEL}") for _, _, t in strip_cells(page))


def test_unanalysed_run_is_analysed_on_the_fly_and_a_live_run_has_no_strip(client):
    page = client.get(f"/runs/{UNANALYSED_RUN}").text
    assert len(strip_cells(page)) == len(DRIFT) and "entered spiritual bliss at message 9" in page
    r = client.get(f"/runs/{LIVE_THEME_RUN}")
    assert r.status_code == 200
    assert 'id="theme-strip"' not in r.text and 'id="semantic-summary"' not in r.text and 'class="badge' not in r.text


def test_a_run_from_before_the_themes_has_no_strip():
    """Stored loop analysis without themes (an old store): no strip, no error."""
    assert theme_view(None, [MessageTheme(1, None, None)], {}, []) is None
    assert theme_view(SemanticSummary(), [], {}, []) is None
    view = theme_view(SemanticSummary(end_state=None), [MessageTheme(1, "mystery", None)], {}, ["gratitude"])
    assert view.end_state == "unresolved" and view.cells[0].label == "mystery" and view.cells[0].css == "t1"


def test_marks_come_before_the_loop_marker_and_before_the_fold():
    from duologue.records import Message
    from duologue.store import ExactLoopRecord

    messages = [Message(index=i, speaker="ab"[i % 2], content=f"m{i}") for i in range(1, 11)]
    loop = ExactLoopRecord(period=2, onset=5, first_repeat=7, last=10)
    blocks = chat_blocks(
        messages,
        loop,
        {5: [("attractor-entry", "entered x at message 5")], 8: [("convergence-onset", "converged since message 8")]},
    )
    kinds = [(b.kind, b.message.index if b.message else b.anchor or None) for b in blocks]
    assert kinds == [
        ("message", 1),
        ("message", 2),
        ("message", 3),
        ("message", 4),
        ("mark", "attractor-entry"),
        ("onset", None),
        ("message", 5),
        ("message", 6),
        ("mark", "convergence-onset"),
        ("repeats", None),
    ]
    assert len(blocks[-1].messages) == 4  # 7…10 folded


def attractor_table(page: str, setting: str) -> list[list[str]]:
    table = page.split(f'<table class="summary attractors" data-setting="{setting}">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]


def test_experiment_page_shows_the_attractor_map(client):
    page = client.get(f"/experiments/{EXPERIMENT}").text
    assert '<section class="attractor-map" id="attractor-map">' in page
    assert "Overall: 3 of 4 runs entered an attractor." in page
    by_pairing = {row[0]: row for row in attractor_table(page, "pairing")}
    assert set(by_pairing) == {PAIRING_A, PAIRING_B}
    a, b = by_pairing[PAIRING_A], by_pairing[PAIRING_B]
    assert a[1:4] == ["2", "spiritual bliss 100%", "2 (100%)"]
    assert a[4] == "spiritual bliss: message 8"  # entries at 9 and 7
    assert b[1] == "2" and b[3] == "1 (50%)" and b[4] == "farewell spiral: message 7"
    assert "farewell spiral 50%" in b[2] and "unresolved 50%" in b[2]
    by_temperature = {row[0]: row for row in attractor_table(page, "temperature")}
    assert set(by_temperature) == {"0.7", "1.0"}
    assert by_temperature["0.7"][3] == "2 (100%)" and by_temperature["1.0"][3] == "1 (50%)"
    # The plots inline, as data: URIs (the CSP allows no other images): by pairing and by temperature.
    for setting in ("pairing", "temperature"):
        assert (
            len(
                re.findall(
                    r'<img alt="(?:where conversations are|time to attractor entry|topics and end states)[^"]*'
                    rf'by {setting}[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{{200,}}"',
                    page,
                )
            )
            == 3
        )
    assert "survival curves" in page  # the existing report is still there
    assert [e for *_, e in EXPERIMENT_RUNS].count(None) == 1


def test_experiment_without_runs_shows_no_map(client, theme_db):
    with Store(theme_db) as store:
        if store.get_experiment("exp-empty") is None:
            store.create_experiment("exp-empty", "empty", {"name": "empty"})
    r = client.get("/experiments/exp-empty")
    assert r.status_code == 200 and 'id="attractor-map"' not in r.text
