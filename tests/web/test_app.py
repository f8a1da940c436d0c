"""The viewer's pages and endpoints through Starlette's TestClient (no server, no browser)."""

from __future__ import annotations

import html
import json
import os
import re
import threading
import time
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from duologue.api import export_run
from duologue.errors import DuologueError
from duologue.records import Message
from duologue.store import ExactLoopRecord, Store
from duologue.web import create_app
from duologue.web.chat import chat_blocks, repeats_label
from duologue.web.queries import RunQuery

from .sample import EXPERIMENT, HOSTILE, HOSTILE_RUN, LIVE_RUN, LOOP_RUN, T0


@pytest.fixture
def client(sample_db):
    with TestClient(create_app(sample_db, poll_seconds=0.05)) as client:
        yield client


def run_ids(page_html: str) -> list[str]:
    return re.findall(r'class="run-link" href="/runs/([^"]+)"', page_html)


def test_runs_page_lists_filters_sorts_and_pages(client, sample_db):
    r = client.get("/")
    assert r.status_code == 200
    assert run_ids(r.text)[:2] == [LIVE_RUN, LOOP_RUN]  # newest first
    assert "9 runs" in r.text

    assert run_ids(client.get("/?participant=mallory").text) == [HOSTILE_RUN]
    assert set(run_ids(client.get("/?looped=yes").text)) == {LOOP_RUN, "20260314-090000-200004"}
    assert run_ids(client.get("/?stop=running").text) == [LIVE_RUN]
    assert len(run_ids(client.get(f"/?experiment={EXPERIMENT}").text)) == 3
    by_model = run_ids(client.get("/?model=anthropic/claude-sonnet-4-5").text)
    assert set(by_model) == {LIVE_RUN, "20260314-090000-200001"}
    assert run_ids(client.get("/?sort=messages&dir=desc").text)[0] == LOOP_RUN
    # Runs without a loop sort last either way.
    assert run_ids(client.get("/?sort=period&dir=asc").text)[-1] not in (LOOP_RUN, "20260314-090000-200004")
    # Unknown sort keys and pages out of range fall back instead of failing.
    assert client.get("/?sort=evil;DROP&page=99&looped=maybe").status_code == 200

    with Store(sample_db) as store:
        page2 = store.query_runs(RunQuery(page=2), per_page=4)
        assert (page2.total, page2.pages, page2.first, page2.last) == (9, 3, 5, 8)


def test_run_page_marks_the_loop_and_folds_its_tail(client):
    r = client.get(f"/runs/{LOOP_RUN}")
    assert r.status_code == 200
    assert 'id="loop-onset"' in r.text and "loop onset: period 2 since message 6" in r.text
    assert "… repeated 40 times" in r.text and "messages 8–87" in r.text
    # Every message is on the page (the folded ones inside the <details>), in order.
    assert re.findall(r'data-index="(\d+)"', r.text) == [str(i) for i in range(1, 88)]
    assert 'class="msg left c0' in r.text and 'class="msg right c1' in r.text
    assert "data-events" not in r.text  # finished: no live stream
    for name in ("words", "novelty", "lag-similarity", "similarity"):
        plot = client.get(f"/runs/{LOOP_RUN}/plots/{name}")
        assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    assert client.get(f"/runs/{LOOP_RUN}/plots/nope").status_code == 404


def test_unknown_and_ambiguous_run_ids_are_404(client):
    ambiguous = client.get(f"/runs/{LOOP_RUN[:-1]}")
    assert ambiguous.status_code == 404 and "ambiguous" in ambiguous.text
    missing = client.get("/runs/<script>nope")
    assert missing.status_code == 404 and "&lt;script&gt;nope" in missing.text and "<script>nope" not in missing.text
    assert client.get("/experiments/nope").status_code == 404


def test_hostile_markup_is_escaped_and_policed(client):
    r = client.get(f"/runs/{HOSTILE_RUN}")
    for text in HOSTILE:
        assert html.escape(text, quote=False) in r.text.replace("&#39;", "'").replace("&#34;", '"')
    assert "<script>window" not in r.text and '<img src="x"' not in r.text and "<svg" not in r.text
    assert 'href="javascript' not in r.text and "{{ 7*7 }}" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_downloads_are_the_export(client, sample_db):
    md = client.get(f"/runs/{LOOP_RUN}/download/md")
    assert md.status_code == 200 and md.headers["content-disposition"] == f'attachment; filename="{LOOP_RUN}.md"'
    assert md.content == export_run(LOOP_RUN, "md", db=sample_db).encode("utf-8")
    js = client.get(f"/runs/{LOOP_RUN}/download/json")
    assert js.content == export_run(LOOP_RUN, "json", db=sample_db).encode("utf-8")
    assert json.loads(js.content)["analysis"]["exact_loop"]["period"] == 2
    assert client.get(f"/runs/{LOOP_RUN}/download/pdf").status_code == 404


