"""Commands that look across runs and settings: analyze, batch, report, themes, models."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from .. import queries
from ..costs import format_usd
from ..verdict import theme_labels_for
from ..vocabulary import WORDS, shown_text
from .common import db_option, err_console, print_json, run_async
from .completion import complete_run_id_or_file
from .layout import Cell, Col, console_for, is_piped, print_table, width_option


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
@width_option
def models(as_json, width) -> None:
    """List the providers (key variable, whether it is set, base URL) and the embedded models."""
    from ..backends.embedded.catalogue import EMBEDDED_MODELS, INSTALL_LOCAL, embedded_model_path, engine_installed
    from ..backends.registry import PROVIDERS

    if as_json:
        print_json(_models_json())
        return
    c = console_for(width)
    cols = (
        Col("model string"),
        Col("key variable"),
        Col("key"),  # whether a key is set, never its value
        Col("base URL", priority=2),
        Col("what", priority=1, wrap=True, min_width=24),
    )
    rows: list[list[Cell]] = []
    for p in PROVIDERS.values():
        if p.api == "local":
            continue
        key = _key_state(p)
        state = Text(key, style={"set": "green", "not set": "red"}.get(key, "dim"))
        where = p.base_url or ("(give --base-url-a/-b)" if p.api in ("openai", "anthropic") else "")
        rows.append([f"{p.name}/<model>", p.key_env or "", state, where, Text(p.description)])
    print_table(c, cols, rows, hint="or --json")
    c.print()
    c.print(Text("embedded (local/…, run in-process, offline)", style="bold"))
    engine = engine_installed()
    for name, (_, _, description) in EMBEDDED_MODELS.items():
        path = embedded_model_path(name) if engine else None
        c.print(Text(f"  local/{name}  {description}"))
        c.print(Text(f"    {path}" if path else f"    not installed: {INSTALL_LOCAL}", style="dim"))
    c.print(Text("  local/path/to/any.gguf  any GGUF file", style="dim"))
    if engine:  # (not read here: `models` loads no llama.cpp)
        c.print(Text("  `duologue doctor`: how llama.cpp runs on this CPU, and the weights auto picks", style="dim"))
    c.print()
    c.print(Text("Override a base URL per participant: --base-url-a/-b, or base_url in TOML.", style="dim"))


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
@width_option
@db_option
def analyze(target, as_json, plots_dir, no_plots, themes_file, width, db) -> None:
    """Find loops, convergence and attractor themes in a run id, a Markdown transcript or a JSON export.

    Prints a summary (participants, words per speaker, exact loop, near loop,
    semantic convergence, the attractor theme the conversation entered and
    stayed in, its end state, a theme strip with one mark per message, topics,
    top lexicon hits), writes plots as PNG, and stores the analysis with the
    run when TARGET is a run in the store.

    TARGET may also name an experiment or a collection: each of its runs is
    analysed again and stored (a line per run, and how many verdicts changed;
    no plots: `duologue report` draws the experiment's). That brings analyses
    made by older rules up to date (`show` says when one is).
    """
    import json as jsonlib

    from ..analysis import analysis_to_dict, format_summary, stored, write_plots
    from ..errors import DuologueError

    if not Path(target).is_file() and Path(db).exists() and queries.find_experiment(target, db=db) is not None:
        if plots_dir is not None:
            raise DuologueError(f"--plots: {target} is an experiment; `duologue report {target}` draws its plots")
        _analyze_experiment(target, as_json, themes_file, width, db)
        return
    run, stem = queries.load_target(target, db=db)
    if not Path(target).is_file():  # a run in the store: its stored embeddings, and keep the analysis with it
        analysis = stored.analyze_stored_run(run, db=db, themes=themes_file)
    else:
        analysis = stored.analyze_run(run, themes=themes_file)
    written = []
    if not no_plots:
        folder = plots_dir or Path(db).parent / "analysis" / stem
        folder.mkdir(parents=True, exist_ok=True)
        written = write_plots(analysis, [m.content for m in run.messages], folder, stem)
    if as_json:
        sys.stdout.write(jsonlib.dumps(analysis_to_dict(analysis), ensure_ascii=False, indent=2) + "\n")
        return
    c = console_for(width)
    c.print(Text(format_summary(analysis, strip_width=None if is_piped(c) else 60)))  # piped: the whole strip
    for path in written:
        c.print(Text(f"plot: {path}", style="dim"))


def _analyze_experiment(name: str, as_json: bool, themes_file, width, db) -> None:
    """Analyse every run of an experiment (or collection) again with its stored embeddings, keep each analysis,
    and print each run's verdict, marking those that changed."""
    from rich.progress import track

    from ..analysis import stored
    from ..analysis.report import analysis_verdict

    runs = queries.experiment_runs(name, db=db)
    steps: Iterable = runs
    if not as_json and Console(stderr=True).is_terminal:
        steps = track(runs, description=f"analysing {name}", console=Console(stderr=True), transient=True)
    out = []  # (run, verdict before, verdict now, whether a stored verdict changed)
    for run in steps:
        before = queries.run_verdict(run.id, db=db)
        after = analysis_verdict(stored.analyze_stored_run(run, db=db, themes=themes_file))
        out.append((run, before, after, before.analysed and before != after))
    changed = sum(1 for *_, differs in out if differs)
    if as_json:
        runs_json = [
            {"run_id": run.id, "verdict": after.as_dict(), "changed": differs} for run, _, after, differs in out
        ]
        print_json({"experiment": name, "runs": runs_json, "changed": changed})
        return
    c = console_for(width)
    for run, before, after, differs in out:
        labels, _ = theme_labels_for(run.spec)
        mark = f"   (was: {before.line(labels)})" if differs else ""
        c.print(Text(f"{run.id}  {after.line(labels)}{mark}"))
    c.print(Text(f"{name}: {len(out)} runs analysed, {changed} verdicts changed", style="dim"))


# `batch` asks before it may spend more than this many dollars (the estimate's high end); --confirm-above.
CONFIRM_ABOVE = 1.0


@click.command()
@click.argument("experiment_file", type=click.Path(path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the matrix, its size and its estimated tokens and cost (a range); run nothing.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the outcome (or with --dry-run the matrix and estimate) as one JSON object; no progress bar.",
)
@click.option("-y", "--yes", is_flag=True, help="Run without asking, whatever the estimate.")
@click.option(
    "--confirm-above",
    type=float,
    default=CONFIRM_ABOVE,
    show_default=True,
    metavar="USD",
    help="Ask before running when the conversations left to run may cost more than USD (the estimate's "
    "high end); without a terminal to ask on, refuse unless --yes.",
)
@width_option
@db_option
def batch(experiment_file, dry_run, as_json, yes, confirm_above, width, db) -> None:
    """Run an experiment: every conversation of its matrix, concurrently.

    Re-running the same command resumes it: finished conversations are
    skipped, interrupted or killed ones continue, nothing is duplicated.
    Before it runs, the conversations left to run are estimated (tokens and
    cost, as a range: replies of a typical length measured from the store, to
    every reply at max_tokens); above --confirm-above it asks first. With
    `cost_limit` in the file, every conversation stops once the experiment
    has spent that much. Exit status 1 when any conversation ends with an
    error (their count on stderr); re-running resumes them.
    """
    from .. import batch as batchmod
    from ..backends.settings import pool_warnings
    from ..experiment_spec import load_experiment_spec
    from ..spec_checks import entering_experiment, planned

    exp = entering_experiment(load_experiment_spec(experiment_file))
    plans = planned(exp)
    messages = sum(plan.spec.max_messages for plan in plans)
    rows = batchmod.describe_plan(exp, plans)
    for line in pool_warnings(exp.participants, sweeps=_swept(exp), seed="base_seed" in exp.model_fields_set):
        click.echo(line, err=True)  # settings asked for that a provider will not be sent
    from ..costs.estimate import estimate_with_store

    if dry_run:
        est = estimate_with_store([plan.spec for plan in plans], db)
    if dry_run and as_json:
        print_json(
            {
                "experiment": exp.name,
                "conversations": len(plans),
                "max_messages": messages,
                "cells": rows,
                "estimate": est.as_dict(),
                "cost_limit": exp.cost_limit,
            }
        )
        return
    if dry_run:
        settings = list(exp.settings)
        cols = (
            *(Col(k, priority=0 if i == 0 else 1 + min(i, 2), wrap=True, min_width=12) for i, k in enumerate(settings)),
            Col("repeats", justify="right"),
            Col("models", priority=3, wrap=True, min_width=16),
        )
        c = console_for(width)
        cut = None if is_piped(c) else 30  # on a terminal a long value (an opener) is cut short; piped, whole
        table_rows: list[list[Cell]] = [  # None: each participant's own
            [*(Text(_short(row.get(k), cut)) for k in settings), str(row.get("repeats")), Text(str(row.get("models")))]
            for row in rows
        ]
        print_table(c, cols, table_rows, title=f"{exp.name}: {len(plans)} conversations", hint="or --json")
        click.echo(f"{len(plans)} conversations, up to {messages} messages")
        for line in est.lines():
            click.echo(line)
        if exp.cost_limit is not None:
            click.echo(f"cost limit: {format_usd(exp.cost_limit)} across the experiment's conversations")
        return
    _confirm_cost(exp, plans, experiment_file, db, yes, confirm_above)
    from ..progress import BatchProgressDisplay

    display = None if as_json else BatchProgressDisplay(exp.name, console_for(width, stderr=True))
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
        _print_batch(result, experiment_file, console_for(width), theme_labels_for(exp.record())[0])
    if result.errors:
        n = len(result.errors)
        click.echo(
            f"{n} of {result.planned} conversation{'s' if result.planned != 1 else ''} ended with an error", err=True
        )
        sys.exit(1)


def _confirm_cost(exp, plans, experiment_file: Path, db: Path, yes: bool, above: float) -> None:
    """Above the threshold, ask (on a terminal) or refuse (without one) unless --yes."""
    from .. import batch as batchmod
    from ..costs.estimate import estimate_with_store
    from ..errors import DuologueError

    if yes:
        return
    left = batchmod.remaining(exp, plans, db)
    if not left:
        return
    est = estimate_with_store([plan.spec for plan in left], db)
    if est.high.cost <= above:
        return
    may = f"{format_usd(est.low.cost)}–{format_usd(est.high.cost)}"
    what = f"the {len(left)} conversation{'s' if len(left) != 1 else ''} left to run may cost {may}"
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DuologueError(
            f"{what} (above {format_usd(above)}): run with --yes to go on "
            f"(`duologue batch {experiment_file} --dry-run` shows the estimate)"
        )
    for line in est.lines():
        click.echo(line, err=True)
    if not click.confirm(f"{what}; run them?", default=False, err=True):
        raise SystemExit(1)


def _short(value, limit: int | None = 40) -> str:
    """A setting's value for a table: cut to `limit` characters (None: whole, as piped output is)."""
    if value is None:
        return "(own)"
    if not isinstance(value, str):
        return str(value)
    if not value.strip():
        return shown_text(value)  # a blank opener, visible
    return value if limit is None or len(value) <= limit else value[: limit - 1] + "…"


def _print_batch_json(result) -> None:
    from ..progress import flagged_live

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
            # The experiment's runs by their stored analyses (each run's verdict: verdict.py), as `report` counts
            # them; and what the live detectors flagged during this batch.
            "analysis": result.verdict_counts(),
            "verdicts": [{"run_id": run_id, **verdict.as_dict()} for run_id, verdict in result.verdicts],
            "flagged_live": flagged_live(t),
            "cost_usd": result.cost,
            "cost_unknown_messages": result.cost_unknown,
            "cost_limit": result.cost_limit,
            "held_back": result.held_back,
        }
    )


