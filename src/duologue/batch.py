"""Experiments: a matrix of conversations run concurrently, resumably.

An experiment file names a pool of participants and the settings to sweep.
`plan_experiment` expands it into one `PlannedConversation` per cell and
repeat, each with a seed derived from the base seed and the cell, so the plan
is the same every time it is computed. `arun_experiment` runs what the store
does not have yet: finished runs are skipped, interrupted or killed ones
resumed, missing ones started — the store's unique (experiment, cell) index
makes a duplicate impossible.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .api import TranscriptWriter, _pid_alive, _store_analysis, default_watchers
from .backends.embedded.pool import EmbeddedPool, conversation_scope, embedded_streams, shards_for
from .backends.embedded.weights import complete_embedded
from .backends.registry import BackendFactory, check_participant
from .engine import Conversation, RunListener
from .errors import DuologueError
from .experiment_spec import (
    ExperimentSpec,
    PlannedConversation,
    derive_seed,
    load_experiment_spec,
    pairings,
    plan_experiment,
)
from .progress import BatchTotals, _Counter
from .store import DEFAULT_DB, MessageRow, Store, cell_key

__all__ = [
    "BatchResult",
    "ExperimentSpec",
    "PlannedConversation",
    "arun_experiment",
    "derive_seed",
    "experiment_report",
    "experiment_tables",
    "load_experiment_spec",
    "pairings",
    "plan_experiment",
    "run_experiment",
]
from .sync import run_sync

# Seconds between rewrites of a running conversation's transcript file in a batch
# (each rewrite renders the whole transcript; the store has every message at once).
TRANSCRIPT_INTERVAL = 5.0

# Conversations in flight per provider when the experiment file does not say. Embedded ones
# share one engine that decodes their next tokens together (bench/concurrency.py).
DEFAULT_CONCURRENCY = {"local": 8, "default": 8}


@dataclass
class BatchResult:
    experiment: str
    planned: int
    skipped: int
    finished: int
    errors: list[tuple[str, str]]  # (run id, detail)
    totals: BatchTotals


def _check_experiment_record(store: Store, exp: ExperimentSpec) -> None:
    data = exp.record()
    existing = store.get_experiment(exp.name)
    if existing is None:
        store.create_experiment(exp.name, exp.name, data)
        return
    # The stored record read by today's model, so a setting added to duologue since, left unset, is no
    # change, and an older duologue's record of the same file is the same record.
    stored = stored_experiment(existing.spec)
    if (stored.record() if stored else existing.spec) != data:
        raise DuologueError(
            f"experiment '{exp.name}' is already in {store.path} with other settings; "
            "give the changed experiment another name"
        )


def stored_experiment(spec: dict[str, Any]) -> ExperimentSpec | None:
    """The experiment a stored record describes; None when today's duologue cannot read it."""
    try:
        return ExperimentSpec.model_validate(spec)
    except ValidationError:
        return None


