"""Commands that move runs in and out of the store as files: export, import."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import api
from ..errors import DuologueError
from .common import db_option, err_console


@click.command()
@click.argument("target")
@click.option("-f", "--format", "fmt", type=click.Choice(["md", "json", "csv", "parquet", "jsonl"]), default=None,
              help="A run: md (default) or json. An experiment: csv (default), parquet or jsonl tables.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="A run: write this file instead of stdout. An experiment: the folder for its tables.")
@db_option
def export(target, fmt, output, db) -> None:
    """Export a run (Markdown transcript or JSON), or an experiment's runs, messages and metrics as tables."""
    if api.find_experiment(target, db=db) is not None:
        fmt = fmt or "csv"
        if fmt not in ("csv", "parquet", "jsonl"):
            raise DuologueError(f"an experiment exports as csv, parquet or jsonl, not {fmt}")
        folder = output or Path(db).parent / "exports" / target
        for path in api.export_experiment(target, fmt, folder, db=db):
            click.echo(f"wrote {path}")
        return
    fmt = fmt or "md"
    if fmt not in ("md", "json"):
        raise DuologueError(f"a run exports as md or json, not {fmt} (tables are for experiments)")
    text = api.export_run(target, fmt, db=db)
    if output:
        api.write_atomically(output, text)
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@click.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@db_option
def import_cmd(path, db) -> None:
    """Import a Markdown transcript (or a JSON export) as a run."""
    run = api.import_transcript(path, db=db)
    click.echo(f"imported {path} as run {run.id} ({len(run.messages)} messages)")