def _verdict_line(result, labels: dict[str, str]) -> str:
    """The experiment's runs by their stored analyses: the counts `report` gives."""
    n = result.verdict_counts()
    ends = ", ".join(f"{labels.get(k, k)} {v}" for k, v in n["end_states"].items()) or "-"
    unanalysed = n["runs"] - n["analysed"]
    return (
        f"its {n['runs']} runs by their analyses: {WORDS['looped']} {n['looped']} "
        f"({WORDS['exact_loop']} {n['exact_loop']} · {WORDS['near_loop']} {n['near_loop']}) · "
        f"{WORDS['attractor']} {n['attractor']} · {WORDS['end_state']}s {ends}"
        + (f" · not analysed {unanalysed}" if unanalysed else "")
    )


def _print_batch(result, experiment_file: Path, c: Console, labels: dict[str, str]) -> None:
    exp_name = result.experiment
    t = result.totals
    from ..progress import detection_counts, ended_counts

    ran = result.planned - result.skipped
    lines = [
        f"{exp_name}: {ran} of {result.planned} conversations run ({result.skipped} already done): "
        f"{ended_counts(t)}; {t.messages} new messages",
        _verdict_line(result, labels),
        f"{WORDS['flagged_live']} during this batch: {detection_counts(t)}",
        *(f"  error in run {run_id}: {detail}" for run_id, detail in result.errors),
    ]
    if result.errors:
        lines.append(f"re-run `duologue batch {experiment_file}` to resume the runs that failed")
    from ..costs import cost_cell

    limit = f", its cost limit {format_usd(result.cost_limit)}" if result.cost_limit is not None else ""
    unknown = f"; {result.cost_unknown} messages of unknown cost" if result.cost_unknown else ""
    lines.append(f"cost: {cost_cell(result.cost, result.cost_unknown)} (every run of the experiment{limit}{unknown})")
    if result.held_back:
        lines.append(
            f"{result.held_back} conversation{'s' if result.held_back != 1 else ''} not started: the cost limit "
            f"was reached; raise cost_limit in {experiment_file} and re-run to go on"
        )
    lines.append(f"report: duologue report {exp_name}")
    for line in lines:
        c.print(Text(line))


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
@click.option(
    "--labeller",
    metavar="PROVIDER/MODEL",
    help="Make the attractor map from this judge's message labels (`duologue judge`) instead of the built-in ones.",
)
@width_option
@db_option
def report(experiment, output, as_json, labeller, width, db) -> None:
    """Statistics across an experiment's runs: loop rates, onsets, stop reasons, cost; survival plots.

    Writes EXPERIMENT-report.json (the report as JSON) and the plots (PNG,
    named EXPERIMENT-…) into the output folder. The attractor map is made of
    the built-in analysis's message labels (or --labeller's); when a judge has
    labelled the runs too (`duologue judge`), the report shows how far the two
    agree: Cohen's κ per attractor family.
    """
    from ..analysis.experiment_report import write_experiment_report

    folder = output or Path(db).parent / "reports" / experiment
    rep = write_experiment_report(experiment, folder, db=db, labeller=labeller)
    if as_json:
        print_json(rep)
        return
    _print_report(rep, console_for(width))