async def arun_experiment(
    exp: ExperimentSpec,
    *,
    db: str | Path = DEFAULT_DB,
    on_progress=None,
    listeners: Iterable[RunListener] = (),
    make_backend: BackendFactory | None = None,
) -> BatchResult:
    """Run every conversation of the experiment the store does not have finished yet.

    `make_backend` makes each participant's backend instead of the provider registry (which then
    checks nothing: the factory answers for its models)."""
    plans = plan_experiment(exp)
    for p in exp.participants if make_backend is None else ():
        check_participant(p)  # models, files and keys, before anything is written
    limits = {**DEFAULT_CONCURRENCY, **exp.concurrency}
    with Store(db) as store:
        _check_experiment_record(store, exp)
        existing = store.experiment_runs(exp.name)
        todo: list[tuple[PlannedConversation, str | None]] = []
        for plan in plans:
            found = existing.get(plan.key)
            if found is None:
                todo.append((plan, None))
                continue
            run_id, status, pid = found.run_id, found.status, found.pid
            if status == "finished":
                continue
            if status == "running" and _pid_alive(pid):
                raise DuologueError(f"experiment '{exp.name}' is being run by process {pid} (run {run_id})")
            todo.append((plan, run_id))

        totals = BatchTotals(total=len(plans), skipped=len(plans) - len(todo))
        notify = on_progress or (lambda totals: None)
        counter = _Counter(totals, lambda: notify(totals))
        notify(totals)
        semaphores = {name: asyncio.Semaphore(n) for name, n in limits.items()}
        errors: list[tuple[str, str]] = []

        async def one(plan: PlannedConversation, run_id: str | None) -> None:
            async with AsyncExitStack() as stack:
                for provider in plan.providers:  # sorted: no two tasks wait on each other in a cycle
                    await stack.enter_async_context(semaphores.get(provider, semaphores["default"]))
                totals.running += 1
                totals.max_running = max(totals.max_running, totals.running)
                notify(totals)
                try:
                    run = store.get_run(run_id) if run_id else None
                    spec = complete_embedded(plan.spec)  # the weights the batch's pool runs, recorded
                    watchers = default_watchers(spec)
                    conv = Conversation(
                        spec,
                        store,
                        run=run,
                        experiment_id=exp.name,
                        experiment_cell=plan.cell,
                        listeners=[TranscriptWriter(db, min_interval=TRANSCRIPT_INTERVAL), counter, *listeners],
                        watchers=watchers,
                        make_backend=make_backend,
                    )
                    with conversation_scope(conv.run.id):  # its participants on one shard of the pool
                        run = await conv.run_to_end()
                    _store_analysis(store, run, watchers)
                    if run.status == "error":
                        errors.append((run.id, run.stop_detail or "error"))
                    counter.ended(run)
                except DuologueError as err:
                    errors.append((run_id or "-", str(err)))
                    counter.ended(None)
                finally:
                    totals.running -= 1
                    totals.done += 1
                    notify(totals)

        # Embedded participants of the conversations in flight share a llama context and decode together.
        local = min(limits.get("local", 1), len(todo))
        async with EmbeddedPool(embedded_streams([plan.spec for plan, _ in todo], local), shards_for(local), local):
            await asyncio.gather(*(one(plan, run_id) for plan, run_id in todo))
        stored = store.experiment_runs(exp.name)
        finished = sum(1 for plan in plans if (cell := stored.get(plan.key)) and cell.status == "finished")
    totals.errors = len(errors)
    return BatchResult(exp.name, len(plans), totals.skipped, finished, errors, totals)


def run_experiment(exp: ExperimentSpec, **kwargs) -> BatchResult:
    """arun_experiment from sync code; works inside a running event loop too (a notebook)."""
    return run_sync(arun_experiment(exp, **kwargs))


def describe_plan(exp: ExperimentSpec, plans: list[PlannedConversation]) -> list[dict[str, Any]]:
    """One row per cell (repeats folded), its varied values as shown (openers as text), for --dry-run."""
    rows: dict[str, dict[str, Any]] = {}
    for plan in plans:
        cell = {k: v for k, v in plan.cell.items() if k != "repeat"}
        key = cell_key(cell)
        row = rows.setdefault(
            key,
            {**exp.shown_cell(cell), "models": " ↔ ".join(p.model for p in plan.spec.participants), "repeats": 0},
        )
        row["repeats"] += 1
    return list(rows.values())


def cpu_seconds() -> float:
    """This process's CPU time: what the harness itself costs, the servers excluded."""
    t = os.times()
    return t.user + t.system


# -- reports and tables ----------------------------------------------------------


