"""The run page's Markdown, events timeline and lineage, through Starlette's TestClient."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from duologue.events import describe_event, describe_events
from duologue.web import create_app
from duologue.web.markdown import markdown, safe_link

from .history_sample import (
    FORK_RUN,
    GRANDCHILD_RUN,
    HOSTILE_MD,
    HOSTILE_MD_RUN,
    MARKDOWN_RUN,
    SUMMARY,
    build_history_store,
)


@pytest.fixture
def history_db(tmp_path: Path) -> Path:
    return build_history_store(tmp_path / "runs" / "duologue.db")


@pytest.fixture
def client(history_db):
    with TestClient(create_app(history_db)) as client:
        yield client


def message_html(page: str, index: int) -> str:
    """The rendered (Markdown) text of message `index` on a run page."""
    found = re.search(rf'id="m{index}" .*?<div class="text md[^"]*">(.*?)</div>\n  <div class="raw"', page, re.S)
    assert found, f"no message {index}"
    return found.group(1)


def raw_html(page: str, index: int) -> str:
    found = re.search(rf'id="m{index}" .*?<div class="raw" aria-label="raw text">(.*?)</div>', page, re.S)
    assert found, f"no message {index}"
    return found.group(1)


def test_messages_are_rendered_as_markdown_with_their_raw_text_beside(client):
    page = client.get(f"/runs/{MARKDOWN_RUN}").text
    assert "<em>small</em>" in message_html(page, 2)
    three = message_html(page, 3)
    assert "<ul>\n<li><strong>tomatoes</strong>, for the summer</li>" in three
    assert "<code>beans</code>" in three and "<pre><code>if soil.dry():\n    water(litres=2)\n</code></pre>" in three
    four = message_html(page, 4)
    assert "<blockquote>" in four and "<table>" in four and "<td>tomatoes</td>" in four
    assert '<a href="https://example.org/almanac" rel="nofollow noreferrer">the almanac</a>' in four
    assert "Line one<br />" in message_html(page, 5)  # single line breaks kept
    # The exact text, escaped, for the "raw text" toggle.
    assert raw_html(page, 3).startswith("Three things, in this order:\n\n- **tomatoes**")
    assert 'id="toggle-raw"' in page


def test_markdown_never_lets_markup_or_script_links_through(client):
    page = client.get(f"/runs/{HOSTILE_MD_RUN}").text
    rendered = [message_html(page, i) for i in range(2, 2 + len(HOSTILE_MD))]
    assert "<em>emphasis</em>" in rendered[0] and "[click for a prize](javascript:alert(1))" in rendered[0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered[1] and "<strong>bold</strong>" in rendered[1]
    assert "<li>a list item &lt;script&gt;alert(1)&lt;/script&gt;</li>" in rendered[2]
    assert "[data](data:text/html;base64," in rendered[2]
    assert '<pre><code class="language-html">&lt;script&gt;alert(1)&lt;/script&gt;' in rendered[4]
    for html in rendered:
        assert "<script" not in html and "<img" not in html and "<a href='javascript" not in html
        assert not re.search(r'href="\s*(javascript|vbscript|data):', html, re.I)
    chat = page[page.find('<section id="chat"') :]
    assert not re.search(r"<(script|img|svg)\b", chat[: chat.find("</section>")])


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](<javascript:alert(1)>)",
        "[x]( vbscript:msgbox(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "![x](data:image/svg+xml,<svg onload=alert(1)>)",
        "[r][1]\n\n[1]: javascript:alert(1)",
        "<javascript:alert(1)>",
        "[x](file:///etc/passwd)",
    ],
)
def test_markdown_links_keep_only_safe_schemes(text):
    html = str(markdown(text))
    assert "href" not in html and "<img" not in html and "<svg" not in html


def test_safe_links():
    assert safe_link("https://example.org/a?b=c") and safe_link("mailto:a@example.org") and safe_link("/runs/x")
    assert not safe_link("javascript:alert(1)") and not safe_link("ftp://example.org") and not safe_link("data:,x")
    # An image is a link to it, never loaded; its alt text is escaped.
    assert str(markdown("![a <b>](https://example.org/i.png)")) == (
        '<p><a class="image-link" href="https://example.org/i.png" rel="nofollow noreferrer">'
        "image: a &lt;b&gt;</a></p>\n"
    )


def test_events_timeline_shows_every_event_in_conversation_order(client):
    page = client.get(f"/runs/{MARKDOWN_RUN}").text
    timeline = page[page.find('<details class="events" id="events">') :]
    kinds = re.findall(r'<li class="event" id="event-\d+" data-kind="([a-z_]+)" data-message="(\d+)"', timeline)
    assert kinds == [
        ("window", "2"),
        ("context", "4"),
        ("change", "5"),  # recorded after the injection, but it is about message 5
        ("injection", "6"),
        ("near_loop", "7"),
        ("limits", "7"),
    ]
    escaped_summary = SUMMARY.replace("<", "&lt;").replace(">", "&gt;")
    assert f'<div class="summary-text">{escaped_summary}</div>' in timeline  # the summary's whole text, escaped
    assert '<a href="#m4">before message 4</a>' in timeline and '<a href="#m7">after message 7</a>' in timeline
    assert "<dt>similarity</dt><dd>0.91</dd>" in timeline
    assert "system You are &lt;b&gt;terse&lt;/b&gt;." in timeline
    assert 'href="#events" id="events-link">events (6)</a>' in page
    # Each message names the events at it, linking to them in the timeline.
    flagged = '▸ near_loop <span class="flag">flagged live</span></a>'
    assert re.search(r'id="m7" .*?<a class="event-mark" href="#event-5"[^>]*>' + re.escape(flagged), page, re.S)
    assert re.search(r'id="m4" .*?<a class="event-mark" href="#event-2"[^>]*>▸ context</a>', page, re.S)
    # A run without events has no timeline.
    assert 'id="events"' not in client.get(f"/runs/{HOSTILE_MD_RUN}").text


def test_lineage_parent_fork_point_forks_and_changes(client):
    parent = client.get(f"/runs/{MARKDOWN_RUN}").text
    assert 'id="lineage-parent"' not in parent
    assert f'<a class="fork" href="/runs/{FORK_RUN}">{FORK_RUN}</a> at message 4' in parent
    # [[changes]]: when, who, what, escaped.
    assert re.search(
        r'from message <a href="#m5">5</a>, bob: temperature <span class="value">1.3</span>, '
        r'system <span class="value">&#34;You are &lt;b&gt;terse&lt;/b&gt;.&#34;</span>',
        parent,
    )

    fork = client.get(f"/runs/{FORK_RUN}").text
    assert f'<a href="/runs/{MARKDOWN_RUN}?message=4">{MARKDOWN_RUN}</a> at message 4' in fork
    assert f'<a class="fork" href="/runs/{GRANDCHILD_RUN}">{GRANDCHILD_RUN}</a> at message 5' in fork
    assert 'id="lineage-chain"' not in fork and 'id="changes"' not in fork

    grandchild = client.get(f"/runs/{GRANDCHILD_RUN}").text
    assert f'<a href="/runs/{FORK_RUN}?message=5">{FORK_RUN}</a> at message 5' in grandchild
    chain = re.search(r'id="lineage-chain">(.*?)</span>', grandchild, re.S)
    assert chain and re.findall(r'href="/runs/([^"]+)"', chain.group(1)) == [MARKDOWN_RUN, FORK_RUN]
    assert "@4 → " in chain.group(1) and "@5 → this run" in chain.group(1)
    assert 'id="lineage-forks"' not in grandchild


def test_describe_event():
    summary = describe_event(
        {"kind": "context", "message_index": 4, "detail": "messages 1–2 summarized", "data": {"summary": "S"}}
    )
    assert summary.before and summary.where == "before message 4" and summary.summary == "S"
    assert summary.lines() == ["▸ context: messages 1–2 summarized", "  summary: S"]
    loop = describe_event(
        {"kind": "loop", "message_index": 9, "detail": "period 2", "data": {"period": 2, "cycles": [1, 2], "x": 0.5}}
    )
    assert not loop.before and loop.where == "after message 9" and loop.facts == [("period", "2"), ("x", "0.5")]
    odd = describe_event({"kind": "mystery", "message_index": None, "detail": None, "data": None})
    assert odd.where == "" and odd.lines() == ["▸ mystery: "]
    ordered = describe_events(
        [
            {"kind": "limits", "message_index": None, "detail": "a"},
            {"kind": "loop", "message_index": 3, "detail": "b"},
            {"kind": "injection", "message_index": 3, "detail": "c"},
            {"kind": "context", "message_index": 2, "detail": "d"},
        ]
    )
    assert [e.detail for e in ordered] == ["d", "c", "b", "a"]