def _swept(exp) -> list[str]:
    """The participant settings an experiment varies (`temperature = [...]`, `participants.x.temperature = [...]`)."""
    from ..experiment_spec import PARTICIPANT_FIELDS

    return sorted(
        {
            a.path.rsplit(".", 1)[-1]
            for a in exp.axes()
            if a.path.split(".")[0] in (*PARTICIPANT_FIELDS, "participants") and any(v is not None for v in a.values)
        }
    )


def _splits(rep: dict) -> list[tuple[str, list[dict]]]:
    """The settings a report (or its attractor map) is split by (pairing, then each varied path), each
    with its groups."""
    return [(k.removeprefix("by_"), groups) for k, groups in rep.items() if k.startswith("by_")]


def _fmt_q(q) -> str:
    return "-" if q is None else f"{q[1]:g} [{q[0]:g}–{q[2]:g}]"


REPORT_COLUMNS = (
    Col("group", wrap=True, min_width=12),
    Col("runs", justify="right"),
    Col(WORDS["looped"].replace(" or ", " or\n")),
    Col("onset\nmedian [IQR]", priority=1),
    Col("stop\nreasons", priority=2, wrap=True),
    Col("tokens", priority=3, justify="right"),
    Col(WORDS["conversation_seconds"], priority=5, justify="right"),
    Col("tokens\nin loops", priority=4, justify="right"),
    Col("saved\n(est.)", priority=4, justify="right"),
    Col("cost", priority=1, justify="right"),
    Col("per\nconversation", priority=3, justify="right"),
    Col("per\nmessage", priority=4, justify="right"),
)
MAP_COLUMNS = (
    Col("group", wrap=True, min_width=12),
    Col("runs", justify="right"),
    Col("end states\n(share of runs)", wrap=True, min_width=16),
    Col("entered", priority=1, justify="right"),
    Col("median\nentry", priority=2, wrap=True),
    Col("topics", priority=3, wrap=True, min_width=16),
)


