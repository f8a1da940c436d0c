"""Shell completion of run ids (Click's completion: `_DUOLOGUE_COMPLETE=bash_source duologue`, see README)."""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from ..store import DEFAULT_DB

# How many of the newest runs are offered (ids are matched by prefix among them).
RECENT_RUNS = 1000


def _store_path(ctx: click.Context) -> Path:
    """The --db given so far on the command line, else DUOLOGUE_DB (the environment, then .env), else runs/."""
    db = ctx.params.get("db")
    if db:
        return Path(db)
    env = os.environ.get("DUOLOGUE_DB")
    if not env:
        from dotenv import dotenv_values

        env = dotenv_values(".env").get("DUOLOGUE_DB") if Path(".env").is_file() else None
    return Path(env) if env else DEFAULT_DB


def recent_run_ids(db: Path, incomplete: str, limit: int = RECENT_RUNS) -> list[CompletionItem]:
    """The store's newest run ids that start with `incomplete`, each with its start time and title as help."""
    from ..store import Store

    if not db.is_file():
        return []
    try:
        with Store(db, create=False) as store:
            rows = store.list_runs(limit=limit)
    except Exception:  # completion never prints a traceback into the shell
        return []
    items = []
    for row in rows:
        if row.id.startswith(incomplete):
            when = row.started_at.strftime("%Y-%m-%d %H:%M") if row.started_at else ""
            items.append(CompletionItem(row.id, help=f"{when} {row.title}".strip()))
    return items


def complete_run_id(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """`shell_complete` for a RUN_ID argument."""
    return recent_run_ids(_store_path(ctx), incomplete)


def complete_run_id_or_file(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """`shell_complete` for an argument that is a run id or a file: run ids first, then the shell's file names."""
    return [*recent_run_ids(_store_path(ctx), incomplete), CompletionItem(incomplete, type="file")]
