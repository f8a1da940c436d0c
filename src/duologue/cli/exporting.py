"""`duologue export`'s ways out besides one text format: many runs (--all) and Parquet."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from ..errors import DuologueError
from ..exports import runs as run_exports
from .common import err_console

MANY_FORMATS = ("jsonl", "parquet")  # what --all writes
EXIT_OUTPUT_CLOSED = 141  # as for `duologue run | head`: what a shell reports for a process SIGPIPE ended


def _output_closed() -> NoReturn:
    """The reader of stdout went away (`duologue export --all | head`): stop quietly, with 141."""
    devnull = os.open(os.devnull, os.O_WRONLY)  # what is still buffered can never be written
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(EXIT_OUTPUT_CLOSED)


def write_binary(data: bytes | int, output: Path | None, rows_are: str) -> None:
    """Parquet written to a file already (a row count), or bytes for stdout."""
    if isinstance(data, int):
        err_console.print(f"wrote {output} ({data} row{'s' if data != 1 else ''}: {rows_are})")
        return
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        _output_closed()


def check_binary_stdout(output: Path | None) -> None:
    if output is None and sys.stdout.isatty():
        raise DuologueError("Parquet is binary: give -o FILE (or redirect stdout to a file)")


def export_many(fmt: str | None, output: Path | None, experiment, status, stop, db) -> None:
    """`duologue export --all`: every run (or those the filters choose), oldest first."""
    fmt = fmt or "jsonl"
    if fmt not in MANY_FORMATS:
        raise DuologueError(f"--all exports {' or '.join(MANY_FORMATS)}, not {fmt}")
    filters = {"experiment": experiment, "status": status, "stop": stop, "db": db}
    if fmt == "parquet":
        check_binary_stdout(output)
        data = run_exports.export_runs_parquet(output, **filters)
        write_binary(data, output, "one per participant of each run")
        return
    if output is not None:
        n = run_exports.write_runs_jsonl(output, **filters)
        err_console.print(f"wrote {output} ({n} run{'s' if n != 1 else ''})")
        return
    try:
        run_exports.export_runs_jsonl(sys.stdout, **filters)
        sys.stdout.flush()
    except BrokenPipeError:
        _output_closed()


def export_run_parquet(target: str, output: Path | None, db) -> None:
    """One run's participant views as Parquet."""
    check_binary_stdout(output)
    data = run_exports.export_runs_parquet(output, runs=[target], db=db)
    write_binary(data, output, "one per participant")
