"""Storing what the importers read: one file's (or several files') runs in one transaction, each with the
hash of its file so that a later import of the same bytes is recognised (corpus.py imports folders)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..records import Run
from ..store import DEFAULT_DB, Store
from . import ImportOptions, read_runs
from .corpus import file_hash


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


def import_transcript(path: str | Path, *, db: str | Path = DEFAULT_DB) -> Run:
    """Store a Markdown transcript, a JSON export or another file of one conversation as a run."""
    return import_runs(path, db=db)[0]
