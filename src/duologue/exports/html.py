"""HTML: one self-contained page of a run, to attach or publish.

It is the viewer's run page (web/templates/run.html, rendered by the viewer's
own Jinja environment, autoescaped) with everything inside the file: the
stylesheet in a <style> element, the four plots as data: URI PNGs. Nothing is
fetched: no script, no external URL, no link back to a server (the viewer's
navigation, download buttons and the links to other runs are left out or shown
as text). A Content-Security-Policy in the page itself allows only that one
stylesheet (by its hash) and data: images, so even markup that got past the
escaping could run no script and load nothing.

Needs the viewer's libraries (the `viewer` extra: Jinja2, Starlette).
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DuologueError
from ..records import Run
from . import RunFormat


def _viewer() -> Any:
    try:
        from ..web import app
    except ImportError as err:
        raise DuologueError(
            f"the HTML export needs the viewer's libraries ({err.name} is missing): pip install 'duologue[viewer]'"
        ) from None
    return app


def csp(css: str) -> str:
    """The page's policy: nothing but its own stylesheet and data: images."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; base-uri 'none'; form-action 'none'"


def plot_uris(analysis: Any, contents: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """The viewer's plots of an analysis as data: URIs of PNGs, by name."""
    from ..analysis import write_plots

    with tempfile.TemporaryDirectory(prefix="duologue-html-") as folder:
        write_plots(analysis, contents, Path(folder), "plot")
        return {
            name: "data:image/png;base64," + base64.b64encode((Path(folder) / f"plot-{name}.png").read_bytes()).decode()
            for name in names
        }


def render_html(run: Run, analysis: Mapping[str, Any] | None = None, events: Sequence[Mapping[str, Any]] = ()) -> str:
    """The page. The analysis is computed afresh from the messages with the run's own thresholds (the
    stored one is a summary; the page needs the per-message themes and the plots)."""
    app = _viewer()
    from markupsafe import Markup

    from ..analysis.stored import analyze_run
    from ..events import describe_events
    from ..verdict import theme_labels_for
    from ..web.chat import chat_blocks
    from ..web.paging import MessagePages
    from ..web.themes import theme_view

    css = (app.HERE / "static" / "viewer.css").read_text(encoding="utf-8")
    if "</style" in css.lower():  # the stylesheet is ours, but it goes inside <style> unescaped
        raise DuologueError("viewer.css cannot be inlined: it contains '</style'")
    labels, order = theme_labels_for(run.spec)
    loops = semantic = themes = None
    plots: dict[str, str] = {}
    if run.messages:
        a = analyze_run(run)
        loops, semantic, message_themes, found = app.run_summaries(a)
        themes = theme_view(semantic, message_themes, {**labels, **found}, order)
        plots = plot_uris(a, [m.content for m in run.messages], app.PLOTS)
    exact = loops.exact if loops else None
    context = {
        "db_name": "",
        "inline": {"css": Markup(css), "csp": csp(css), "plots": plots},
        "run": run,
        "live": False,  # a file is a snapshot: a running run shows as far as it got
        "exact": exact,
        "near": loops.near if loops else None,
        "themes": themes,
        "blocks": chat_blocks(run.messages, exact, themes.marks_at() if themes else None),
        "badges": themes.badges if themes else {},
        "judges": [],  # other labellers' labels live in the store, not in a file
        "seats": app.seats(run),
        "models": app.participant_models(run),
        "spec_json": json.dumps(run.spec, indent=2, ensure_ascii=False),
        "experiment": None,
        "plots": tuple(plots),
        # One page holding every message: each link to a message is an anchor on it.
        "pages": (pages := MessagePages(len(run.messages), 1, per_page=max(1, len(run.messages)))),
        "at": pages.href,
        "message_count": len(run.messages),
        **app.history_context(run, describe_events(events), None),
    }
    return app.make_templates().env.get_template("run.html").render(context)


FORMAT = RunFormat(
    name="html",
    suffix="html",
    media_type="text/html; charset=utf-8",
    description="one self-contained page: the viewer's run page with its plots, no scripts, nothing fetched",
    render=render_html,
)
