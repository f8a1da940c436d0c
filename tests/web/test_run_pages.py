"""A long run's page, a page of messages at a time, and plots drawn once per run and length."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import duologue.analysis
import duologue.analysis.stored
from duologue.records import Message
from duologue.store import Store
from duologue.web import create_app
from duologue.web.app import PLOTS
from duologue.web.paging import PAGE_MESSAGES, MessagePages

from .sample import T0, add_run

LONG = "20260314-120000-300001"  # 450 messages, a period-2 loop from message 301
UNANALYSED = "20260314-120000-300002"  # the same, imported: no stored analysis
LIVE = "20260314-120000-300003"  # 450 messages, still running
SHORT = "20260314-120000-300004"  # 30 messages: one page, as before


def long_contents(n: int = 450, loop_from: int = 301) -> list[str]:
    varied = [f"Message {i} wonders about river number {i * 7 % 13} and bridge {i}." for i in range(1, loop_from)]
    return [" ", *varied[1:], *(["Goodbye, friend.", "Farewell, and thanks."] * n)][:n]


@pytest.fixture
def long_db(tmp_path: Path) -> Path:
    db = tmp_path / "runs" / "duologue.db"
    names, models = ["alice", "bob"], ["local/smollm2", "local/smollm2"]
    with Store(db) as store:
        add_run(store, LONG, names, models, long_contents(), started=T0, stop_reason="loop")
        add_run(store, UNANALYSED, names, models, long_contents(), started=T0 + timedelta(hours=1), analyse=False)
        live = {"status": "running", "stop_reason": None}
        add_run(store, LIVE, names, models, long_contents(), started=T0 + timedelta(hours=2), **live)
        add_run(store, SHORT, names, models, long_contents(30), started=T0 + timedelta(hours=3))
    return db


@pytest.fixture
def client(long_db: Path, tmp_path: Path):
    with TestClient(create_app(long_db, plot_cache=tmp_path / "plots")) as client:
        yield client


def indices(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-index="(\d+)"', page)]


def test_a_long_run_is_shown_a_page_at_a_time(client):
    first = client.get(f"/runs/{LONG}").text
    assert indices(first) == list(range(1, PAGE_MESSAGES + 1))
    assert 'rel="next" href="?page=2"' in first and 'rel="prev"' not in first
    assert "messages 1–200 of 450 (page 1 of 3)" in first
    assert '<dd id="message-count">450</dd>' in first  # the run's count, not the page's

    second = client.get(f"/runs/{LONG}?page=2").text
    assert indices(second) == list(range(201, 401))
    assert 'rel="prev" href="?page=1"' in second and 'rel="next" href="?page=3"' in second

    last = client.get(f"/runs/{LONG}?page=3").text
    assert indices(last) == list(range(401, 451))  # the rest
    assert 'rel="next"' not in last and 'rel="prev" href="?page=2"' in last
    # Out of range or nonsense: the nearest page, never an error.
    assert indices(client.get(f"/runs/{LONG}?page=99").text) == list(range(401, 451))
    assert indices(client.get(f"/runs/{LONG}?page=x").text) == list(range(1, 201))


def test_links_by_message_number_go_to_the_page_that_holds_it(client):
    first = client.get(f"/runs/{LONG}").text
    # The theme strip has a cell for every message, on every page; each links to its page.
    assert 'href="#m7" data-message="7"' in first
    assert 'href="?page=2#m350" data-message="350"' in first
    # The loop starts on page 2: the head links there, and the marker is there, not on page 1.
    assert 'href="?page=2#loop-onset"' in first and 'id="loop-onset"' not in first
    second = client.get(f"/runs/{LONG}?page=2").text
    assert 'href="#loop-onset"' in second and 'id="loop-onset"' in second
    assert 'href="#m350" data-message="350"' in second and 'id="m350"' in second
    # The loop's repeats on this page are folded, as on a short run.
    assert 'id="loop-tail"' in second and "messages 303–400" in second

    jump = client.get(f"/runs/{LONG}?message=350", follow_redirects=False)
    assert jump.status_code == 303 and jump.headers["location"] == "?page=2#m350"
    assert client.get(f"/runs/{LONG}?message=9999", follow_redirects=False).status_code == 200  # no such message


def test_a_short_run_is_one_page_without_navigation(client):
    page = client.get(f"/runs/{SHORT}").text
    assert indices(page) == list(range(1, 31))
    assert "pages of messages" not in page and 'href="#m30"' in page


def test_a_live_run_opens_on_its_last_page_which_alone_follows_it(client):
    last = client.get(f"/runs/{LIVE}").text
    assert indices(last) == list(range(401, 451))
    assert f'data-events="/runs/{LIVE}/events?after=450"' in last
    first = client.get(f"/runs/{LIVE}?page=1").text
    assert indices(first) == list(range(1, 201)) and "data-events" not in first


def test_pages_arithmetic():
    pages = MessagePages.of(401, {"page": "2"})
    assert (pages.pages, pages.first, pages.last, pages.is_last) == (3, 201, 400, False)
    assert pages.href(200) == "?page=1#m200" and pages.href(201) == "#m201" and pages.href(401, "x") == "?page=3#x"
    assert MessagePages.of(0, {}).pages == 1 and not MessagePages.of(200, {}).paged
    assert MessagePages.of(401, {}, live=True).page == 3


class Calls:
    def __init__(self, target):
        self.target, self.n = target, 0

    def __call__(self, *args, **kwargs):
        self.n += 1
        return self.target(*args, **kwargs)


def test_plots_are_drawn_once_and_kept_across_viewers(long_db, tmp_path, monkeypatch):
    draws = Calls(duologue.analysis.write_plots)
    monkeypatch.setattr(duologue.analysis, "write_plots", draws)
    cache = tmp_path / "plots"
    with TestClient(create_app(long_db, plot_cache=cache)) as client:
        first = {name: client.get(f"/runs/{LONG}/plots/{name}").content for name in PLOTS}
        assert all(png.startswith(b"\x89PNG") for png in first.values())
        assert {name: client.get(f"/runs/{LONG}/plots/{name}").content for name in PLOTS} == first
    assert draws.n == 1
    # A new viewer over the same store (a restart) serves the kept files.
    with TestClient(create_app(long_db, plot_cache=cache)) as client:
        assert {name: client.get(f"/runs/{LONG}/plots/{name}").content for name in PLOTS} == first
    assert draws.n == 1
    # A run that grew is drawn again.
    with Store(long_db) as store:
        store.add_message(LONG, Message(index=451, speaker="alice", content="One more."))
    with TestClient(create_app(long_db, plot_cache=cache)) as client:
        assert client.get(f"/runs/{LONG}/plots/words").status_code == 200
    assert draws.n == 2


def test_an_unanalysed_run_is_analysed_once_for_its_pages_and_plots(client, monkeypatch):
    analyses = Calls(duologue.analysis.stored.analyze_run)
    monkeypatch.setattr(duologue.analysis.stored, "analyze_run", analyses)
    for path in ("", "?page=2", "", "/plots/words", "/plots/similarity"):
        assert client.get(f"/runs/{UNANALYSED}{path}").status_code == 200
    assert analyses.n == 1
    page = client.get(f"/runs/{UNANALYSED}?page=2").text
    assert 'id="loop-onset"' in page  # found by the analysis made on the fly


def test_the_default_plot_cache_is_beside_the_store(long_db):
    with TestClient(create_app(long_db)) as client:
        assert client.get(f"/runs/{SHORT}/plots/novelty").status_code == 200
    assert list((long_db.parent / "cache" / "plots").glob("*/plot-novelty.png"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_in_a_browser_a_strip_cell_opens_its_message_on_its_page(page, long_db):
    from playwright.sync_api import expect

    from .conftest import running_viewer

    with running_viewer(long_db) as url:
        page.goto(f"{url}/runs/{LONG}")
        expect(page.locator("#chat article.msg").first).to_have_id("m1")
        page.locator('#theme-strip a[data-message="350"]').click()
        page.wait_for_url(f"**/runs/{LONG}?page=2#m350")
        expect(page.locator("#m350")).to_be_attached()
        page.get_by_role("link", name="next ›").first.click()
        page.wait_for_url(f"**/runs/{LONG}?page=3")
        expect(page.locator("#chat article.msg").last).to_have_id("m450")
