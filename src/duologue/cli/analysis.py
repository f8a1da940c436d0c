"""Commands that look across runs and settings: analyze, batch, report, themes, models."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import api
from .common import db_option, err_console, print_json, run_async
from .completion import complete_run_id_or_file


def _key_state(p) -> str:
    """Whether a provider's key is set, never its value: set, not set (and needed) or optional."""
    import os

    if os.environ.get(p.key_env or ""):
        return "set"
    return "not set" if p.key_required else "optional"


def _models_json() -> dict:
    from ..backends.embedded.catalogue import EMBEDDED_MODELS, embedded_model_path, engine_installed
    from ..backends.registry import PROVIDERS

    providers = [
        {
            "name": p.name,
            "model_string": f"{p.name}/<model>",
            "api": p.api,
            "key_env": p.key_env,
            "key": _key_state(p),
            "base_url": p.base_url,
            "description": p.description,
        }
        for p in PROVIDERS.values()
        if p.api != "local"
    ]
    embedded = []
    engine = engine_installed()
    for name, (package, _, description) in EMBEDDED_MODELS.items():
        path = embedded_model_path(name) if engine else None
        embedded.append(
            {
                "model_string": f"local/{name}",
                "description": description,
                "package": package.replace("_", "-"),
                "installed": path is not None,
                "path": str(path) if path else None,
            }
        )
    return {"providers": providers, "embedded": embedded}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the providers and embedded models as one JSON object.")
def models(as_json) -> None:
    """List the providers (base URL, key variable, whether it is set) and the embedded models."""
    from ..backends.embedded.catalogue import EMBEDDED_MODELS, INSTALL_LOCAL, embedded_model_path, engine_installed
    from ..backends.registry import PROVIDERS

    if as_json:
        print_json(_models_json())
        return
    c = Console(highlight=False)
    if not c.is_terminal:  # piped: whole lines, for grep
        c = Console(highlight=False, width=200)
    table = Table(box=None, header_style="bold")
    for col in ("model string", "key variable", "key", "base URL", "what"):
        table.add_column(col, no_wrap=col != "what")
    for p in PROVIDERS.values():
        if p.api == "local":
            continue
        key = _key_state(p)  # whether a key is set, never its value
        state = Text(key, style={"set": "green", "not set": "red"}.get(key, "dim"))
        where = p.base_url or ("(give --base-url-a/-b)" if p.api in ("openai", "anthropic") else "")
        table.add_row(f"{p.name}/<model>", p.key_env or "", state, where, Text(p.description))
    c.print(table)
    c.print()
    c.print(Text("embedded (local/…, run in-process, offline)", style="bold"))
    engine = engine_installed()
    for name, (_, _, description) in EMBEDDED_MODELS.items():
        path = embedded_model_path(name) if engine else None
        where = str(path) if path else f"not installed: {INSTALL_LOCAL}"
        c.print(Text(f"  local/{name}  {description}: {where}"))
    c.print(Text("  local/path/to/any.gguf  any GGUF file", style="dim"))
    c.print()
    c.print(Text("A base URL can be overridden per participant (--base-url-a/-b, or base_url in TOML).", style="dim"))


@click.command()
@click.argument("target", shell_complete=complete_run_id_or_file)
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON instead of the summary.")
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the PNG plots (default: runs/analysis/<run id or file name>).",
)
@click.option("--no-plots", is_flag=True, help="Do not write the PNG plots.")
@click.option(
    "--themes",
    "themes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A theme file (TOML) instead of the built-in themes; `duologue themes --toml` prints those.",
)
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

    from ..analysis import analysis_to_dict, format_summary, write_plots

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


@click.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the matrix and its size; run nothing.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the outcome (or with --dry-run the matrix) as one JSON object; no progress bar.",
)
@db_option
def batch(experiment_file, dry_run, as_json, db) -> None:
    """Run an experiment: every conversation of its matrix, concurrently.

    Re-running the same command resumes it: finished conversations are
    skipped, interrupted or killed ones continue, nothing is duplicated.
    Exit status 1 when any conversation ends with an error (their count on
    stderr); re-running resumes them.
    """
    from .. import batch as batchmod
    from ..spec import load_experiment_spec

    exp = load_experiment_spec(experiment_file)
    plans = batchmod.plan_experiment(exp)
    from ..backends.settings import pool_warnings  # settings asked for that a provider will not be sent

    sweeps = ["temperature"] if getattr(exp, "temperatures", None) else []
    for line in pool_warnings(exp.participants, sweeps=sweeps, seed="base_seed" in exp.model_fields_set):
        click.echo(line, err=True)
    if dry_run and as_json:
        cells = [{**row, "opener": exp.openers[row["opener"]]} for row in batchmod.describe_plan(plans)]
        print_json(
            {
                "experiment": exp.name,
                "conversations": len(plans),
                "max_messages": len(plans) * exp.max_messages,
                "cells": cells,
            }
        )
        return
    if dry_run:
        table = Table(title=f"{exp.name}: {len(plans)} conversations", box=None, header_style="bold")
        for col in ("pairing", "models", "opener", "system", "temperature", "repeats"):
            table.add_column(col)
        for row in batchmod.describe_plan(plans):
            opener = exp.openers[row["opener"]]
            table.add_row(
                Text(row["pairing"]),
                Text(row["models"]),
                Text(repr(opener[:40])),
                Text(str(row["system"] or "(own)")),
                str(row["temperature"] or "(own)"),
                str(row["repeats"]),
            )
        Console(highlight=False).print(table)
        click.echo(f"{len(plans)} conversations, up to {len(plans) * exp.max_messages} messages")
        return
    from ..progress import BatchProgressDisplay

    display = None if as_json else BatchProgressDisplay(exp.name)
    try:
        with display or contextlib.nullcontext():
            on_progress = display.update if display else None
            result = run_async(lambda: batchmod.arun_experiment(exp, db=db, on_progress=on_progress))
    except (KeyboardInterrupt, asyncio.CancelledError):
        err_console.print(Text(f"\ninterrupted: re-run `duologue batch {experiment_file}` to resume", style="yellow"))
        sys.exit(130)
    if as_json:
        _print_batch_json(result)
    else:
        _print_batch(result, experiment_file)
    if result.errors:
        n = len(result.errors)
        click.echo(
            f"{n} of {result.planned} conversation{'s' if result.planned != 1 else ''} ended with an error", err=True
        )
        sys.exit(1)