def _print_report(rep: dict, c: Console) -> None:
    cut = None if is_piped(c) else 60
    c.print(Text(f"experiment {rep['experiment']}: {rep['runs']} runs", style="bold"))
    c.print(
        Text(
            f"{WORDS['wall_seconds']} {rep['wall_seconds']:.1f} s (while some run of it was going) · "
            f"{WORDS['conversation_seconds']} {rep['overall']['conversation_seconds']:.1f} "
            "(every run's generation time, summed: runs side by side count each)"
        )
    )
    for label, groups in _splits(rep):
        rows: list[list[Cell]] = []
        for g in groups:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(g["stop_reasons"].items()))
            rows.append(
                [
                    Text(_short(g["group"], cut)),
                    str(g["runs"]),
                    f"{g['looped']} ({g['loop_share']:.0%})",
                    _fmt_q(g["onset_quartiles"]),
                    reasons,
                    str(g["prompt_tokens"] + g["completion_tokens"]),
                    f"{g['conversation_seconds']:.1f}",
                    str(g["tokens_in_loops"]),
                    f"{g['tokens_saved']:.0f}",
                    *_group_costs(g),
                ]
            )
        print_table(c, REPORT_COLUMNS, rows, title=f"by {label}", hint="or --json")
    _print_attractor_map(c, rep.get("attractors") or {}, cut)
    _print_agreements(c, rep.get("agreement") or [])
    for path in rep["plots"]:
        c.print(Text(f"plot: {path}", style="dim"))


