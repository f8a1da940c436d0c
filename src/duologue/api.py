"""The Python API the CLI is a thin shell over; usable as is from a notebook.

import duologue
run = duologue.run_conversation(duologue.default_spec())
print(duologue.export_run(run.id, "md"))

The async functions (arun_conversation, aresume_run, afork_run) are the API; the sync ones run
them with sync.run_sync, which works inside a running event loop too (a notebook).
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .backends.embedded.weights import complete_embedded
from .backends.registry import BackendFactory, check_participant
from .engine import Conversation, Interjector, RunListener, Watcher
from .errors import DuologueError
from .events import Lineage as Lineage  # re-exported: part of the API
from .events import lineage
from .records import Run
from .spec import ConversationSpec, spec_from_dict
from .stopping import check_resumable, format_limit
from .store import DEFAULT_DB, ExperimentRow, Store, StoreFullError, process_alive
from .sync import run_sync
from .transcript_writer import TranscriptWriter
from .transcript_writer import transcript_path as transcript_path  # re-exported: part of the API
from .transcript_writer import write_atomically as write_atomically  # re-exported: part of the API
from .version import __version__


def complete_seeds(spec: ConversationSpec) -> ConversationSpec:
    """Fill in any missing seed so the stored spec repeats the run exactly."""
    spec = spec.model_copy(deep=True)
    if spec.seed is None:
        spec.seed = random.SystemRandom().randrange(2**31)
    for i, p in enumerate(spec.participants):
        if p.seed is None:
            p.seed = spec.seed + i
    return spec


def check_spec(spec: ConversationSpec) -> None:
    """Everything checkable before a run starts (model strings, GGUF files, API keys)."""
    for p in spec.participants:
        check_participant(p)
    for ch in spec.changes:
        if ch.model is not None:
            check_participant(spec.participant(ch.participant).model_copy(update={"model": ch.model}))
    if spec.context.strategy == "summarize":
        s = spec.context.summarizer
        check_participant(s.model_copy(update={"model": s.model or spec.participants[0].model}))


def default_watchers(spec: ConversationSpec) -> list[Watcher]:
    """One watcher per detector (duologue.detectors): loops, semantic, and any a plugin adds."""
    from .detectors import watchers_for

    return watchers_for(spec)


def analyze_run(run: Run, spec_detection: dict | None = None, vectors=None, themes: str | Path | None = None):
    """The analysis of a run's messages (loops, near loops, convergence, themes, metrics) with the
    run's own thresholds. `vectors`: the messages' embeddings when already known; `themes`: a theme
    file to use instead of the run's own (or the built-in set)."""
    from .analysis import analyze
    from .analysis.params import detection_params

    detection = spec_detection if spec_detection is not None else run.spec.get("detection") or {}
    loop, convergence, attractor = detection_params(detection)
    if themes is not None:
        attractor = dataclasses.replace(attractor, themes=str(themes))
    return analyze(
        [m.speaker for m in run.messages],
        [m.content for m in run.messages],
        participants=run.participants,
        params=loop,
        end_marker=run.spec.get("end_marker", "[END]") or None,
        convergence=convergence,
        attractor=attractor,
        vectors=vectors,
    )


def run_vectors(store: Store, run: Run, watchers: Iterable[Watcher] = ()):
    """The embeddings of a run's messages, computed once: those a live SemanticRule computed, else
    those stored with the messages, else computed now. Returns (vectors, embedder name)."""
    import numpy as np

    from .analysis.embeddings import get_embedder
    from .analysis.semantic import embed_messages
    from .detectors.semantic import SemanticRule

    embedder = get_embedder()
    indices = [m.index for m in run.messages]
    for w in watchers:
        if isinstance(w, SemanticRule) and indices and all(i in w.vectors for i in indices):
            return np.stack([w.vectors[i] for i in indices]), embedder.name
    stored = store.load_vectors(run.id, embedder.name)
    if indices and all(i in stored for i in indices):
        return np.stack([stored[i] for i in indices]), embedder.name
    return embed_messages([m.content for m in run.messages], embedder), embedder.name


def analyze_stored_run(run: Run, *, db: str | Path = DEFAULT_DB, themes: str | Path | None = None):
    """Analyse a run of the store with its stored embeddings (computed and kept if missing) and keep
    the analysis with it; return the analysis."""
    with Store(db, create=False) as store:
        vectors, embedder = run_vectors(store, run)
        analysis = analyze_run(run, vectors=vectors, themes=themes)
        store.save_analysis(run.id, analysis, vectors=vectors, embedder=embedder)
    return analysis


