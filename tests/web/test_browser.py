"""The viewer in real headless Chromium: the runs list, a run, hostile messages, live updates, downloads.

Also writes docs/screenshots/, so a reader can see the viewer without running it.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from duologue.records import Message
from duologue.store import Store
from helpers import REPO, cli_env

from .conftest import wait_until
from .sample import HOSTILE, HOSTILE_RUN, LIVE_RUN, LOOP_RUN, T0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCREENSHOTS = REPO / "docs" / "screenshots"
PLOTS_LOADED = "() => [...document.querySelectorAll('.plots img')].every(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture
def page_without_csp(browser):
    """A page that ignores the viewer's Content Security Policy, so escaping alone must keep it safe."""
    context = browser.new_context(bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def rows(page):
    return page.locator("table.runs tbody tr")


def test_runs_list_filter_then_open_a_run_with_its_loop(page, viewer_url):
    page.goto(viewer_url + "/")
    expect(rows(page)).to_have_count(9)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "runs.png"), full_page=True)

    # Picking a filter applies it (viewer.js submits the form).
    page.select_option("select[name=participant]", "mallory")
    page.wait_for_url("**/?participant=mallory")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text(HOSTILE_RUN)

    page.goto(viewer_url + "/")
    page.select_option("select[name=looped]", "yes")
    page.wait_for_url("**looped=yes**")
    expect(rows(page)).to_have_count(2)
    page.get_by_role("link", name="messages").click()
    page.wait_for_url("**sort=messages**")
    expect(page.locator("#run-count")).to_have_text("2 runs, showing 1–2")
    expect(rows(page).first).to_contain_text(LOOP_RUN)

    rows(page).first.get_by_role("link", name=LOOP_RUN).click()
    page.wait_for_url(f"**/runs/{LOOP_RUN}")
    onset = page.locator("#loop-onset")
    expect(onset).to_have_text("loop onset: period 2 since message 6, 41 cycles (self-repetition)")
    # The onset marker sits right before the loop's first message.
    assert page.locator("#loop-onset + article").get_attribute("id") == "m6"
    tail = page.locator("#loop-tail > summary")
    expect(tail).to_contain_text("… repeated 40 times")
    expect(page.locator("#m50")).to_be_hidden()
    wait_until(lambda: page.evaluate(PLOTS_LOADED), what="the plots")
    page.screenshot(path=str(SCREENSHOTS / "run.png"), full_page=True)

    tail.click()
    expect(page.locator("#m50")).to_be_visible()
    expect(page.locator("#m50 > .text")).to_have_text("Goodbye, dear friend. [END]")

    # Metadata on demand: hidden until asked for.
    meta = page.locator("#m3 details.meta")
    expect(meta.locator("dl")).to_be_hidden()
    meta.locator("summary").click()
    expect(meta.locator("dl")).to_contain_text("attempts2")
    expect(meta.locator("dl")).to_contain_text("latency1.5 s")
    expect(meta.locator("dl")).to_contain_text("first token0.125 s")


def test_hostile_messages_are_text_and_run_nothing(page_without_csp, viewer_url):
    page = page_without_csp
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{viewer_url}/runs/{HOSTILE_RUN}")
    page.click("#toggle-meta")
    page.locator("details.reasoning summary").click()
    page.locator("#m4 > .text").click()  # the would-be javascript: links

    assert page.evaluate("window.__pwned") is None
    assert page.title() == "mallory ↔ bob · duologue" and not dialogs
    # Shown as Markdown (each a paragraph of text), and, exactly, as the raw text.
    texts = page.locator("#chat .msg > .text").all_text_contents()
    assert [t.strip() for t in texts] == ["", *HOSTILE]
    assert page.locator("#chat .msg > .raw").all_text_contents() == [" ", *HOSTILE]
    for i in range(2, len(HOSTILE) + 2):
        expect(page.locator(f"#m{i} > .text")).to_be_visible()
    expect(page.locator("details.reasoning .text")).to_have_text('<script>document.title = "pwned"</script>thinking')
    assert page.locator("#chat img, #chat svg, #chat script, #chat a[href^='javascript']").count() == 0


def test_live_page_appends_messages_and_reloads_when_the_run_ends(page, viewer_url, sample_db):
    page.goto(f"{viewer_url}/runs/{LIVE_RUN}")
    expect(page.locator("#status")).to_have_text("● live")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    with Store(sample_db) as store:
        store.add_message(LIVE_RUN, Message(index=4, speaker="carol", content='<img src=x onerror="window.__pwned=1">'))
        expect(page.locator("#m4 > .text")).to_have_text('<img src=x onerror="window.__pwned=1">')
        expect(page.locator("#message-count")).to_have_text("4")
        assert page.evaluate("window.__sameDocument") is True
        assert page.locator("#m4").get_attribute("class") == "msg right c1"
        store.add_message(LIVE_RUN, Message(index=5, speaker="alice", content="and one more"))
        expect(page.locator("#m5 > .text")).to_have_text("and one more")
        store.finish_run(
            LIVE_RUN, status="finished", stop_reason="max_messages", stop_detail=None, ended_at=T0 + timedelta(hours=7)
        )
    expect(page.locator("#status")).to_have_text("finished")  # after the reload
    assert page.evaluate("window.__sameDocument") is None and page.evaluate("window.__pwned") is None
    assert page.locator("#chat .msg").count() == 5


