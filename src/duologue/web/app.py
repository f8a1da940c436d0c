"""The viewer: a Starlette app over one store.

Pages are rendered on the server from Jinja2 templates with autoescaping on:
model output is untrusted and is only ever shown as escaped text, or as Markdown
rendered with every tag in it escaped and only http(s)/mailto links (markdown.py). A Content
Security Policy that allows the viewer's own script and nothing inline is a
second line of defence. The store is written by other processes (`duologue
run`, batches); the viewer only reads it, one connection per request, and
follows a live run by polling it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from ..costs import cost_cell, describe_cost, format_usd
from ..errors import DuologueError, RunNotFoundError, TranscriptFormatError
from ..events import EventDescription, Lineage, describe_events, format_value, lineage
from ..records import Run
from ..store import LoopSummary, MessageTheme, SemanticSummary, Store
from ..verdict import theme_labels_for, verdict_of
from .chat import Seat, chat_blocks, seat
from .markdown import markdown
from .paging import MessagePages, int_param
from .plots import PLOTS, RunFigures, plot_cache_for
from .queries import RUNNING, SORTS, ExperimentRow, RunQuery
from .report import experiment_report_html
from .themes import judge_views, theme_view

if TYPE_CHECKING:
    import uvicorn

    from ..analysis import Analysis

HERE = Path(__file__).parent
POLL_SECONDS = 0.5  # how often a live page's stream looks for new messages
KEEPALIVE_SECONDS = 15.0

# Only the viewer's own files; no inline script, so injected markup could not run even if it got through.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

ExperimentReport = Callable[[Store, ExperimentRow], "str | None"]
"""The hook for a richer experiment report (tables, survival curves): given the
store and the experiment, return HTML to show above the viewer's own summary,
or None. The HTML is inserted as is, so it must escape anything that came from
a model; images must be inline (data: URIs or SVG)."""


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (a plain ASGI middleware, so streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def local_time(value: datetime | str | None) -> str:
    """Local wall-clock time, as the CLI and the transcripts show it."""
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


SEARCH_HITS = 10  # message matches listed above the runs page when it is searched


@dataclass
class Viewer:
    """The app's state: where the store is, the templates, and a cache of rendered plots."""

    db: Path
    templates: Jinja2Templates
    plot_dir: Path
    experiment_report: ExperimentReport | None = None
    poll_seconds: float = POLL_SECONDS

    def __post_init__(self) -> None:
        self.figures = RunFigures(self.db, self.plot_dir)  # plots drawn once, analyses made on the fly
        self.closing = threading.Event()  # set when the server stops: live streams end instead of holding it up

    @contextmanager
    def store(self) -> Iterator[Store]:
        with Store(self.db, create=False) as store:
            yield store

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(
            request, name, {"db_name": self.db.name, **context}, status_code=status_code
        )

    # -- runs ------------------------------------------------------------------

    def runs(self, request: Request) -> Response:
        q = RunQuery.from_params(request.query_params)
        with self.store() as store:
            result = store.query_runs(q)
            choices = store.filter_choices()
            matches = None
            if q.text.strip(' *"') and q.page == 1:  # the best matching messages, above the runs that hold them
                matches = store.search_messages(q.text, experiment_id=q.experiment or None, limit=SEARCH_HITS)
        return self.page(
            request, "runs.html", q=q, result=result, choices=choices, base="/", running=RUNNING, matches=matches
        )

    def run(self, request: Request) -> Response:
        with self.store() as store:
            run = store.get_run(request.path_params["run_id"])
            loops = store.run_loops(run.id)
            semantic = store.run_semantic(run.id)
            message_themes = store.message_themes(run.id) if semantic else []
            experiment = store.get_experiment(run.experiment_id) if run.experiment_id else None
            events = describe_events(store.get_events(run.id))
            family = lineage(store, run)
            live = run.status == "running"
            labels, order = theme_labels_for(run.spec)  # the run's theme set's labels; its end states for colours
            judges = judge_views(store, run, labels, order) if not live and run.messages else []
        pages = MessagePages.of(len(run.messages), request.query_params, live)
        target = pages.redirect_for(request.query_params)
        if target:
            return RedirectResponse(target, status_code=303)
        if loops is None and not live and run.messages:
            # Imported runs, killed runs: analyse on the fly (once per run and length), store nothing.
            loops, semantic, message_themes, found = run_summaries(self.figures.analysis(run))
            labels = {**labels, **found}
        verdict = verdict_of(loops, semantic)  # what `show`, `ls`, `report` and the exports say of the run
        if semantic is not None:
            semantic = dataclasses.replace(semantic, end_state=verdict.end_state)
        themes = theme_view(semantic, message_themes, labels, order) if not live else None
        exact = loops.exact if loops else None
        shown = run.messages[pages.first - 1 : pages.last]  # messages are numbered 1..n
        return self.page(
            request,
            "run.html",
            run=run,
            live=live,
            pages=pages,
            at=pages.href,
            message_count=len(run.messages),
            exact=exact,
            near=loops.near if loops else None,
            themes=themes,
            judges=judges,
            blocks=chat_blocks(shown, exact, themes.marks_at() if themes else None),
            badges=themes.badges if themes else {},
            seats=seats(run),
            models=participant_models(run),
            spec_json=json.dumps(run.spec, indent=2, ensure_ascii=False),
            experiment=experiment,
            cost=describe_cost(run),
            plots=PLOTS if run.messages and not live else (),
            **history_context(run, events, family),
        )

    def download(self, request: Request) -> Response:
        from ..exports import run_formats

        export = run_formats().get(request.path_params["fmt"])
        if export is None:
            raise HTTPException(404, f"no export format '{request.path_params['fmt']}' ({', '.join(run_formats())})")
        with self.store() as store:
            run = store.get_run(request.path_params["run_id"])
            analysis, events = store.load_analysis(run.id), store.get_events(run.id)
        # The same renderers as `duologue export`, so the files are byte for byte the same.
        try:
            body = export.render(run, analysis, events)
        except TranscriptFormatError as err:
            return PlainTextResponse(f"this run cannot be written as {export.name} ({err}); download the JSON", 409)
        return Response(
            body.encode("utf-8"),
            media_type=export.media_type,
            headers={"content-disposition": f'attachment; filename="{_safe_name(run.id)}.{export.suffix}"'},
        )

    def plot(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PLOTS:
            raise HTTPException(404, f"no plot '{name}'")
        path = self.figures.plot(request.path_params["run_id"], name)
        return FileResponse(path, media_type="image/png")

    async def events(self, request: Request) -> Response:
        """Server-sent events for a live run: each new message as rendered HTML, then `end`."""
        run = await run_in_threadpool(self._run_head, request.path_params["run_id"])
        after = int_param(request.headers.get("last-event-id")) or int_param(request.query_params.get("after")) or 0
        template = self.templates.get_template("_message.html")

        def poll(store: Store, after: int) -> tuple[str, list[tuple[int, str]]]:
            # Status first: a run marks itself finished only after its last message is stored,
            # so messages read after a non-running status are all there is.
            progress = store.run_progress(run.id)
            if progress is None:  # deleted meanwhile
                return "deleted", []
            messages = store.get_messages(run.id, after=after) if progress.message_count > after else []
            return progress.status, [
                (m.index, template.render(m=m, seat=seat(m.speaker, run.participants))) for m in messages
            ]

        async def stream() -> AsyncIterator[str]:
            nonlocal after
            store = await run_in_threadpool(Store, self.db, create=False)
            try:
                yield "retry: 2000\n\n"
                quiet = 0.0
                while True:
                    status, rendered = await run_in_threadpool(poll, store, after)
                    for index, html in rendered:
                        yield f"id: {index}\nevent: message\ndata: {json.dumps({'index': index, 'html': html})}\n\n"
                        after = index
                    if status != "running":
                        yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                        return
                    if self.closing.is_set():
                        return  # the browser reconnects (after the last id it saw) when the viewer is back
                    quiet = 0.0 if rendered else quiet + self.poll_seconds
                    if quiet >= KEEPALIVE_SECONDS:  # a comment line keeps idle connections open
                        yield ": keepalive\n\n"
                        quiet = 0.0
                    await asyncio.sleep(self.poll_seconds)
            finally:
                store.close()

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
        )

    def _run_head(self, ref: str) -> Run:
        with self.store() as store:
            return store.get_run(ref, with_messages=False)

    # -- experiments -------------------------------------------------------------

    def experiments(self, request: Request) -> Response:
        with self.store() as store:
            rows = store.list_experiments()
        return self.page(request, "experiments.html", experiments=rows)

    def experiment(self, request: Request) -> Response:
        experiment_id = request.path_params["experiment_id"]
        with self.store() as store:
            exp = store.get_experiment(experiment_id)
            if exp is None:
                raise HTTPException(404, f"no experiment '{experiment_id}'")
            if self.experiment_report:
                report = self.experiment_report(store, exp)
            else:
                report = experiment_report_html(store, exp, self.templates.env)
            q = RunQuery.from_params(request.query_params, experiment=exp.id)
            result = store.query_runs(q)
        return self.page(
            request,
            "experiment.html",
            exp=exp,
            report=report,
            q=q,
            result=result,
            base=f"/experiments/{exp.id}",
            spec_json=json.dumps(exp.spec, indent=2, ensure_ascii=False),
        )

    # -- errors ------------------------------------------------------------------

    async def not_found(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return self.page(request, "error.html", status_code=status, status=status, detail=detail)


def run_summaries(a: Analysis) -> tuple[LoopSummary, SemanticSummary, list[MessageTheme], dict[str, str]]:
    """A run's loops, semantic findings, message themes and theme labels, from an analysis."""
    themes = [MessageTheme(m.index, m.label, m.topic) for m in a.themes or []]
    return LoopSummary.of(a), SemanticSummary.of(a), themes, dict(a.theme_labels or {})


def history_context(run: Run, events: list[EventDescription], family: Lineage | None) -> dict[str, Any]:
    """What the run page shows besides the chat: its events, its lineage and its spec's changes
    (also what the HTML export passes, without the lineage: a file has no other runs to link to)."""
    kinds: dict[str, int] = {}
    marks: dict[int, list[tuple[int, str, bool]]] = {}  # message index -> (event number, kind, flagged live)
    for number, e in enumerate(events, start=1):
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
        if e.message_index is not None:
            marks.setdefault(e.message_index, []).append((number, e.kind, e.live))
    changes = []
    for ch in run.spec.get("changes") or []:
        settings = [(k, format_value(v)) for k, v in ch.items() if k not in ("at", "participant") and v is not None]
        changes.append({"at": ch.get("at"), "participant": ch.get("participant"), "settings": settings})
    return {
        "events": events,
        "event_kinds": sorted(kinds.items()),
        "event_marks": marks,
        "lineage": family,
        "changes": changes,
    }


def seats(run: Run) -> dict[str, Seat]:
    """Each speaker's seat (its colour), participants and any other speaker of the messages."""
    return {s: seat(s, run.participants) for s in {*run.participants, *(m.speaker for m in run.messages)}}


def participant_models(run: Run) -> dict[str, str | None]:
    """Each participant's model string, by name (the run page's header)."""
    return {
        p.get("name"): model
        for p, model in zip(run.spec.get("participants", []), run.models, strict=True)
        if p.get("name")
    }


def marked_snippet(snippet: str) -> Markup:
    """A search snippet escaped, its matched words in <mark> (the marks are control characters, never HTML)."""
    from ..search import MARK_END, MARK_START

    return Markup(str(escape(snippet)).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "run"


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = local_time
    env.filters["markdown"] = markdown  # model output: rendered with every tag escaped (web/markdown.py)
    env.filters["number"] = number
    env.filters["usd"] = format_usd  # a cost in US dollars ($0.0123)
    env.filters["cost_cell"] = cost_cell  # a group's cost: "≥" when some messages' cost is unknown
    env.filters["path"] = lambda value: quote(str(value), safe="")  # ids inside URL paths
    env.filters["marked"] = marked_snippet
    # Theme and family labels of the built-in set, for the runs tables' attractor and end state.
    env.globals.update(local_time=local_time, number=number, sorts=SORTS, theme_labels=theme_labels_for(None)[0])
    return Jinja2Templates(env=env)


def create_app(
    db_path: str | Path,
    *,
    experiment_report: ExperimentReport | None = None,
    poll_seconds: float = POLL_SECONDS,
    plot_cache: str | Path | None = None,
) -> Starlette:
    """The viewer over the store at `db_path` (which must exist; it is migrated if it is old).

    Plots are drawn once per run and length and kept in `plot_cache` (default: `plot_cache_for`)."""
    db = Path(db_path)
    Store(db, create=False).close()  # fail now, with one line, rather than on the first page
    kept = Path(plot_cache) if plot_cache is not None else plot_cache_for(db)
    plot_dir = kept or Path(tempfile.mkdtemp(prefix="duologue-viewer-"))
    viewer = Viewer(db, make_templates(), plot_dir, experiment_report, poll_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if kept is None:
                shutil.rmtree(plot_dir, ignore_errors=True)

    routes = [
        Route("/", viewer.runs),
        Route("/runs/{run_id}", viewer.run),
        Route("/runs/{run_id}/download/{fmt}", viewer.download),
        Route("/runs/{run_id}/plots/{name}", viewer.plot),
        Route("/runs/{run_id}/events", viewer.events),
        Route("/experiments", viewer.experiments),
        Route("/experiments/{experiment_id}", viewer.experiment),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {HTTPException: viewer.not_found, RunNotFoundError: viewer.not_found}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    app.state.viewer = viewer
    return app


def serve(
    db_path: str | Path, host: str = "127.0.0.1", port: int = 8000, announce: Callable[[str], None] = print
) -> None:
    """Run the viewer with uvicorn until Ctrl-C; `announce` gets the URL once the port is bound."""
    import socket

    app = create_app(db_path)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections made as soon as the URL is printed wait for uvicorn instead of failing
    except OSError as err:
        sock.close()
        raise DuologueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    announce(f"duologue viewer: http://{shown}:{bound}/  (store {db_path}; Ctrl-C to stop)")
    try:
        make_server(app).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after stopping cleanly; it is how a viewer ends
        pass


def make_server(app: Starlette) -> uvicorn.Server:
    """A uvicorn server for the viewer that, when stopping, first tells live event streams to end:
    uvicorn waits for open responses, and a live page's stream would otherwise never finish."""
    import uvicorn

    viewer: Viewer = app.state.viewer

    class ViewerServer(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            viewer.closing.set()
            await super().shutdown(sockets=sockets)

    return ViewerServer(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
