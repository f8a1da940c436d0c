"""The HTML export opened from disk (file://) in real headless Chromium: hostile messages stay text."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from web.conftest import browser  # noqa: F401  (the fixture: Debian's Chromium, launched as the viewer's tests do)

from .sample import HOSTILE, build_store, invoke

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PLOTS_LOADED = "() => [...document.querySelectorAll('.plots img')].every(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture
def html_file(tmp_path, scripted_models):
    db, ids = build_store(tmp_path, scripted_models)
    out = tmp_path / "run.html"
    invoke("export", ids[1], "--format", "html", "-o", str(out), "--db", str(db))
    return out


@pytest.mark.parametrize("obey_csp", [True, False], ids=["with-its-csp", "escaping-alone"])
def test_the_file_shows_hostile_messages_as_text_and_runs_nothing(browser, html_file, obey_csp):  # noqa: F811
    # Without the page's own policy, escaping alone must keep it safe.
    context = browser.new_context(bypass_csp=not obey_csp, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    requests: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console.append(m.text))
    try:
        page.goto(html_file.as_uri())
        texts = page.locator("#chat .msg > .text").all_inner_texts()
        # The replies cycle through the hostile messages; each is shown exactly as written.
        assert texts[0] == "hello there"
        assert texts[1:] == [HOSTILE[i % len(HOSTILE)] for i in range(len(texts) - 1)]
        expect(page.locator("#m2 > .text")).to_have_text("<script>alert(1)</script>")
        expect(page.locator("#m3 > .text")).to_have_text("<img src=x onerror=alert(1)>")
        assert page.locator("#chat script, #chat img, #chat svg, a[href^='javascript:']").count() == 0
        assert page.locator("script").count() == 0
        # Clicking the text of the link does nothing either (it is text, not a link).
        page.locator("#m4 > .text").click()
        page.locator("#m5 > .text").click()
        # The stylesheet applied (its hash is in the policy) and the inlined plots drew.
        assert page.evaluate("getComputedStyle(document.querySelector('header.top')).display") == "flex"
        assert page.evaluate(PLOTS_LOADED)
        assert page.evaluate("document.querySelectorAll('.plots img').length") == 4
        assert not dialogs, dialogs
        assert page.title() == "a ↔ b · duologue"
        # Only the file itself was requested: no network, no other file.
        assert [u for u in requests if not u.startswith("data:")] == [html_file.as_uri()], requests
        assert not [m for m in console if "Content Security Policy" in m], console
    finally:
        context.close()