def test_downloaded_markdown_is_the_export(page, viewer_url, sample_db):
    page.goto(f"{viewer_url}/runs/{LOOP_RUN}")
    with page.expect_download() as info:
        page.click("#download-md")
    download = info.value
    assert download.suggested_filename == f"{LOOP_RUN}.md"
    exported = subprocess.run(
        [sys.executable, "-m", "duologue", "export", LOOP_RUN, "--format", "md", "--db", str(sample_db)],
        capture_output=True,
        env=cli_env(),
        check=True,
    ).stdout
    assert Path(download.path()).read_bytes() == exported


@pytest.fixture
def theme_url(tmp_path: Path):
    from .conftest import running_viewer
    from .themes_sample import build_theme_store

    with running_viewer(build_theme_store(tmp_path / "runs" / "duologue.db")) as url:
        yield url


def test_theme_strip_and_attractor_map(page, page_without_csp, theme_url):
    from .themes_sample import DRIFT, DRIFT_RUN, EXPERIMENT, HOSTILE_LABEL, HOSTILE_THEME_RUN

    page.goto(f"{theme_url}/runs/{DRIFT_RUN}")
    cells = page.locator("#theme-strip .cell")
    expect(page.locator("#theme-strip")).to_be_visible()
    expect(cells).to_have_count(len(DRIFT))
    assert all(box["width"] > 0 and box["height"] > 0 for box in (c.bounding_box() for c in cells.all()))
    # Coloured by the stylesheet (the CSP allows no inline style): gratitude is not the colour of "none".
    colour = "(e) => getComputedStyle(e).backgroundColor"
    assert cells.nth(19).evaluate(colour) != cells.nth(0).evaluate(colour) != "rgba(0, 0, 0, 0)"
    expect(cells.nth(8)).to_have_attribute("title", "message 9: gratitude · topic: performativity")
    expect(page.locator("#strip-entry")).to_have_text("▲ entered spiritual bliss at message 9")
    expect(page.locator("#m9 .badge")).to_have_text("gratitude")  # a face of spiritual bliss
    expect(page.locator("#m20 .badge")).to_have_text("stillness/presence")  # another
    # A cell leads to its message, below the strip (which stays on screen).
    cells.nth(8).click()
    page.wait_for_url("**#m9")
    expect(page.locator("#theme-strip")).to_be_in_viewport()
    expect(page.locator("#m9")).to_be_in_viewport()
    page.goto(f"{theme_url}/runs/{DRIFT_RUN}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-themes.png"), full_page=True)

    page.goto(f"{theme_url}/experiments/{EXPERIMENT}")
    expect(page.locator("#attractor-map table.attractors")).to_have_count(2)
    wait_until(lambda: page.evaluate(PLOTS_LOADED), what="the plots")
    page.locator("#attractor-map").screenshot(path=str(SCREENSHOTS / "attractor-map.png"))

    # A theme label written as markup in a user's theme file is text, even without the CSP.
    hostile = page_without_csp
    hostile.goto(f"{theme_url}/runs/{HOSTILE_THEME_RUN}")
    expect(hostile.locator("#theme-strip .cell")).to_have_count(len(DRIFT))
    expect(hostile.locator("#strip-entry")).to_have_text(f"▲ entered {HOSTILE_LABEL} at message 9")
    expect(hostile.locator("#attractor")).to_have_text(f"entered {HOSTILE_LABEL} at message 9")
    expect(hostile.locator("#m9 .badge")).to_have_text(HOSTILE_LABEL)
    assert HOSTILE_LABEL in hostile.locator("#theme-legend").inner_text()
    assert hostile.evaluate("window.__pwned") is None and "pwned" not in hostile.title()
    assert hostile.locator("#themes script, #themes b, #chat script, #semantic-summary b").count() == 0


@pytest.fixture
def history_url(tmp_path: Path):
    from .conftest import running_viewer
    from .history_sample import build_history_store

    with running_viewer(build_history_store(tmp_path / "runs" / "duologue.db")) as url:
        yield url