def load_experiment_stats(store: Store, name: str, ends: list | None = None):
    """RunStats for every run of the experiment, from the store alone. Given a list `ends`, it is
    filled with each run's place on the attractor map (analysis.attractors.RunEnd)."""
    from .analysis.attractors import run_end
    from .analysis.experiment import run_stats
    from .analysis.text import words

    store.require_experiment(name)
    by_run: dict[str, list[dict[str, Any]]] = {}
    themes: dict[str, list[tuple[str | None, str | None, str]]] = {}
    for m in store.experiment_messages(name):
        by_run.setdefault(m.run_id, []).append(
            {
                "idx": m.message_index,
                "prompt_tokens": m.prompt_tokens,
                "completion_tokens": m.completion_tokens,
                "latency": m.latency,
                "words": len(words(m.content)),
            }
        )
        themes.setdefault(m.run_id, []).append((m.theme, m.topic, m.content))
    stats = []
    for run in store.experiment_run_records(name):
        run_row: dict[str, Any] = {
            "id": run.id,
            "status": run.status,
            "stop_reason": run.stop_reason,
            "max_messages": run.spec.get("max_messages"),
            # A run added to the experiment by hand has no cell: its title stands for its pairing.
            "cell": run.cell if run.cell else {"pairing": run.title},
        }
        stats.append(run_stats(run_row, by_run.get(run.id, []), run.loops))
        if ends is not None:
            msgs = themes.get(run.id, [])
            sem = run.semantic
            window = int((run.spec.get("detection") or {}).get("attractor", {}).get("final_window", 6))
            ends.append(
                run_end(
                    run.id,
                    run_row["cell"],
                    sem.end_state,
                    sem.attractor,
                    sem.attractor_onset,
                    [t for t, _, _ in msgs],
                    [tp for _, tp, _ in msgs],
                    [c for _, _, c in msgs[-window:]],
                )
            )
    return stats


# What a report splits an older experiment by (one whose record today's duologue cannot read).
REPORT_SETTINGS = ("pairing", "opener", "system", "temperature")


def report_settings(exp_spec: dict[str, Any]) -> tuple[ExperimentSpec | None, list[str]]:
    """The stored experiment, and the settings its report splits the runs by: the pairing, then every
    varied path. A collection of imported runs (`import --experiment`) has no experiment file: its record
    names its settings (the pairing, the template)."""
    if exp_spec.get("collection"):
        return None, [str(s) for s in exp_spec.get("settings") or ["pairing"]]
    stored = stored_experiment(exp_spec)
    return stored, (stored.settings if stored else list(REPORT_SETTINGS))


def experiment_stats_by(store: Store, name: str) -> tuple[list, dict[str, Any]]:
    """The runs' stats, and the report's numbers: overall, by each setting that varies, survival per pairing."""
    from dataclasses import asdict

    from .analysis.attractors import attractor_group, cluster_unknown, entry_survival, grouped_ends, share_by_turn
    from .analysis.experiment import group_stats, grouped, survival_curve
    from .analysis.semantic import theme_labels
    from .analysis.themes import load_themes

    ends: list = []
    stats = load_experiment_stats(store, name, ends)
    exp_spec = store.require_experiment(name).spec
    stored, settings = report_settings(exp_spec)
    if stored is not None:
        for r in [*stats, *ends]:  # each varied value as shown: an opener by its text, not its position
            r.cell = stored.shown_cell(r.cell)
    report: dict[str, Any] = {"experiment": name, "runs": len(stats), "overall": asdict(group_stats("all", stats))}
    report["settings"] = []
    for setting in settings:
        groups = grouped(stats, setting)
        if len(groups) > 1 or setting == "pairing":
            report["settings"].append(setting)
            report[f"by_{setting}"] = [asdict(group_stats(g, runs)) for g, runs in groups.items()]
    report["survival"] = {g: survival_curve(runs) for g, runs in grouped(stats, "pairing").items()}
    # The attractor map: where the conversations end up, per pairing and per varied setting.
    cluster_unknown(ends)
    theme_file = ((exp_spec.get("detection") or {}).get("attractor") or {}).get("themes")
    try:
        labels = theme_labels(load_themes(theme_file))  # themes' and families' labels
    except DuologueError:
        labels = {}
    attractors: dict[str, Any] = {"labels": labels, "overall": asdict(attractor_group("all", ends))}
    for setting in settings:
        end_groups = grouped_ends(ends, setting)
        if len(end_groups) > 1 or setting == "pairing":
            attractors[f"by_{setting}"] = [asdict(attractor_group(g, group)) for g, group in end_groups.items()]
    by_pairing = grouped_ends(ends, "pairing")
    attractors["entry_survival"] = {g: entry_survival(runs) for g, runs in by_pairing.items()}
    attractors["share_by_turn"] = {g: share_by_turn(runs) for g, runs in by_pairing.items()}
    attractors["runs"] = [
        {"run_id": r.run_id, "end_state": r.shown_end, "attractor": r.attractor, "entry": r.entry} for r in ends
    ]
    report["attractors"] = attractors
    report["_ends"] = ends  # for the plots; not written to JSON
    return stats, report


