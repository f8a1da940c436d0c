"""Reading the store: a run, its events and lineage, lists of runs, a run's totals, why a killed run died, an
experiment's record; a run to analyse from a file or the store. What the CLI, the viewer and scripts read
(duologue.api re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DuologueError
from .events import Lineage, lineage
from .records import Run
from .store import DEFAULT_DB, ExperimentRow, Store
from .verdict import Verdict, verdict_of


def load_run(run_ref: str, *, db: str | Path = DEFAULT_DB) -> Run:
    """A run of the store with its messages (any unique prefix of its id, `@last`, `@last~N`)."""
    with Store(db, create=False) as store:
        return store.get_run(run_ref)


def run_events(run_ref: str, *, db: str | Path = DEFAULT_DB) -> list[dict]:
    """What was recorded during a run besides its messages: detections, injections, changes, context trims."""
    with Store(db, create=False) as store:
        return store.get_events(store.resolve_run_id(run_ref))


def run_lineage(run_ref: str, *, db: str | Path = DEFAULT_DB) -> Lineage:
    """A run's ancestors (parent, its parent, … with the fork points) and the runs forked from it."""
    with Store(db, create=False) as store:
        return lineage(store, store.get_run(run_ref, with_messages=False))


def list_runs(
    *,
    db: str | Path = DEFAULT_DB,
    limit: int | None = None,
    experiment_id: str | None = None,
    status: str | None = None,
    model: str | None = None,
    looped: bool | None = None,
) -> list[dict]:
    """Runs newest first, each a dict (id, title, participants, models, status, stop_reason, messages, …);
    filters: the experiment, the status as shown, a part of a model string, looped or not."""
    with Store(db, create=False) as store:
        rows = store.list_runs(limit=limit, experiment_id=experiment_id, status=status, model=model, looped=looped)
        return [r.as_dict() for r in rows]


def run_verdict(run_ref: str, *, db: str | Path = DEFAULT_DB) -> Verdict:
    """A run's loop, attractor and end state from its stored analysis (verdict.py): what every surface says."""
    with Store(db, create=False) as store:
        run_id = store.resolve_run_id(run_ref)
        return verdict_of(store.run_loops(run_id), store.run_semantic(run_id))


def analysis_outdated(run_ref: str, *, db: str | Path = DEFAULT_DB) -> bool:
    """Whether the run's stored analysis was made by older rules than `analyze` uses now (its verdict may differ)."""
    from .analysis.report import RULES

    with Store(db, create=False) as store:
        rules = store.analysis_rules(store.resolve_run_id(run_ref))
    return rules is not None and rules < RULES


def killed_run_note(run_ref: str, *, db: str | Path = DEFAULT_DB) -> str | None:
    """For a killed run whose process crashed (store/crashes.py): one line on what happened and what to try."""
    from .store.crashes import killed_run_note as note

    with Store(db, create=False) as store:
        return note(store, run_ref)


def experiment_runs(name: str, *, db: str | Path = DEFAULT_DB) -> list[Run]:
    """Every run of an experiment (or a collection), with its messages."""
    with Store(db, create=False) as store:
        return store.experiment_full_runs(store.require_experiment(name).id)


def find_experiment(name: str, *, db: str | Path = DEFAULT_DB) -> ExperimentRow | None:
    """An experiment's (or a collection's) record, or None."""
    with Store(db, create=False) as store:
        return store.get_experiment(name)


def save_analysis(run_id: str, analysis, *, db: str | Path = DEFAULT_DB) -> None:
    """Keep an analysis (duologue.analysis.Analysis, e.g. from analyze_run) with its run."""
    with Store(db, create=False) as store:
        store.save_analysis(run_id, analysis)


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
    if "/" in target or "." in target or path.exists():  # a path (a run id has neither): name the file
        raise DuologueError(f"{target}: {'not a file' if path.exists() else 'no such file'}")
    if not Path(db).exists():
        raise DuologueError(f"{target}: no such file, and no duologue store at {db} to find a run in")
    run = load_run(target, db=db)
    return run, run.id


@dataclass
class RunTotals:
    messages: int
    prompt_tokens: int | None  # None: no generated message's count was reported (a server that sends no usage)
    completion_tokens: int | None
    generation_seconds: float

    @property
    def tokens_per_second(self) -> float | None:
        if self.completion_tokens is None:
            return None
        return self.completion_tokens / self.generation_seconds if self.generation_seconds else 0.0


def run_totals(run: Run) -> RunTotals:
    """A run's messages, its generated messages' tokens (None when none was reported) and the seconds they took."""
    gen = [m for m in run.messages if not m.injected]

    def total(counts: list[int | None]) -> int | None:
        known = [n for n in counts if n is not None]
        return sum(known) if known else None

    return RunTotals(
        messages=len(run.messages),
        prompt_tokens=total([m.prompt_tokens for m in gen]),
        completion_tokens=total([m.completion_tokens for m in gen]),
        generation_seconds=sum(m.latency or 0.0 for m in gen),
    )