def test_markdown_raw_text_events_and_lineage(page, history_url):
    from .history_sample import FORK_RUN, MARKDOWN, MARKDOWN_RUN, SUMMARY

    page.goto(f"{history_url}/runs/{MARKDOWN_RUN}")
    # Markdown as elements: a list, emphasis, a code block, a table, a safe link.
    items = page.locator("#m3 > .text ul > li")
    expect(items).to_have_count(3)
    expect(items.first.locator("strong")).to_have_text("tomatoes")
    expect(page.locator("#m2 > .text em")).to_have_text("small")
    expect(page.locator("#m3 > .text pre > code")).to_have_text("if soil.dry():\n    water(litres=2)\n")
    expect(page.locator("#m4 > .text table td").first).to_have_text("tomatoes")
    expect(page.locator("#m4 > .text a")).to_have_attribute("href", "https://example.org/almanac")
    expect(page.locator("#m3 > .raw")).to_be_hidden()

    # Raw text on demand: the exact characters, for every message; and back.
    toggle = page.locator("#toggle-raw")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#m3 > .raw")).to_be_visible()
    expect(page.locator("#m3 > .text")).to_be_hidden()
    assert page.locator("#m3 > .raw").text_content() == MARKDOWN[2]
    assert page.locator("#m3 > .raw ul, #m3 > .raw em").count() == 0
    toggle.click()
    expect(page.locator("#m3 > .text ul")).to_be_visible()
    expect(page.locator("#m3 > .raw")).to_be_hidden()

    # The events, folded until asked for; the link opens them.
    events = page.locator("#events")
    expect(events.locator("ol.timeline")).to_be_hidden()
    page.click("#events-link")
    expect(events.locator("ol.timeline")).to_be_visible()
    expect(events.locator("li.event")).to_have_count(6)
    context = events.locator("li.event[data-kind=context]")
    expect(context.locator(".summary-text")).to_have_text(SUMMARY)  # markup in a summary is text
    expect(context.locator(".where")).to_have_text("before message 4")
    change = 'from message 5, bob: temperature 1.3, system "You are <b>terse</b>."'
    expect(page.locator("#changes")).to_contain_text(change)
    expect(events.locator("summary")).to_be_in_viewport()  # not under the sticky theme strip
    page.evaluate("window.scrollTo(0, 0)")  # the strip where it starts, for the screenshot
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-markdown-events.png"), full_page=True)

    # From a message to its event in the timeline.
    page.goto(f"{history_url}/runs/{MARKDOWN_RUN}")
    page.locator("#m4 a.event-mark").click()
    page.wait_for_url("**#event-2")
    expect(context).to_be_in_viewport()

    # Lineage: to a fork, and from it back to its parent at the fork point.
    page.locator("#lineage-forks a.fork").click()
    page.wait_for_url(f"**/runs/{FORK_RUN}")
    expect(page.locator("#lineage-parent")).to_contain_text(f"forked from {MARKDOWN_RUN} at message 4")
    page.locator("#lineage-parent a").click()
    page.wait_for_url(f"**/runs/{MARKDOWN_RUN}?page=1#m4")  # ?message=4 goes to the page holding it
    expect(page.locator("#m4")).to_be_in_viewport()


def test_hostile_markdown_is_inert(page_without_csp, history_url):
    from .history_sample import HOSTILE_MD, HOSTILE_MD_RUN

    page = page_without_csp
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{history_url}/runs/{HOSTILE_MD_RUN}")
    # Markdown around the payloads still renders...
    expect(page.locator("#m2 > .text em")).to_have_text("emphasis")
    expect(page.locator("#m3 > .text strong")).to_have_text("bold")
    expect(page.locator("#m4 > .text li")).to_have_count(2)
    expect(page.locator("#m6 > .text pre code")).to_have_text("<script>alert(1)</script>\n")
    # ...and the payloads are text: visible, clickable, running nothing.
    expect(page.locator("#m2 > .text")).to_contain_text("[click for a prize](javascript:alert(1))")
    expect(page.locator("#m3 > .text")).to_contain_text("<img src=x onerror=alert(1)>")
    expect(page.locator("#m4 > .text li").first).to_have_text("a list item <script>alert(1)</script>")
    expect(page.locator("#m5 > .text")).to_contain_text("<a href='javascript:alert(1)'>a tag</a>")
    for i in range(2, 2 + len(HOSTILE_MD)):
        page.locator(f"#m{i} > .text").click()
    page.click("#toggle-raw")
    assert page.locator("#chat .msg > .raw").all_text_contents() == [" ", *HOSTILE_MD]
    assert not dialogs
    assert page.locator("#chat img, #chat script, #chat svg, #chat iframe").count() == 0
    hrefs = page.eval_on_selector_all("#chat a[href]", "as => as.map(a => a.getAttribute('href'))")
    assert all(h.startswith(("#m", "https:", "http:", "mailto:")) for h in hrefs), hrefs
