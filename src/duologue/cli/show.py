"""`duologue show`: a run's whole spec, its lineage, and its messages with every recorded event."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from .. import queries
from ..costs import describe_cost
from ..events import format_value
from ..exports import runs as run_exports
from ..verdict import theme_labels_for
from .common import db_option, print_json
from .completion import complete_run_id
from .layout import console_for, width_option
from .runs import local_time

# Shown on the participant's first line, in this order; every other setting follows on its own line.
FIRST_LINE = ("temperature", "seed")
# Shown apart (the name, the model), or never (a secret's value is never in a spec; these are long).
APART = ("name", "model", "system")
LIMITS = ("max_messages", "token_budget", "time_limit", "cost_limit", "end_marker", "end_on")
ACTIONS = ("on_loop", "on_near_loop", "on_convergence", "on_attractor")


@click.command()
@click.argument("run_id", shell_complete=complete_run_id)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run as JSON: the JSON export (spec, messages, analysis, events) and its lineage.",
)
@width_option
@db_option
def show(run_id, as_json, width, db) -> None:
    """Show a run: its whole spec, stop reason, lineage, and messages with their timings and events.

    Events (context trims with their summaries, injections, changes, detections
    and new limits) are printed where they happened. Piped, each message is one
    line: nothing is wrapped.
    """
    run = queries.load_run(run_id, db=db)
    if as_json:
        doc = json.loads(run_exports.export_run(run.id, "json", db=db))
        lineage = queries.run_lineage(run.id, db=db)
        doc["lineage"] = {
            "ancestors": [{"run_id": rid, "child_fork_at": at} for rid, at in lineage.ancestors],
            "forks": [{"run_id": rid, "fork_at": at} for rid, at in lineage.forks],
        }
        print_json(doc)
        return
    c = console_for(width)
    _print_header(c, run, db)
    # An imported run's opener is its first message, shown once: as message 1.
    first = run.messages[0] if run.messages else None
    opener_shown = not (run.source and first is not None and first.content == run.spec.get("opener"))
    _print_spec(c, run.spec, opener=opener_shown, models=run.models)
    _print_messages(c, run, queries.run_events(run.id, db=db))


def _print_header(c: Console, run, db) -> None:
    c.print(Text(f"# {run.title}", style="bold"))
    if run.status == "killed":
        note = queries.killed_run_note(run.id, db=db) or (
            f"its process is gone (killed?): continue it with `duologue resume {run.id}`"
        )
        c.print(Text(note, style="yellow"))
    c.print(
        Text(
            f"run {run.id}   status {run.status}   stop {run.stop_reason or '-'}"
            + (f" ({run.stop_detail})" if run.stop_detail else "")
        )
    )
    ended = local_time(run.ended_at.isoformat() if run.ended_at else None)
    c.print(f"started {local_time(run.started_at.isoformat())}   ended {ended}")
    if run.parent_run_id:
        c.print(f"forked from {run.parent_run_id} at message {run.fork_at}")
    lineage = queries.run_lineage(run.id, db=db)
    if len(lineage.ancestors) > 1:
        chain = " → ".join(f"{rid}@{at}" if at else rid for rid, at in lineage.ancestors)
        c.print(Text(f"lineage: {chain} → {run.id}"))
    if lineage.forks:
        c.print(Text("forks: " + ", ".join(f"{rid}@{at}" for rid, at in lineage.forks)))
    if run.source:
        c.print(f"imported from {run.source}")
    if any(not m.injected for m in run.messages):
        priced = f"   prices {run.price_data}" if run.price_data else ""
        c.print(Text(f"cost {describe_cost(run)}{priced}"))
    # The verdict of the run's stored analysis of its final messages; the events below are what the live
    # detectors saw at the time ("flagged live at message N").
    verdict = queries.run_verdict(run.id, db=db)
    if verdict.analysed:
        labels, _ = theme_labels_for(run.spec)
        c.print(Text(f"analysis: {verdict.line(labels)}"))
        if queries.analysis_outdated(run.id, db=db):
            c.print(Text(f"  (made by older rules: `duologue analyze {run.id}` makes it again)", style="dim"))
    elif run.status != "running":
        c.print(Text(f"analysis: none stored (`duologue analyze {run.id}` makes it)", style="dim"))


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A nested table as dotted keys (context.summarizer.model), empty tables and unset (None) values left out."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flat(v, f"{prefix}{k}.")
        elif v is not None and v != {} and v != []:
            out.append((f"{prefix}{k}", v))
    return out


def _settings(pairs) -> str:
    return "  ".join(f"{k} {format_value(v)}" for k, v in pairs)


def _print_spec(
    c: Console, spec: dict[str, Any], *, opener: bool = True, models: list[str | None] | None = None
) -> None:
    """Every setting of the stored spec: what it takes to repeat the run. A setting the spec does not
    hold (an imported run's sampling, its limits) is left out, not shown empty."""
    if not spec:
        return
    for i, p in enumerate(spec.get("participants", [])):
        first = "".join(f"  {key} {p[key]}" for key in FIRST_LINE if p.get(key) is not None)
        model = models[i] if models and i < len(models) else p.get("model")  # an imported one: as its file names it
        c.print(Text(f"  {p.get('name')}: {model}{first}"))
        rest = [(k, v) for k, v in _flat(p) if k.split(".")[0] not in (*APART, *FIRST_LINE)]
        if rest:
            c.print(Text(f"    {_settings(rest)}", style="dim"))
        if p.get("system") is not None:
            c.print(Text(f"    system: {p['system']}", style="dim"))
    if "opener" in spec and opener:
        c.print(Text(f"opener: {spec['opener']}"))
    # (A cost limit only when set: runs from before costs have none to show.)
    limits = [(k, spec[k]) for k in LIMITS if k in spec and not (k == "cost_limit" and spec[k] is None)]
    if limits:
        c.print(Text("limits: " + _settings((k.replace("_", " "), v) for k, v in limits)))
    actions = [(k, spec[k]) for k in ACTIONS if k in spec]
    if actions:
        c.print(Text("on detection: " + _settings(actions)))
    if spec.get("context"):
        c.print(Text("context: " + _settings(_flat(spec["context"]))))
    if spec.get("metadata"):
        c.print(Text("metadata: " + "  ".join(f"{k} {v}" for k, v in _metadata(spec["metadata"]))))
    known = {"participants", "opener", "title", *LIMITS, *ACTIONS, "context", "injections", "changes", "detection"}
    known |= {"metadata", "seed"}
    others = [(k, v) for k, v in spec.items() if k not in known and v is not None and v != [] and v != {}]
    if spec.get("seed") is not None:
        # Not a participant's: each one's own is on its line (the base is what a participant without one gets,
        # plus its position, and what draws a random turn order and a summary's sampling).
        others.insert(0, ("base seed", spec["seed"]))
    if others:
        c.print(Text(_settings(others)))
    if spec.get("detection"):
        c.print(Text("detection: " + _settings(_flat(spec["detection"])), style="dim"))
    for inj in spec.get("injections") or []:
        c.print(Text(f"injection at {inj.get('at')} as {inj.get('as')}: {inj.get('text')}"))
    for ch in spec.get("changes") or []:
        settings = _settings((k, v) for k, v in ch.items() if k not in ("at", "participant") and v is not None)
        c.print(Text(f"change at {ch.get('at')} for {ch.get('participant')}: {settings}"))


def _metadata(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """What the run's source says about it: short values as they are, a list of words joined, a long
    text or a table by its size (`show --json` has them whole)."""
    out: list[tuple[str, str]] = []
    for k, v in meta.items():
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            shown = ", ".join(v)
        elif isinstance(v, dict):
            shown = f"({len(v)} entr{'y' if len(v) == 1 else 'ies'}: show --json)"
        elif isinstance(v, str):
            shown = v if len(v) <= 80 and "\n" not in v else f"({len(v)} characters: show --json)"
        else:
            shown = format_value(v)
        out.append((k, shown))
    return out


def _print_messages(c: Console, run, events: list[dict[str, Any]]) -> None:
    from ..events import describe_events
    from ..terminal import TEXT_STYLES, format_message_meta

    described = describe_events(events)
    placed: dict[tuple[int | None, bool], list] = {}  # (message index, before it) -> its events, in order
    for ev in described:
        placed.setdefault((ev.message_index, ev.before), []).append(ev)

    def print_events(index: int | None, kinds_before: bool) -> None:
        for ev in placed.get((index, kinds_before), ()):
            for line in ev.lines():
                c.print(Text(line, style="dim yellow"))

    indexes = {m.index for m in run.messages}
    for m in run.messages:
        style = (
            TEXT_STYLES[run.participants.index(m.speaker) % len(TEXT_STYLES)]
            if m.speaker in run.participants
            else "white"
        )
        c.print()
        print_events(m.index, True)
        mark = "  injected" if m.injected and m.index > 1 else ""
        c.print(Text(f"### {m.speaker}", style="bold " + style), Text(f"  #{m.index}{mark}", style="dim"))
        c.print(Text(m.content, style=style))
        meta = format_message_meta(m)
        if meta:
            c.print(Text(meta, style="dim"))
        print_events(m.index, False)
    # Events of no message shown (a limit raised before the next message, a trim that stopped the run).
    rest = [ev for ev in described if ev.message_index not in indexes]
    if rest:
        c.print()
        for ev in rest:
            for line in ev.lines():
                c.print(Text(line, style="dim yellow"))