def _store_analysis(store: Store, run: Run, watchers: Iterable[Watcher] = ()) -> None:
    vectors, embedder = run_vectors(store, run, watchers)
    store.save_analysis(run.id, analyze_run(run, vectors=vectors), vectors=vectors, embedder=embedder)


class CurrentRun(RunListener):
    """Pass one among the listeners to learn which run a call works on (`id`), as soon as the run is in
    the store: a new run, the resumed one, or the fork. The CLI names it when Ctrl-C stops the call."""

    def __init__(self) -> None:
        self.id: str | None = None

    def run_started(self, run: Run, resumed: bool) -> None:
        self.id = run.id


def _check(spec: ConversationSpec, make_backend: BackendFactory | None) -> None:
    # A caller's own factory answers for its models; the registry checks its providers'.
    if make_backend is None:
        check_spec(spec)


async def _run_conversation(
    spec: ConversationSpec,
    store: Store,
    db: str | Path,
    listeners: Iterable[RunListener],
    watchers: Iterable[Watcher] | None,
    **conversation,
) -> Run:
    """Run a conversation (new, resumed or forked) to its end, with its transcript and stored analysis."""
    listeners = list(listeners)
    watchers = default_watchers(spec) if watchers is None else list(watchers)
    conv = Conversation(spec, store, listeners=[TranscriptWriter(db), *listeners], watchers=watchers, **conversation)
    for listener in listeners:
        if isinstance(listener, CurrentRun):
            listener.id = conv.run.id
    from .backends.embedded.pool import conversation_scope, pool_for  # the engine code only when a run starts

    # Embedded participants share one engine (one model in memory) for the run, or the caller's pool's;
    # the run's participants stay on one shard of a sharded pool.
    try:
        async with pool_for([spec]):
            with conversation_scope(conv.run.id):
                run = await conv.run_to_end()
    except StoreFullError as err:
        rid = conv.run.id
        raise StoreFullError(f"run {rid} stopped: {err}, then continue it with `duologue resume {rid}`") from None
    _store_analysis(store, run, watchers)
    return run


async def arun_conversation(
    spec: ConversationSpec,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    experiment_id: str | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
) -> Run:
    """Run a conversation to its end. `make_backend` makes each participant's backend instead of the
    provider registry (which then checks nothing: the factory answers for its models)."""
    _check(spec, make_backend)
    spec = complete_embedded(complete_seeds(spec))
    with Store(db) as store:
        return await _run_conversation(
            spec,
            store,
            db,
            listeners,
            watchers,
            experiment_id=experiment_id,
            interjector=interjector,
            make_backend=make_backend,
        )


def run_conversation(spec: ConversationSpec, **kwargs) -> Run:
    """Run a conversation to its end and return it (messages included); works inside a running loop."""
    return run_sync(arun_conversation(spec, **kwargs))


def _pid_alive(pid: int | None) -> bool:
    """Whether another process (not this one) that still exists holds the run."""
    return bool(pid) and pid != os.getpid() and process_alive(pid)


async def aresume_run(
    run_ref: str,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
    token_budget: int | None = None,
    time_limit: float | None = None,
    max_messages: int | None = None,
) -> Run:
    """Continue a run. `token_budget` / `time_limit` / `max_messages` replace the run's own (stored in its
    spec, with a `limits` event); a run that stopped at its budget or time limit continues only given a
    new one, and a finished run of any other stop reason only given a larger `max_messages`."""
    with Store(db, create=False) as store:
        run = store.get_run(run_ref)
        if run.source:
            raise DuologueError(f"run {run.id} was imported from {run.source}; it has no spec to resume")
        check_resumable(run, token_budget, time_limit, max_messages)
        if run.status == "running" and _pid_alive(store.run_pid(run.id)):
            raise DuologueError(f"run {run.id} is still running in process {store.run_pid(run.id)}")
        spec = spec_from_dict(run.spec, source=f"run {run.id}")  # as `run` builds a file's spec
        given = {"token_budget": token_budget, "time_limit": time_limit, "max_messages": max_messages}
        if any(v is not None for v in given.values()):
            spec = _new_limits(store, run, spec, given)
        _check(spec, make_backend)
        return await _run_conversation(
            spec, store, db, listeners, watchers, run=run, interjector=interjector, make_backend=make_backend
        )


def resume_run(run_ref: str, **kwargs) -> Run:
    """Continue an interrupted, failed or killed run from the store with its own spec (or one stopped
    by its token budget or time limit, given a new one: `token_budget=`, `time_limit=`; or any finished
    run, given a larger `max_messages=`)."""
    return run_sync(aresume_run(run_ref, **kwargs))


