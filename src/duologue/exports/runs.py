"""Exports of runs: one run in any export format (`export_run`), and many runs (duologue.api re-exports these).

- JSONL: one line per run, each line the very object `export_run(run, "json")` gives for it
  (`"format": "duologue.run/1"`, spec, messages with timings, analysis, events), so
  `import_transcript` and `parse_jsonl` read it back.
- Parquet: one row per (run, participant) with a `messages` column of {role, content} as that
  participant saw the conversation (exports/parquet.py), ready for Hugging Face `datasets` and
  chat fine-tuning.

Runs are chosen with `select_runs` (every run, or those of an experiment, a status, a stop reason)
and read one at a time, oldest first, so a store of any size streams out.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import DuologueError
from ..records import Run
from ..store import DEFAULT_DB, STATUSES, Store
from ..transcripts.jsonfmt import jsonl_line, run_to_dict


def export_run(run_ref: str, fmt: str = "md", *, db: str | Path = DEFAULT_DB) -> str:
    """A run in one of the export formats (duologue.exports): md (the transcript), json (everything)…"""
    from . import run_format

    export = run_format(fmt)
    with Store(db, create=False) as store:
        run = store.get_run(run_ref)
        analysis, events = store.load_analysis(run.id), store.get_events(run.id)
    return export.render(run, analysis, events)


def select_runs(
    store: Store, *, experiment: str | None = None, status: str | None = None, stop: str | None = None
) -> list[str]:
    """The ids of the runs that match every filter given, oldest first."""
    if status is not None and status not in STATUSES:
        raise DuologueError(f"unknown status '{status}' (a run is {', '.join(STATUSES)})")
    if experiment is not None:
        store.require_experiment(experiment)
    rows = store.list_runs(experiment_id=experiment, status=status)
    chosen = [r for r in rows if stop is None or r.stop_reason == stop]
    chosen.sort(key=lambda r: (r.started_at, r.id))
    return [r.id for r in chosen]


def iter_run_exports(
    *,
    experiment: str | None = None,
    status: str | None = None,
    stop: str | None = None,
    db: str | Path = DEFAULT_DB,
) -> Iterator[dict[str, Any]]:
    """The JSON export object of every matching run (what `export_run(id, "json")` holds), oldest first."""
    with Store(db, create=False) as store:
        for run_id in select_runs(store, experiment=experiment, status=status, stop=stop):
            run = store.get_run(run_id)
            yield run_to_dict(run, store.load_analysis(run.id), store.get_events(run.id))


def export_runs_jsonl(
    out: IO[str],
    *,
    experiment: str | None = None,
    status: str | None = None,
    stop: str | None = None,
    db: str | Path = DEFAULT_DB,
) -> int:
    """Write the matching runs to `out` as JSONL, one run a line; return how many."""
    count = 0
    for obj in iter_run_exports(experiment=experiment, status=status, stop=stop, db=db):
        out.write(jsonl_line(obj))
        count += 1
    return count


@contextmanager
def replacing(dest: str | Path) -> Iterator[Path]:
    """A temporary path next to `dest` to write; it replaces `dest` when the block ends without an
    error, and is removed when it fails, so `dest` is never left half-written."""
    dest = Path(dest)
    folder = dest.parent
    if not folder.is_dir():
        raise DuologueError(f"{dest}: no such folder {folder}")
    if dest.is_dir():
        raise DuologueError(f"{dest}: is a folder, give a file name")
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as err:
        raise DuologueError(f"{dest}: cannot write: {err.strerror}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); a file written in place gets 0666 less the umask: so does this.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_runs_jsonl(
    dest: str | Path,
    *,
    experiment: str | None = None,
    status: str | None = None,
    stop: str | None = None,
    db: str | Path = DEFAULT_DB,
) -> int:
    """Write the matching runs to the file `dest` as JSONL (replaced whole when done); return how many."""
    with replacing(dest) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        return export_runs_jsonl(out, experiment=experiment, status=status, stop=stop, db=db)


def _runs(store: Store, ids: Iterable[str]) -> Iterator[Run]:
    for run_id in ids:
        yield store.get_run(run_id)


def export_runs_parquet(
    dest: str | Path | None = None,
    *,
    runs: Iterable[str] | None = None,
    experiment: str | None = None,
    status: str | None = None,
    stop: str | None = None,
    db: str | Path = DEFAULT_DB,
) -> bytes | int:
    """The participants' views of the chosen runs as Parquet (exports/parquet.py): the runs named in
    `runs` (ids or prefixes), else every run matching the filters. Written to `dest` (replaced
    whole, never left half-written), returning the number of rows; without `dest`, the file's bytes."""
    import pyarrow as pa

    from .parquet import write_views

    with Store(db, create=False) as store:
        if runs is not None:
            ids = [store.resolve_run_id(ref) for ref in runs]
        else:
            ids = select_runs(store, experiment=experiment, status=status, stop=stop)
        if dest is None:
            sink = pa.BufferOutputStream()
            write_views(_runs(store, ids), sink)
            return sink.getvalue().to_pybytes()
        with replacing(dest) as tmp:
            return write_views(_runs(store, ids), str(tmp))
