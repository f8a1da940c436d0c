"""Commands that move runs in and out of the store as files: export, import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .. import queries, transcript_writer
from ..errors import DuologueError
from ..exports import runs as run_exports
from ..exports.experiment import write_experiment_tables
from ..importers import corpus
from .common import db_option, err_console, print_json
from .completion import complete_run_id


@click.command()
@click.argument("target", required=False, shell_complete=complete_run_id)
@click.option(
    "-f",
    "--format",
    "fmt",
    default=None,
    help="A run: md (default), json, html, parquet, or any other run format (`duologue export --formats` "
    "lists them). --all: jsonl (default) or parquet. An experiment: csv (default), parquet or jsonl tables.",
)
@click.option("--formats", "list_formats", is_flag=True, help="List the run export formats and exit.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="A run or --all: write this file instead of stdout. An experiment: the folder for its tables.",
)
@click.option(
    "--all",
    "all_runs",
    is_flag=True,
    help="Every run of the store, oldest first: JSONL (one `--format json` object a line) or parquet.",
)
@click.option("--experiment", metavar="NAME", help="With --all: only the runs of this experiment.")
@click.option("--status", metavar="S", help="With --all: only runs with this status (finished, error, …).")
@click.option("--stop", metavar="REASON", help="With --all: only runs that stopped for this reason (loop, …).")
@db_option
def export(target, fmt, output, list_formats, all_runs, experiment, status, stop, db) -> None:
    """Export a run (Markdown transcript, JSON with everything, a self-contained HTML page, Parquet of each
    participant's view), many runs (--all: JSONL or Parquet), or an experiment's runs, messages and metrics
    as tables."""
    from ..exports import run_format, run_formats
    from .exporting import export_many, export_run_parquet

    if list_formats:
        for f in run_formats().values():
            click.echo(f"{f.name:10} {f.description}")
        click.echo(f"{'parquet':10} each participant's view as chat messages (Hugging Face datasets)")
        click.echo(f"{'jsonl':10} with --all: many runs, one JSON export a line")
        return
    if all_runs:
        if target is not None:
            raise DuologueError(f"give a run id or --all, not both ({target} and --all)")
        export_many(fmt, output, experiment, status, stop, db)
        return
    if experiment or status or stop:
        raise DuologueError("--experiment, --status and --stop choose runs for --all; add --all")
    if target is None:
        raise click.UsageError("give a run id or an experiment name, or --all (or --formats)")
    if queries.find_experiment(target, db=db) is not None:
        fmt = fmt or "csv"
        if fmt not in ("csv", "parquet", "jsonl"):
            raise DuologueError(f"an experiment exports as csv, parquet or jsonl, not {fmt}")
        folder = output or Path(db).parent / "exports" / target
        for path in write_experiment_tables(target, fmt, folder, db=db):
            click.echo(f"wrote {path}")
        return
    fmt = fmt or "md"
    if fmt == "parquet":
        export_run_parquet(target, output, db)
        return
    if fmt == "csv":
        formats = ", ".join([*run_formats(), "parquet"])
        raise DuologueError(f"a run exports as {formats}, not {fmt} (tables are for experiments)")
    run_format(fmt)  # an unknown format is an error before the store is opened
    text = run_exports.export_run(target, fmt, db=db)
    if output:
        transcript_writer.write_atomically(output, text)
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@click.command(name="import")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--format",
    "fmt",
    default=None,
    help="The files' format (`duologue import --formats` lists them); by default each file's is detected. "
    "In a folder, every file with the format's suffix is read with it.",
)
@click.option("--formats", "list_formats", is_flag=True, help="List the import formats and exit.")
@click.option(
    "--experiment",
    metavar="NAME",
    default=None,
    help="Group the runs as a collection of this name (created if missing; runs imported before join it "
    "too) and analyse each, so `report NAME`, the viewer's experiment page and `export NAME` work on it as "
    "on an experiment duologue ran, split by model pairing and by template (read from each log's header).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="All or nothing: the first file that cannot be imported is an error (exit status 2) and nothing is "
    "stored. Without it, the files that read are stored and each other file is listed with its reason.",
)
@click.option("--conversation", default=None, help="llm logs.db: import only the conversation with this id.")
@click.option(
    "--names",
    default=None,
    help="Another tool's file: the participants' names, comma-separated, in the order they first speak.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what became of each file as one JSON object.")
@db_option
def import_cmd(paths, fmt, list_formats, experiment, strict, conversation, names, as_json, db) -> None:
    """Import files of conversations as runs: duologue's Markdown, JSON or JSONL, UniversalBackrooms
    logs, resonant-chat-arena pages, OpenAI-style messages JSON, or simonw/llm's logs.db.

    PATHS are files, folders (read recursively: every file a format recognises; others are left alone and
    counted) and globs ('logs/**/*.txt', quoted). The runs of the files that can be read are stored in one
    transaction; each other file is listed on stderr with its one-line reason, and a count ends the output.
    Exit status 0 when every file was imported (or had been before), 1 when some were skipped. A file
    imported before (the same bytes) is recognised and not stored twice. One file named alone is all
    or nothing, as is every file with --strict: an error (exit status 2) and nothing stored.
    """
    from ..importers import ImportOptions, import_formats

    if list_formats:
        for f in import_formats().values():
            click.echo(f"{f.name:10} {f.description}")
        return
    if not paths:
        raise click.UsageError("give a file or folder to import (or --formats)")
    if experiment is not None and not experiment.strip():
        raise click.UsageError("--experiment needs a name for the collection")
    name_list = tuple(n.strip() for n in names.split(",")) if names is not None else None
    alone = len(paths) == 1 and Path(paths[0]).is_file()
    options = ImportOptions(conversation, name_list)
    with _ImportProgress(enabled=not as_json) as progress:
        outcome = corpus.import_files(
            paths, fmt=fmt, db=db, options=options, experiment=experiment, strict=strict or alone,
            on_progress=progress.update,
        )  # fmt: skip
    if as_json:
        print_json(_outcome_json(outcome))
    else:
        _print_outcome(outcome)
    if outcome.skipped:
        sys.exit(1)


class _ImportProgress:
    """A bar on stderr while files are read, stored and analysed, when stderr is a terminal; else nothing."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Any = None
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True, highlight=False)
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.task = self.progress.add_task("import", total=None)

    def __enter__(self) -> _ImportProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, step: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=step, completed=done, total=total)