def _group_costs(g: dict) -> list[str]:
    """A report group's cost in all ("≥" when some messages' cost is unknown, "?" when every one's is), per
    conversation and per message."""
    from ..costs import cost_cell

    per = [g.get("cost_per_conversation"), g.get("cost_per_message")]  # of the messages with a known cost
    return [
        cost_cell(g.get("cost_usd", 0.0), g.get("cost_unknown_messages", 0)),
        *("?" if v is None else format_usd(v) for v in per),
    ]


def _print_attractor_map(c: Console, att: dict, cut: int | None = 60) -> None:
    """Where the conversations end up (end states' shares), how soon (median entry), and their topics."""
    labels = att.get("labels") or {}

    def name(key: str) -> str:
        return labels.get(key, key)

    for label, groups in _splits(att):
        rows: list[list[Cell]] = []
        for g in groups:
            ends = ", ".join(f"{name(k)} {v:.0%}" for k, v in g["end_states"].items())
            entry = ", ".join(f"{name(k)} {v:g}" for k, v in g["median_entry"].items()) or "-"
            topics = ", ".join(f"{name(k)} {v:.0%}" for k, v in list(g["topics"].items())[:3]) or "-"
            group = Text(_short(g["group"], cut))
            rows.append([group, str(g["runs"]), Text(ends), f"{g['entered']}", Text(entry), Text(topics)])
        who = att.get("labeller", "built-in")
        print_table(c, MAP_COLUMNS, rows, title=f"attractor map by {label} (labels: {who})", hint="or --json")


def _print_agreements(c: Console, agreements: list[dict]) -> None:
    """Each judge's agreement with the built-in labels: Cohen's κ per family the one or the other used."""
    from ..analysis.agreement import format_kappa

    cols = (
        Col("family", wrap=True, min_width=12),
        Col("built-in", justify="right"),
        Col("judge", justify="right"),
        Col("both", justify="right"),
        Col("κ", justify="right"),
    )
    for a in agreements:
        rows: list[list[Cell]] = [
            [Text(f["label"]), str(f["first"]), str(f["second"]), str(f["both"]), format_kappa(f["kappa"])]
            for f in a["families"]
            if f["first"] or f["second"]
        ]
        title = (
            f"agreement of built-in and {a['second']} over {a['messages']} messages "
            f"(Cohen's κ; overall {format_kappa(a['overall'])})"
        )
        print_table(c, cols, rows, title=title, hint="or --json")


@click.command()
@click.option("--toml", "as_toml", is_flag=True, help="Print the built-in theme file, to copy and edit.")
@click.option(
    "--file",
    "themes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check and list a theme file of your own instead of the built-in one.",
)
@width_option
def themes(as_toml, themes_file, width) -> None:
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
    cols = (
        Col("id"),
        Col("label", wrap=True, min_width=12),
        Col("kind"),
        Col("family", priority=2),
        Col("by", priority=1),
        Col("description", wrap=True, min_width=20),
    )
    rows: list[list[Cell]] = []
    for t in theme_set.themes:
        how = "rule" if t.rule else f"{len(t.phrases)} phrases"
        family = theme_set.label(t.family) if t.family else ""
        kind = t.kind.replace("end_state", "end state")
        rows.append([t.id, Text(t.label), kind, Text(family), how, Text(t.description)])
    # On a terminal the descriptions wrap; piped, each theme is one line.
    console = console_for(width)
    print_table(console, cols, rows, title=f"themes ({theme_set.source})")
    if theme_set.invitation:
        words = ", ".join(f'"{w}"' for w in theme_set.invitation)
        console.print(Text(f"invitation (an opener asking for a family in these makes it the topic): {words}"))