def test_live_run_streams_new_messages_then_ends(client, sample_db):
    page = client.get(f"/runs/{LIVE_RUN}")
    assert f'data-events="/runs/{LIVE_RUN}/events?after=3"' in page.text

    def generate():  # another process's engine, as far as the viewer can tell
        with Store(sample_db) as store:
            for i in (4, 5):
                time.sleep(0.2)
                store.add_message(
                    LIVE_RUN,
                    Message(index=i, speaker="carol" if i % 2 == 0 else "alice", content=f"<b>message {i}</b>"),
                )
            store.finish_run(
                LIVE_RUN,
                status="finished",
                stop_reason="max_messages",
                stop_detail=None,
                ended_at=T0 + timedelta(hours=7),
            )

    writer = threading.Thread(target=generate)
    writer.start()
    body = client.get(f"/runs/{LIVE_RUN}/events?after=3").text
    writer.join()
    events = [
        dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        for block in body.split("\n\n")
        if block.strip()
    ]
    messages = [e for e in events if e.get("event") == "message"]
    assert [e["id"] for e in messages] == ["4", "5"]
    fragment = json.loads(messages[0]["data"])["html"]
    assert 'id="m4"' in fragment and "&lt;b&gt;message 4&lt;/b&gt;" in fragment and 'class="msg right c1' in fragment
    assert events[-1] == {"event": "end", "data": '{"status": "finished"}'}
    # A reconnect resumes after the last event it saw.
    resumed = client.get(f"/runs/{LIVE_RUN}/events", headers={"last-event-id": "4"}).text
    assert "id: 5\n" in resumed and "id: 4\n" not in resumed


def test_experiment_page_summarises_its_runs(client):
    r = client.get(f"/experiments/{EXPERIMENT}")
    assert r.status_code == 200 and "<h1>greetings</h1>" in r.text
    assert len(run_ids(r.text)) == 3
    # The report of `duologue report`: a table per pairing with loop rates, and inline survival curves.
    assert "<h2>By pairing</h2>" in r.text and "alice ↔ bob" in r.text and "1 (33%)" in r.text
    assert 'src="data:image/png;base64,' in r.text
    listing = client.get("/experiments")
    assert f'href="/experiments/{EXPERIMENT}"' in listing.text


def test_experiment_report_hook(sample_db):
    def report(store, experiment):
        return f"<p id='rich'>{store.conn.execute('SELECT COUNT(*) FROM runs').fetchone()[0]} runs in the store</p>"

    with TestClient(create_app(sample_db, experiment_report=report)) as client:
        assert "<p id='rich'>9 runs in the store</p>" in client.get(f"/experiments/{EXPERIMENT}").text


def test_no_store_is_one_line_error(tmp_path):
    with pytest.raises(DuologueError, match="no duologue store"):
        create_app(tmp_path / "missing.db")


def test_chat_blocks_fold_the_repeats():
    messages = [Message(index=i, speaker="ab"[(i - 1) % 2], content=str(i)) for i in range(1, 12)]
    loop = ExactLoopRecord(period=2, onset=3, first_repeat=5, last=10, kind="self-repetition")
    blocks = chat_blocks(messages, loop)
    assert [b.kind for b in blocks] == ["message", "message", "onset", "message", "message", "repeats", "message"]
    assert [m.index for m in blocks[5].messages] == [5, 6, 7, 8, 9, 10]
    assert blocks[5].label == "… repeated 3 times"
    assert repeats_label(2, 5) == "… repeated 2 times (and 1 message more)"
    assert repeats_label(3, 3) == "… repeated 1 time"


def test_a_running_run_whose_process_is_gone_shows_and_filters_as_killed(client, sample_db):
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(gone.stdout)  # that process has exited
    with Store(sample_db) as store:
        store.conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead_pid, LIVE_RUN))
        store.conn.commit()
    assert run_ids(client.get("/?stop=running").text) == []
    killed = client.get("/?stop=killed").text
    assert run_ids(killed) == [LIVE_RUN] and "killed" in killed
    page = client.get(f"/runs/{LIVE_RUN}").text
    assert '<dd id="status">killed</dd>' in page
    with Store(sample_db) as store:  # and back: a live process (this one) holds it again
        store.conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (os.getpid(), LIVE_RUN))
        store.conn.commit()
    assert run_ids(client.get("/?stop=running").text) == [LIVE_RUN]
    assert run_ids(client.get("/?stop=killed").text) == []


def test_runs_page_searches_message_text(client):
    r = client.get("/?q=folding+river")
    assert r.status_code == 200
    ids = set(run_ids(r.text))
    assert LOOP_RUN in ids and HOSTILE_RUN not in ids
    hits = r.text.split('id="search-hits"', 1)[1].split("</section>", 1)[0]
    assert f'href="/runs/{LOOP_RUN}?message=4"' in hits  # to the message, on whichever page holds it
    assert "A <mark>river</mark> that keeps <mark>folding</mark> back" in hits
    assert 'value="folding river"' in r.text  # the box keeps what was asked
    assert "q=folding+river" in client.get("/?q=folding+river&sort=messages&dir=desc").text  # sorting keeps it
    nothing = client.get("/?q=zebra+unicorn")
    assert "0 runs" in nothing.text and run_ids(nothing.text) == []


def test_search_snippets_are_escaped(client):
    hits = client.get("/?q=onerror").text.split('id="search-hits"', 1)[1].split("</section>", 1)[0]
    assert HOSTILE_RUN in hits
    assert "<img" not in hits and "&lt;img" in hits
    assert client.get("/?q=%22%28%2A").status_code == 200  # FTS5 syntax typed by a user is only words
