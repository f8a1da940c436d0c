"""The HTML export: one self-contained page of a run, nothing fetched, model output as text."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest

from duologue import api
from duologue.exports import run_formats

from .sample import HOSTILE, build_store, invoke


class Page(HTMLParser):
    """Every tag with its attributes, and the text of <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


@pytest.fixture
def exported(tmp_path, scripted_models):
    db, ids = build_store(tmp_path, scripted_models)
    out = tmp_path / "run.html"
    result = invoke("export", ids[1], "--format", "html", "-o", str(out), "--db", str(db))
    assert f"wrote {out}" in result.stderr
    return db, ids[1], out.read_text(encoding="utf-8")


def test_nothing_is_fetched_and_nothing_runs(exported):
    db, run_id, html = exported
    page = parse(html)
    names = [t for t, _ in page.tags]
    assert "script" not in names and "link" in names  # the one <link> is the empty data: favicon
    assert "iframe" not in names and "object" not in names and "form" not in names
    for tag, attrs in page.tags:
        for attr in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(attr)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, attr, value[:80])
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)  # no event handler attribute at all
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|/)""", html)
    assert "url(" not in page.style and "@import" not in page.style
    # The policy forbids every script and lets in only this stylesheet (by its hash) and data: images.
    (csp,) = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(page.style.encode()).digest()).decode()
    assert csp.startswith("default-src 'none';") and "script-src" not in csp and "unsafe" not in csp
    assert f"style-src 'sha256-{digest}'" in csp and "img-src data:;" in csp
    # The four plots, inlined as PNGs.
    images = [a["src"] for t, a in page.tags if t == "img"]
    assert len(images) == 4
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_output_is_escaped_text(exported):
    db, run_id, html = exported
    for text in HOSTILE[:3]:
        assert text not in html  # never as markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<svg" not in html and "</article><svg" not in html
    run = api.load_run(run_id, db=db)
    assert f"<h1>{run.title}</h1>" in html and f"<code>{run_id}</code>" in html
    # Every message is on the page, with its anchor.
    for m in run.messages:
        assert f'id="m{m.index}"' in html


def test_html_is_a_run_format_and_the_viewer_serves_it(exported):
    db, run_id, html = exported
    assert "html" in run_formats() and run_formats()["html"].suffix == "html"
    assert "html " in invoke("export", "--formats").stdout
    # The same page through the API and the viewer's download link (the plots' PNGs byte for byte too).
    assert api.export_run(run_id, "html", db=db) == html
    from starlette.testclient import TestClient

    from duologue.web import create_app

    with TestClient(create_app(db)) as client:
        page = client.get(f"/runs/{run_id}")
        assert f'href="/runs/{run_id}/download/html"' in page.text
        download = client.get(f"/runs/{run_id}/download/html")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/html")
    assert download.text == html
