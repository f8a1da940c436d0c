"""Commands that make and list runs: run, fork, resume, ls (show is in show.py)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.text import Text

from .. import conversations, queries, runner, transcript_writer
from ..backends.settings import unsent_warnings
from ..costs import cost_cell, describe_cost
from ..errors import DuologueError
from ..store import STATUSES
from ..verdict import Verdict, theme_labels_for
from ..vocabulary import WORDS
from .common import db_option, err_console, print_json, run_async
from .completion import complete_run_id
from .layout import Col, console_for, print_table, width_option
from .options import COST_LIMIT_HELP, TIME_LIMIT_HELP, TOKEN_BUDGET_HELP, build_spec, spec_options, spec_with_flags


@click.command()
@click.option(
    "-c",
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A conversation TOML file (flags given too override it).",
)
@click.option(
    "--estimate",
    is_flag=True,
    help="Print the run's estimated tokens and cost (a range: replies of a typical length measured from the "
    "store, to every reply at max_tokens; each provider's caching counted) and run nothing.",
)
@spec_options
@db_option
def run(config, estimate, model_a, model_b, interactive, meta, quiet, db, **flags) -> None:
    """Run a conversation between two (or more) models and stream it.

    With no arguments, two embedded SmolLM2 participants talk offline. Three or
    more: repeat --participant, or list [[participants]] in a TOML file. Exit
    status 1 when the run ends with an error (resume it), 130 when interrupted.
    """
    flags["model_a"], flags["model_b"] = model_a, model_b
    spec = build_spec(config, flags)
    if estimate:
        from ..costs.estimate import estimate_with_store

        for line in estimate_with_store([spec], db).lines():
            click.echo(line)
        return
    conversations.check_spec(spec)  # models, files and keys first: a warning about a run that cannot start is noise
    for line in unsent_warnings(spec):  # settings asked for that a provider will not be sent
        click.echo(line, err=True)
    current, renderer = runner.CurrentRun(), None if quiet else _renderer(meta)
    listeners = [current] if renderer is None else [current, renderer]
    interjector = _interjector(renderer) if interactive else None
    _run_to_end(
        lambda: conversations.arun_conversation(spec, db=db, listeners=listeners, interjector=interjector),
        current,
        renderer,
        db,
    )


@click.command()
@click.argument("run_id", shell_complete=complete_run_id)
@click.option(
    "--at",
    "at",
    type=int,
    required=True,
    metavar="N",
    help="Keep the first N messages of RUN_ID (the opener is message 1), then continue.",
)
@spec_options
@db_option
def fork(run_id, at, model_a, model_b, interactive, meta, quiet, db, **flags) -> None:
    """Start a new run from the first N messages of another, with any settings changed.

    The fork continues with the parent's settings as they stood at message N,
    with the flags given on top: another model or system prompt for either
    side, other sampling, another seed, another message limit. It records its
    parent and fork point (`ls`, `show`, the JSON export).
    """
    flags["model_a"], flags["model_b"] = model_a, model_b
    parent = queries.load_run(run_id, db=db)
    base = conversations.fork_base(parent, at) if 1 <= at <= len(parent.messages) else parent.spec
    if flags.get("seed") is not None:  # a new base seed: the parent's per-participant seeds give way
        for p in base.get("participants", []):
            p["seed"] = None
    spec = spec_with_flags(base, flags, source=f"fork of {parent.id}")
    current, renderer = runner.CurrentRun(), None if quiet else _renderer(meta)
    listeners = [current] if renderer is None else [current, renderer]
    interjector = _interjector(renderer) if interactive else None
    _run_to_end(
        lambda: conversations.afork_run(parent.id, at, spec, db=db, listeners=listeners, interjector=interjector),
        current,
        renderer,
        db,
    )


def _interjector(renderer):
    from ..interactive import TerminalInterjector

    return TerminalInterjector(renderer=renderer)


def _renderer(meta: bool):
    from ..terminal import TerminalRenderer

    return TerminalRenderer(show_meta=meta)


# The exit status when stdout was closed under a run (`duologue run | head`): what a shell reports
# for a process that SIGPIPE ended (128 + 13).
EXIT_OUTPUT_CLOSED = 141


def _run_to_end(start, current: runner.CurrentRun, renderer, db: Path) -> None:
    """Run a conversation, then print its summary; Ctrl-C (exit 130) or a closed stdout (exit 141) keeps
    the run as interrupted, to resume."""
    try:
        result = run_async(start)
    except (KeyboardInterrupt, asyncio.CancelledError):
        if renderer is not None and renderer.output_closed:
            _output_closed(current.id, db)
        _interrupted(current.id)
        sys.exit(130)
    try:
        _end(result, db)
    except BrokenPipeError:
        _output_closed(current.id, db)


def _output_closed(run_id: str | None, db: Path) -> NoReturn:
    """The reader of stdout went away: one line on stderr, and exit without another write to stdout."""
    # What is still buffered for stdout can never be written: point it at /dev/null, so the flush at
    # exit does not complain.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    if run_id is not None:
        status = queries.load_run(run_id, db=db).status
        if status == "interrupted":
            resume = f"continue it with `duologue resume {run_id}`"
            err_console.print(Text(f"output closed: run {run_id} stopped; {resume}", style="yellow"), soft_wrap=True)
        else:
            err_console.print(Text(f"output closed: run {run_id} ended ({status})", style="yellow"), soft_wrap=True)
    sys.exit(EXIT_OUTPUT_CLOSED)


def _interrupted(run_id: str | None) -> None:
    """Ctrl-C: name the run that was stopped (the API said which), not merely the newest one."""
    if run_id is None:
        err_console.print(Text("\ninterrupted before the run started", style="yellow"))
        return
    err_console.print(
        Text(f"\ninterrupted: run {run_id} kept; continue it with `duologue resume {run_id}`", style="yellow")
    )


def _end(run, db: Path) -> None:
    """The summary; exit status 1 when the run ended with an error, so scripts can tell."""
    _print_summary(run, db)
    if run.status == "error":
        click.echo(f"duologue: run {run.id} ended with an error: {run.stop_detail or 'error'}", err=True)
        sys.exit(1)


def _print_summary(run, db: Path) -> None:
    totals = queries.run_totals(run)
    c = console_for(None)  # piped: the transcript's path on one line
    stop = f"{run.stop_reason}" + (f" ({run.stop_detail})" if run.stop_detail else "")
    c.print(Text("─" * 60, style="dim"))
    c.print(Text.assemble(("run ", "dim"), (run.id, "bold"), ("  ", ""), (run.title, "")))
    c.print(f"messages: {totals.messages}   stop: {stop}")
    verdict = queries.run_verdict(run.id, db=db)  # the stored analysis of its final messages, as `show` says it
    if verdict.analysed:
        c.print(Text(f"analysis: {verdict.line(theme_labels_for(run.spec)[0])}"))
    if totals.prompt_tokens is None and totals.completion_tokens is None:
        c.print("tokens: not reported by the server")
    else:
        tps = totals.tokens_per_second
        c.print(
            f"tokens: {_count(totals.prompt_tokens)} prompt, {_count(totals.completion_tokens)} completion, "
            f"{'not reported' if tps is None else f'{tps:.1f}'} tokens/s"
        )
    c.print(f"cost: {describe_cost(run)}")
    c.print(f"transcript: {transcript_writer.transcript_path(db, run.id)}")
    if run.status in ("error", "interrupted"):
        c.print(Text(f"resume with: duologue resume {run.id}", style="yellow"))
    elif run.stop_reason in LIMIT_FLAGS:
        flag = LIMIT_FLAGS[run.stop_reason]
        c.print(Text(f"continue with a new limit: duologue resume {run.id} {flag}", style="dim"))


# What `resume` takes to continue a run stopped at each limit.
LIMIT_FLAGS = {
    "token_budget": "--token-budget N",
    "time_limit": "--time-limit SECONDS",
    "cost_limit": "--cost-limit USD",
}


def _count(n: int | None) -> str:
    return "not reported" if n is None else str(n)


@click.command()
@click.argument("run_id", shell_complete=complete_run_id)
@click.option(
    "--interactive",
    is_flag=True,
    help="Press Enter while it runs to pause after the current message and speak (as with `run`).",
)
@click.option("--meta/--no-meta", default=False, help="Show tokens and timings after each message.")
@click.option("-q", "--quiet", is_flag=True, help="Print the summary only.")
@click.option(
    "--token-budget", type=int, metavar="N", help="A new token budget (stored in the run's spec). " + TOKEN_BUDGET_HELP
)
@click.option(
    "--time-limit",
    type=float,
    metavar="SECONDS",
    help="A new time limit (stored in the run's spec). " + TIME_LIMIT_HELP,
)
@click.option(
    "--max-messages",
    type=int,
    metavar="N",
    help="Extend the run to N messages in all (more than it has; stored in the run's spec).",
)
@click.option(
    "--cost-limit",
    type=float,
    metavar="USD",
    help="A new cost limit, above what the run has spent (stored in the run's spec). " + COST_LIMIT_HELP,
)
@db_option
def resume(run_id, interactive, meta, quiet, token_budget, time_limit, max_messages, cost_limit, db) -> None:
    """Continue an interrupted, failed or killed run from the store.

    A run that stopped at its token budget, time or cost limit continues when
    given a new one (--token-budget, --time-limit, --cost-limit); any finished
    run continues when given a larger --max-messages. The run's spec keeps the new limit, and an
    event records it. A run a detector stopped (on_loop = "stop") goes on: the
    loop it found was reported then, and only a new detection stops it again.
    Exit status 1 when the run ends with an error.
    """
    current, renderer = runner.CurrentRun(), None if quiet else _renderer(meta)
    listeners = [current] if renderer is None else [current, renderer]
    interjector = _interjector(renderer) if interactive else None
    limits = {
        "token_budget": token_budget,
        "time_limit": time_limit,
        "max_messages": max_messages,
        "cost_limit": cost_limit,
    }
    _run_to_end(
        lambda: conversations.aresume_run(run_id, db=db, listeners=listeners, interjector=interjector, **limits),
        current,
        renderer,
        db,
    )


LS_KEYS = (
    "id, title, participants, models, started_at, ended_at, status, stop_reason, stop_detail, "
    "parent_run_id, fork_at, experiment_id, messages, cost_usd, cost_unknown_messages, verdict"
)


@click.command(name="ls")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="How many runs (newest first).")
@click.option("--experiment", metavar="NAME", help="Only the runs of this experiment (`duologue batch`).")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--model", metavar="TEXT", help="Only runs with a model string containing TEXT (any case).")
@click.option(
    "--loop/--no-loop",
    "looped",
    default=None,
    help="Only runs that looped (an exact or near loop found, or stopped on one), or only those that did not.",
)
@click.option("--json", "as_json", is_flag=True, help=f"Print the runs as one JSON list ({LS_KEYS}).")
@width_option
@db_option
def ls_cmd(limit, experiment, status, model, looped, as_json, width, db) -> None:
    """List runs, newest first, with their status, stop reason, and what their stored analysis found.

    loop, attractor and end state are the verdict of each run's stored analysis
    of its final messages, as `show`, `report` and the viewer give it (`@N`:
    from message N; `-`: not analysed). The cost column is what each run's own
    generated messages cost ("≥" when some have no known price, "?" when none
    has). At a narrow width the least needed columns (parent, started,
    experiment, cost, title, then the attractor) are left out, and named below
    the table; ids, statuses and stop reasons are always shown whole. Piped,
    every column is shown and nothing is wrapped.
    """
    filters = {"experiment_id": experiment, "status": status, "model": model, "looped": looped}
    if experiment and Path(db).exists() and queries.find_experiment(experiment, db=db) is None:
        raise DuologueError(
            f"no experiment '{experiment}' in {db} (`duologue ls` lists the runs and their experiments)"
        )
    rows = queries.list_runs(db=db, limit=limit, **filters) if Path(db).exists() else []
    if as_json:
        print_json(rows)
        return
    if not rows:
        if any(v is not None for v in filters.values()):
            click.echo(f"no runs in {db} match")
        else:
            click.echo(f"no runs yet in {db}: start one with `duologue run` (two embedded models, offline)")
        return
    cols = (
        Col("run"),
        Col("title", priority=3, wrap=True, min_width=12),
        Col("msgs", justify="right"),
        Col("status"),
        Col("stop"),
        Col("loop", priority=1, wrap=True, min_width=7),
        Col(WORDS["attractor"], priority=2, wrap=True, min_width=9),
        Col(WORDS["end_state"], priority=1, wrap=True, min_width=9),
        Col("cost", priority=4, justify="right"),
        Col("experiment", priority=4, wrap=True),
        Col("started", priority=5),
        Col("parent", priority=6),
    )
    labels, _ = theme_labels_for(None)
    table = []
    for r in rows:
        verdict = Verdict.from_dict(r["verdict"])
        table.append(
            [
                r["id"],
                Text(r["title"]),
                str(r["messages"]),
                r["status"],
                r["stop_reason"] or "",
                verdict.loop_cell(),
                Text(verdict.attractor_cell(labels)),
                Text(verdict.end_state_text(labels)),
                cost_cell(r["cost_usd"], r["cost_unknown_messages"]),
                Text(r["experiment_id"] or ""),
                local_time(r["started_at"]),
                f"{r['parent_run_id']}@{r['fork_at']}" if r["parent_run_id"] else "",
            ]
        )
    c = console_for(width)
    print_table(c, cols, table, hint="or --json")
    for r in rows:  # a killed run whose process crashed says why (store/crashes.py)
        note = queries.killed_run_note(r["id"], db=db) if r["status"] == "killed" else None
        if note:
            c.print(Text(note, style="yellow"))
    if len(rows) == limit:
        c.print(Text(f"the newest {limit} shown: -n N shows more", style="dim"))


def local_time(iso: str | None) -> str:
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S") if iso else ""