def _outcome_json(outcome) -> dict:
    return {
        "files": outcome.files,
        "imported": [
            {"source": r.source, "run_id": r.id, "messages": len(r.messages), "title": r.title}
            for r in outcome.imported
        ],
        "skipped": [{"file": str(p), "reason": reason} for p, reason in outcome.skipped],
        "known": [{"file": str(p), "run_ids": ids} for p, ids in outcome.known],
        "ignored": [str(p) for p in outcome.ignored],
        "notes": [{"file": str(p), "note": note} for p, note in outcome.notes],
        "collection": outcome.collection,
        "joined": outcome.joined,
        "analysed": outcome.analysed,
    }


def _print_outcome(outcome) -> None:
    for run in outcome.imported:
        click.echo(f"imported {run.source} as run {run.id} ({len(run.messages)} messages)")
    for path, note in outcome.notes:
        click.echo(f"note: {path}: {note}", err=True)
    for path, reason in outcome.skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    if len(outcome.known) <= 3:
        for path, ids in outcome.known:
            click.echo(f"already imported {path} (run {', '.join(ids)}): nothing new", err=True)
    files = len({r.source for r in outcome.imported})
    counts = [f"{files} file{'s' if files != 1 else ''} imported ({len(outcome.imported)} runs)"]
    counts.append(f"{len(outcome.skipped)} skipped")
    if outcome.known:
        counts.append(f"{len(outcome.known)} already imported")
    if outcome.ignored:
        shown = ", ".join(str(p) for p in outcome.ignored[:2]) + (", …" if len(outcome.ignored) > 2 else "")
        counts.append(f"{len(outcome.ignored)} left alone: no format recognises them ({shown})")
    click.echo("; ".join(counts), err=True)
    if outcome.collection and (outcome.imported or outcome.joined):
        added = len(outcome.imported) + len(outcome.joined)
        click.echo(
            f"collection {outcome.collection}: {added} runs added and analysed; "
            f"report: duologue report {outcome.collection}",
            err=True,
        )
