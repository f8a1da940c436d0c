"""The Python API the CLI is a thin shell over; usable as is from a notebook.

    import duologue
    run = duologue.run_conversation(duologue.default_spec())
    print(duologue.export_run(run.id, "md"))
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .engine import Conversation, RunListener, Watcher
from .errors import DuologueError, TranscriptFormatError
from .records import Message, Run
from .spec import ConversationSpec
from .store import DEFAULT_DB, Store
from .transcripts.jsonfmt import parse_json, render_json
from .transcripts.markdown import parse_markdown, render_run_markdown, run_from_transcript


def transcript_path(db: str | Path, run_id: str) -> Path:
    """Transcripts live next to the store: runs/<run id>.md."""
    return Path(db).parent / f"{run_id}.md"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


class TranscriptWriter(RunListener):
    """Keeps the Markdown transcript current while the run goes, and writes it when it ends."""

    def __init__(self, db: str | Path):
        self.db = Path(db)

    def _write(self, run: Run) -> None:
        path = transcript_path(self.db, run.id)
        try:
            write_atomically(path, render_run_markdown(run))
        except TranscriptFormatError:
            # A message the Markdown format cannot hold (it contains a block boundary):
            # the run goes on, and its transcript is written as JSON instead.
            write_atomically(path.with_suffix(".json"), render_json(run))

    def message_done(self, run: Run, message: Message) -> None:
        self._write(run)

    def run_ended(self, run: Run) -> None:
        self._write(run)


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
    from .backends.registry import check_participant

    for p in spec.participants:
        check_participant(p)


def default_watchers(spec: ConversationSpec) -> list[Watcher]:
    from .stopping import LoopRule

    return [LoopRule(spec)]


def analyze_run(run: Run, spec_detection: dict | None = None):
    """The analysis of a run's messages (loops, near loops, metrics) with the run's own thresholds."""
    from .analysis import LoopParams, analyze

    detection = spec_detection if spec_detection is not None else run.spec.get("detection") or {}
    params = LoopParams(**detection) if detection else LoopParams()
    return analyze(
        [m.speaker for m in run.messages], [m.content for m in run.messages], participants=run.participants,
        params=params, end_marker=run.spec.get("end_marker", "[END]") or None,
    )


def _store_analysis(store: Store, run: Run) -> None:
    from .analysis import analysis_to_dict

    store.save_analysis(run.id, analysis_to_dict(analyze_run(run)))


async def arun_conversation(
    spec: ConversationSpec,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    experiment_id: str | None = None,
) -> Run:
    check_spec(spec)
    spec = complete_seeds(spec)
    with Store(db) as store:
        conv = Conversation(
            spec, store, listeners=[TranscriptWriter(db), *listeners],
            watchers=default_watchers(spec) if watchers is None else watchers, experiment_id=experiment_id,
        )
        run = await conv.execute()
        _store_analysis(store, run)
        return run


def run_conversation(spec: ConversationSpec, **kwargs) -> Run:
    """Run a conversation to its end and return it (messages included)."""
    return asyncio.run(arun_conversation(spec, **kwargs))


def _pid_alive(pid: int | None) -> bool:
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def aresume_run(
    run_ref: str,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
) -> Run:
    with Store(db, create=False) as store:
        run = store.get_run(run_ref)
        if run.status == "finished":
            raise DuologueError(f"run {run.id} already finished ({run.stop_reason}); nothing to resume")
        if run.status == "running" and _pid_alive(store.run_pid(run.id)):
            raise DuologueError(f"run {run.id} is still running in process {store.run_pid(run.id)}")
        if run.source:
            raise DuologueError(f"run {run.id} was imported from {run.source}; it has no spec to resume")
        spec = ConversationSpec.model_validate(run.spec)
        check_spec(spec)
        conv = Conversation(
            spec, store, run=run, listeners=[TranscriptWriter(db), *listeners],
            watchers=default_watchers(spec) if watchers is None else watchers,
        )
        run = await conv.execute()
        _store_analysis(store, run)
        return run


def resume_run(run_ref: str, **kwargs) -> Run:
    """Continue an interrupted, failed or killed run from the store with its own spec."""
    return asyncio.run(aresume_run(run_ref, **kwargs))


def import_transcript(path: str | Path, *, db: str | Path = DEFAULT_DB) -> Run:
    """Read a Markdown transcript (or a JSON export) and store it as a run."""
    from .engine import new_run_id

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DuologueError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise TranscriptFormatError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise DuologueError(f"{path}: cannot read: {err.strerror}") from None
    try:
        if path.suffix.lower() in (".json", ".jsonl"):
            run = parse_json(text)
            run.source = str(path)
        else:
            run = run_from_transcript(parse_markdown(text), new_run_id(), source=str(path))
    except TranscriptFormatError as err:
        raise TranscriptFormatError(f"{path}: {err}") from None
    with Store(db) as store:
        if run.id in set(store.iter_run_ids()):
            raise DuologueError(f"run {run.id} is already in {db}")
        store.create_run(run)
    return run


def load_target(target: str, *, db: str | Path = DEFAULT_DB) -> tuple[Run, str]:
    """A run to analyse: a Markdown transcript or JSON export on disk, else a run id in the store.

    Returns the run and a short name for files written about it.
    """
    path = Path(target)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TranscriptFormatError(f"{path}: not UTF-8 text") from None
        try:
            if path.suffix.lower() in (".json", ".jsonl"):
                run = parse_json(text)
            else:
                run = run_from_transcript(parse_markdown(text), "", source=str(path))
        except TranscriptFormatError as err:
            raise TranscriptFormatError(f"{path}: {err}") from None
        run.source = str(path)
        return run, path.stem
    if not Path(db).exists():
        raise DuologueError(f"{target}: no such file, and no duologue store at {db} to find a run in")
    run = load_run(target, db=db)
    return run, run.id


def save_analysis(run_id: str, analysis: dict, *, db: str | Path = DEFAULT_DB) -> None:
    with Store(db, create=False) as store:
        store.save_analysis(run_id, analysis)


def load_run(run_ref: str, *, db: str | Path = DEFAULT_DB) -> Run:
    with Store(db, create=False) as store:
        return store.get_run(run_ref)


def list_runs(*, db: str | Path = DEFAULT_DB, limit: int | None = None) -> list[dict]:
    with Store(db, create=False) as store:
        return store.list_runs(limit=limit)


def export_run(run_ref: str, fmt: str = "md", *, db: str | Path = DEFAULT_DB) -> str:
    """A run as Markdown (the transcript format) or JSON (everything the store has)."""
    with Store(db, create=False) as store:
        run = store.get_run(run_ref)
        if fmt == "md":
            return render_run_markdown(run)
        if fmt == "json":
            return render_json(run, analysis=store.load_analysis(run.id))
    raise DuologueError(f"unknown export format '{fmt}' (md or json)")


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
