"""What every command module shares: the --db option, the error console, running a coroutine."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ..store import DEFAULT_DB


class _ErrConsole:
    """rich's Console on stderr, made when first used: a quick command (search, completion) imports no rich.
    Redirected (a file, a pipe), it never wraps: a hint keeps its command on one line (layout.console_for)."""

    _console: Any = None

    def __getattr__(self, name: str) -> Any:
        if _ErrConsole._console is None:
            from .layout import console_for

            _ErrConsole._console = console_for(None, stderr=True)
        return getattr(_ErrConsole._console, name)


err_console = _ErrConsole()

db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DB,
    show_default=True,
    envvar="DUOLOGUE_DB",
    help="The SQLite store (transcripts are written next to it).",
)


def run_async(coro_factory) -> Any:
    """Run a coroutine; Ctrl-C and SIGTERM cancel it so the run is stored as interrupted; a native crash
    leaves its stacks for the next command that sees the killed run to explain (store/crashes.py)."""
    import asyncio

    from ..store.crashes import recording_crashes

    async def main():
        task = asyncio.current_task()
        assert task is not None  # main() runs as asyncio.run's task
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        return await coro_factory()

    with recording_crashes():
        return asyncio.run(main())


def print_json(data: Any) -> None:
    """One JSON document on stdout (--json): no colour, no markup, UTF-8 as it is."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
