"""Full-text search over the store's messages: what `duologue search` and the viewer's runs page call."""

from __future__ import annotations

from pathlib import Path

from .store import DEFAULT_DB, Store
from .store.search import MARK_END, MARK_START, SearchHit, SearchResult

__all__ = ["MARK_END", "MARK_START", "SearchHit", "SearchResult", "search_messages"]


def search_messages(
    text: str,
    *,
    db: str | Path = DEFAULT_DB,
    run: str | None = None,
    experiment: str | None = None,
    speaker: str | None = None,
    limit: int = 20,
    raw: bool = False,
) -> SearchResult:
    """Messages whose text matches `text` (all words, "quoted phrases", word* prefixes), best first.

    `run` is a run reference (id, unique prefix, @last); `experiment` an experiment's id (`batch` names
    it after the experiment).
    `raw=True` passes `text` to SQLite FTS5 as a query of its own syntax (AND, OR, NOT, NEAR).
    """
    with Store(db, create=False) as store:
        run_id = store.resolve_run_id(run) if run else None
        experiment_id = store.require_experiment(experiment).id if experiment else None
        return store.search_messages(
            text, raw=raw, run_id=run_id, experiment_id=experiment_id, speaker=speaker, limit=limit
        )