def _print_batch_json(result) -> None:
    t = result.totals
    print_json(
        {
            "experiment": result.experiment,
            "planned": result.planned,
            "skipped": result.skipped,
            "finished": result.finished,
            "errors": [{"run_id": run_id, "detail": detail} for run_id, detail in result.errors],
            "messages": t.messages,
            "completion_tokens": t.completion_tokens,
            "ended": {"finished": t.finished, "stopped_early": t.stopped_early, "errored": t.errored},
            "loops": t.loops,
            "near_loops": t.near_loops,
            "convergences": t.convergences,
            "attractors": t.attractors,
        }
    )


def _print_batch(result, experiment_file: Path) -> None:
    exp_name = result.experiment
    t = result.totals
    from ..progress import detection_counts, ended_counts

    ran = result.planned - result.skipped
    click.echo(
        f"{exp_name}: {ran} of {result.planned} conversations run ({result.skipped} already done): "
        f"{ended_counts(t)}; {t.messages} new messages"
    )
    click.echo(f"conversations with a detection: {detection_counts(t)}")
    for run_id, detail in result.errors:
        click.echo(f"  error in run {run_id}: {detail}")
    if result.errors:
        click.echo(f"re-run `duologue batch {experiment_file}` to resume the runs that failed")
    click.echo(f"report: duologue report {exp_name}")


@click.command()
@click.argument("experiment")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for EXPERIMENT-report.json and the plots (default: reports/EXPERIMENT beside the store, "
    "runs/reports/EXPERIMENT).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (what EXPERIMENT-report.json holds).")
@db_option
def report(experiment, output, as_json, db) -> None:
    """Statistics across an experiment's runs: loop rates, onsets, stop reasons, cost; survival plots.

    Writes EXPERIMENT-report.json (the report as JSON) and the plots (PNG,
    named EXPERIMENT-…) into the output folder.
    """
    folder = output or Path(db).parent / "reports" / experiment
    rep = api.experiment_report(experiment, folder, db=db)
    if as_json:
        print_json(rep)
        return
    _print_report(rep)


def _fmt_q(q) -> str:
    return "-" if q is None else f"{q[1]:g} [{q[0]:g}–{q[2]:g}]"


def _print_report(rep: dict) -> None:
    c = Console(highlight=False)
    c.print(Text(f"experiment {rep['experiment']}: {rep['runs']} runs", style="bold"))
    for key, label in (
        ("by_pairing", "pairing"),
        ("by_opener", "opener"),
        ("by_system", "system prompt"),
        ("by_temperature", "temperature"),
    ):
        if key not in rep:
            continue
        table = Table(box=None, header_style="bold", title=f"by {label}", title_justify="left")
        for col in (
            "group",
            "runs",
            "loop or near loop",
            "onset median [IQR]",
            "stop reasons",
            "tokens",
            "seconds",
            "tokens in loops",
            "saved (est.)",
        ):
            table.add_column(col)
        for g in rep[key]:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(g["stop_reasons"].items()))
            table.add_row(
                Text(g["group"]),
                str(g["runs"]),
                f"{g['looped']} ({g['loop_share']:.0%})",
                _fmt_q(g["onset_quartiles"]),
                reasons,
                str(g["prompt_tokens"] + g["completion_tokens"]),
                f"{g['seconds']:.1f}",
                str(g["tokens_in_loops"]),
                f"{g['tokens_saved']:.0f}",
            )
        c.print(table)
    _print_attractor_map(c, rep.get("attractors") or {})
    for path in rep["plots"]:
        c.print(Text(f"plot: {path}", style="dim"))


def _print_attractor_map(c: Console, att: dict) -> None:
    """Where the conversations end up (end states' shares), how soon (median entry), and their topics."""
    labels = att.get("labels") or {}

    def name(key: str) -> str:
        return labels.get(key, key)

    for key, label in (
        ("by_pairing", "pairing"),
        ("by_opener", "opener"),
        ("by_system", "system prompt"),
        ("by_temperature", "temperature"),
    ):
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


@click.command()
@click.option("--toml", "as_toml", is_flag=True, help="Print the built-in theme file, to copy and edit.")
@click.option(
    "--file",
    "themes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check and list a theme file of your own instead of the built-in one.",
)
def themes(as_toml, themes_file) -> None:
    """The attractor themes and topics that analyze, run and report look for.

    Use your own set with `analyze --themes FILE`, or `themes = "FILE"` under
    [detection.attractor] in a conversation or experiment TOML.
    """
    from importlib import resources

    from ..analysis.themes import load_themes

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