def _new_limits(store: Store, run: Run, spec: ConversationSpec, given: dict[str, float | None]) -> ConversationSpec:
    """The run's spec with the new limits, stored (with an event saying what changed) before it goes on."""
    data = spec.model_dump(mode="json")
    changed = {k: {"from": data[k], "to": v} for k, v in given.items() if v is not None and v != data[k]}
    data.update({k: v for k, v in given.items() if v is not None})
    spec = spec_from_dict(data, source=f"resume of {run.id}")  # one line for a limit out of range
    if changed:
        new = spec.model_dump(mode="json")
        detail = ", ".join(
            f"{k.replace('_', ' ')} {format_limit(c['from'])} → {format_limit(new[k])}" for k, c in changed.items()
        )
        store.update_spec(run.id, new, kind="limits", detail=detail, data=changed)
        run.spec = new
    return spec


def fork_base(parent: Run, at: int) -> dict:
    """The parent's spec as it stood after message `at`, for a fork's changed settings to go on top of.

    Changes already in effect by then are folded into the participants, so that
    what the fork is given overrides them instead of being overridden by them;
    later changes stay scheduled.
    """
    spec = spec_from_dict(parent.spec, source=f"run {parent.id}: its stored spec")  # as `run` builds a file's spec
    data = spec.model_dump(mode="json")
    data["participants"] = [p.model_dump(mode="json") for p in spec.participants_at(at)]
    data["changes"] = [ch.model_dump(mode="json") for ch in spec.changes if ch.at > at]
    return data


async def afork_run(
    run_ref: str,
    at: int,
    spec: ConversationSpec | None = None,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
) -> Run:
    """A new run whose first `at` messages are those of `run_ref`, continued with `spec`.

    `spec` defaults to the parent's own (see fork_base); give one with another
    model, system prompt, sampling, seed or message limit to see what changes.
    The new run records its parent and the fork point.
    """
    from .engine import new_run_id
    from .records import utcnow

    with Store(db, create=False) as store:
        parent = store.get_run(run_ref)
        count = len(parent.messages)
        if not 1 <= at <= count:
            raise DuologueError(f"run {parent.id} has {count} messages; fork at one of 1..{count}")
        if spec is None:
            spec = spec_from_dict(fork_base(parent, at), source=f"fork of {parent.id}")
        imported = [p.name for p in spec.participants if p.model == "imported"]
        if imported:
            raise DuologueError(
                f"run {parent.id} was imported, so no model is known for {', '.join(imported)}: "
                "give the models to go on with (--a/--b or --participant)"
            )
        kept = parent.messages[:at]
        # The kept messages must still be the participants' own, or the fork would hear them as strangers.
        lost = sorted({m.speaker for m in kept if m.speaker in parent.participants} - set(spec.names))
        if lost:
            raise DuologueError(f"a fork keeps the participants of the messages it keeps; missing: {', '.join(lost)}")
        _check(spec, make_backend)
        spec = complete_embedded(complete_seeds(spec))
        run = Run(
            id=new_run_id(),
            spec=spec.model_dump(mode="json"),
            participants=spec.names,
            started_at=utcnow(),
            duologue_version=__version__,
            parent_run_id=parent.id,
            fork_at=at,
            messages=[dataclasses.replace(m) for m in kept],
        )
        store.create_run(run)
        return await _run_conversation(
            spec, store, db, listeners, watchers, run=run, interjector=interjector, make_backend=make_backend
        )


def fork_run(run_ref: str, at: int, spec: ConversationSpec | None = None, **kwargs) -> Run:
    """Start a new run from the first `at` messages of another, with its own (changed) spec."""
    return run_sync(afork_run(run_ref, at, spec, **kwargs))


def import_runs(
    path: str | Path | Sequence[str | Path],
    *,
    fmt: str | None = None,
    db: str | Path = DEFAULT_DB,
    conversation: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Run]:
    """Store every conversation of a file, or of several (format `fmt`, or detected: duologue.importers) as
    a run, all in one transaction: a bad file, or a run already in the store, leaves the store as it was."""
    from .importers import ImportOptions, read_runs
    from .importers.corpus import file_hash

    options = ImportOptions(conversation, tuple(names) if names is not None else None)
    runs = []
    for p in [path] if isinstance(path, (str, Path)) else path:
        read = read_runs(p, fmt, options)
        digest = file_hash(Path(p))
        for run in read:
            run.source_hash = digest  # what a later `import` of the same file recognises
        runs += read
    with Store(db) as store:
        store.create_runs(runs)
    return runs


