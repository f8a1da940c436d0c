"""Commands that move runs in and out of the store as files: export, import."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import api
from ..errors import DuologueError
from .common import db_option, err_console
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
    if api.find_experiment(target, db=db) is not None:
        fmt = fmt or "csv"
        if fmt not in ("csv", "parquet", "jsonl"):
            raise DuologueError(f"an experiment exports as csv, parquet or jsonl, not {fmt}")
        folder = output or Path(db).parent / "exports" / target
        for path in api.export_experiment(target, fmt, folder, db=db):
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
    text = api.export_run(target, fmt, db=db)
    if output:
        api.write_atomically(output, text)
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
    help="The file's format (`duologue import --formats` lists them); by default it is detected.",
)
@click.option("--formats", "list_formats", is_flag=True, help="List the import formats and exit.")
@click.option("--conversation", default=None, help="llm logs.db: import only the conversation with this id.")
@click.option(
    "--names",
    default=None,
    help="Another tool's file: the participants' names, comma-separated, in the order they first speak.",
)
@db_option
def import_cmd(paths, fmt, list_formats, conversation, names, db) -> None:
    """Import files of conversations as runs: duologue's Markdown, JSON or JSONL, UniversalBackrooms
    logs, resonant-chat-arena pages, OpenAI-style messages JSON, or simonw/llm's logs.db. Every run of
    the files is stored in one transaction: a bad file stores nothing."""
    from ..importers import import_format, import_formats

    if list_formats:
        for f in import_formats().values():
            click.echo(f"{f.name:10} {f.description}")
        return
    if not paths:
        raise click.UsageError("give a file to import (or --formats)")
    if fmt is not None:
        import_format(fmt)  # an unknown format is an error before the file is read
    name_list = [n.strip() for n in names.split(",")] if names is not None else None
    runs = api.import_runs(paths, fmt=fmt, db=db, conversation=conversation, names=name_list)
    for run in runs:
        click.echo(f"imported {run.source} as run {run.id} ({len(run.messages)} messages)")