def experiment_report(store: Store, name: str, folder: Path) -> dict[str, Any]:
    """Aggregate the experiment, write its plots and `<name>-report.json` into `folder`, return the report."""
    import json

    from .analysis.attractors import grouped_ends, write_attractor_plots
    from .analysis.experiment import grouped, write_experiment_plots

    stats, report = experiment_stats_by(store, name)
    ends = report.pop("_ends")
    report["plots"] = [str(p) for p in write_experiment_plots(grouped(stats, "pairing"), folder, name)]
    report["plots"] += [
        str(p)
        for p in write_attractor_plots(grouped_ends(ends, "pairing"), report["attractors"]["labels"], folder, name)
    ]
    (folder / f"{name}-report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return report


RUN_COLUMNS = [
    "run_id",
    "title",
    "participants",
    "models",
    "started_at",
    "ended_at",
    "status",
    "stop_reason",
    "stop_detail",
]


def experiment_tables(store: Store, name: str):
    """runs, messages and per-message metrics of an experiment as pandas DataFrames."""
    import json
    from dataclasses import astuple, fields

    import pandas as pd

    from .analysis.metrics import compute_metrics

    store.require_experiment(name)
    records = store.experiment_run_records(name)
    runs = pd.DataFrame.from_records(
        [
            (
                r.id,
                r.title,
                json.dumps(r.participants, ensure_ascii=False),
                json.dumps(r.models, ensure_ascii=False),
                r.started_at,
                r.ended_at,
                r.status,
                r.stop_reason,
                r.stop_detail,
            )
            for r in records
        ],
        columns=RUN_COLUMNS,
        coerce_float=True,
    )
    # One column per varied path (an opener as its text), after the pairing; then the repeat.
    stored, settings = report_settings(store.require_experiment(name).spec)
    cells = [(stored.shown_cell(r.cell) if stored else r.cell) if r.cell else {} for r in records]
    for key in (*settings, "repeat"):
        runs[key] = [c.get(key) for c in cells]
    runs["loop_period"] = [r.loops.exact.period if r.loops.exact else None for r in records]
    runs["loop_onset"] = [r.loops.exact.onset if r.loops.exact else None for r in records]
    runs["near_loop_onset"] = [r.loops.near.onset if r.loops.near else None for r in records]
    for column in ("end_state", "attractor", "attractor_onset", "convergence_onset", "convergence_strength"):
        runs[column] = [getattr(r.semantic, column) for r in records]
    messages = pd.DataFrame.from_records(
        [astuple(m) for m in store.experiment_messages(name)],
        columns=[f.name for f in fields(MessageRow)],
        coerce_float=True,
    )
    metric_rows = []
    for run_id, group in messages.groupby("run_id", sort=False):
        for m in compute_metrics(list(zip(group["speaker"], group["content"], strict=True))):
            row = {"run_id": run_id, "message_index": m.index, **{k: v for k, v in vars(m).items() if k != "index"}}
            row["lexicon_hits"] = json.dumps(row.get("lexicon_hits") or {}, ensure_ascii=False)
            metric_rows.append(row)
    metrics = pd.DataFrame(metric_rows)
    return {"runs": runs, "messages": messages, "metrics": metrics}


def export_experiment(store: Store, name: str, fmt: str, folder: Path) -> list[Path]:
    tables = experiment_tables(store, name)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for table, df in tables.items():
        path = folder / f"{name}-{table}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        elif fmt == "parquet":
            df.to_parquet(path, index=False)
        elif fmt == "jsonl":
            df.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            raise DuologueError(f"unknown table format '{fmt}' (csv, parquet or jsonl)")
        paths.append(path)
    return paths