def import_files(
    paths: Sequence[str | Path],
    *,
    db: str | Path = DEFAULT_DB,
    fmt: str | None = None,
    options=None,
    experiment: str | None = None,
    strict: bool = False,
    on_progress=None,
):
    """Import files, folders (recursively) and globs: the runs of the files that read are stored, the
    others listed with their reasons, files imported before recognised (duologue.importers.corpus).
    `experiment`: group the runs as a collection of that name and analyse them. Returns an ImportOutcome."""
    from .importers.corpus import import_files as import_many

    return import_many(
        paths, db=db, fmt=fmt, options=options, experiment=experiment, strict=strict, on_progress=on_progress
    )


def import_transcript(path: str | Path, *, db: str | Path = DEFAULT_DB) -> Run:
    """Store a Markdown transcript, a JSON export or another file of one conversation as a run."""
    return import_runs(path, db=db)[0]


def load_target(target: str, *, db: str | Path = DEFAULT_DB) -> tuple[Run, str]:
    """A run to analyse: a file of one conversation (any import format) on disk, else a run id in the store.

    Returns the run and a short name for files written about it.
    """
    from .importers import single_run

    path = Path(target)
    if path.is_file():
        run = single_run(path)
        run.source = str(path)
        return run, path.stem
    if not Path(db).exists():
        raise DuologueError(f"{target}: no such file, and no duologue store at {db} to find a run in")
    run = load_run(target, db=db)
    return run, run.id


def save_analysis(run_id: str, analysis, *, db: str | Path = DEFAULT_DB) -> None:
    """Keep an analysis (duologue.analysis.Analysis, e.g. from analyze_run) with its run."""
    with Store(db, create=False) as store:
        store.save_analysis(run_id, analysis)


def load_run(run_ref: str, *, db: str | Path = DEFAULT_DB) -> Run:
    with Store(db, create=False) as store:
        return store.get_run(run_ref)


def killed_run_note(run_ref: str, *, db: str | Path = DEFAULT_DB) -> str | None:
    """For a killed run whose process crashed (store/crashes.py): one line on what happened and what to try."""
    from .store.crashes import killed_run_note as note

    with Store(db, create=False) as store:
        return note(store, run_ref)


def run_events(run_ref: str, *, db: str | Path = DEFAULT_DB) -> list[dict]:
    """What was recorded during a run besides its messages: detections, injections, changes, context trims."""
    with Store(db, create=False) as store:
        return store.get_events(store.resolve_run_id(run_ref))


def run_lineage(run_ref: str, *, db: str | Path = DEFAULT_DB) -> Lineage:
    with Store(db, create=False) as store:
        return lineage(store, store.get_run(run_ref, with_messages=False))


def list_runs(*, db: str | Path = DEFAULT_DB, limit: int | None = None, **filters) -> list[dict]:
    """Runs newest first, each a dict (id, title, participants, models, status, stop_reason, messages, …); filters
    (Store.list_runs): experiment_id, status, model (a part of a model string), looped (True or False)."""
    with Store(db, create=False) as store:
        return [r.as_dict() for r in store.list_runs(limit=limit, **filters)]


def export_run(run_ref: str, fmt: str = "md", *, db: str | Path = DEFAULT_DB) -> str:
    """A run in one of the export formats (duologue.exports): md (the transcript), json (everything)…"""
    from .exports import run_format

    export = run_format(fmt)
    with Store(db, create=False) as store:
        run = store.get_run(run_ref)
        analysis, events = store.load_analysis(run.id), store.get_events(run.id)
    return export.render(run, analysis, events)


@dataclass
class RunTotals:
    messages: int
    prompt_tokens: int
    completion_tokens: int
    generation_seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.generation_seconds if self.generation_seconds else 0.0


def run_totals(run: Run) -> RunTotals:
    gen = [m for m in run.messages if not m.injected]
    return RunTotals(
        messages=len(run.messages),
        prompt_tokens=sum(m.prompt_tokens or 0 for m in gen),
        completion_tokens=sum(m.completion_tokens or 0 for m in gen),
        generation_seconds=sum(m.latency or 0.0 for m in gen),
    )


# -- experiments (the CLI's report and export) ------------------------------------------


def find_experiment(name: str, *, db: str | Path = DEFAULT_DB) -> ExperimentRow | None:
    with Store(db, create=False) as store:
        return store.get_experiment(name)


def export_experiment(name: str, fmt: str, folder: Path, *, db: str | Path = DEFAULT_DB) -> list[Path]:
    """An experiment's runs, messages and metrics as csv, parquet or jsonl tables in `folder`."""
    from .batch import export_experiment as export_tables

    with Store(db, create=False) as store:
        return export_tables(store, name, fmt, folder)


def experiment_report(name: str, folder: Path, *, db: str | Path = DEFAULT_DB) -> dict:
    """Aggregate an experiment, write its plots and `<name>-report.json` into `folder`, return the report."""
    from .batch import experiment_report as report

    with Store(db, create=False) as store:
        return report(store, name, folder)
