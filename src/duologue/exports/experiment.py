"""An experiment's runs, messages and per-message metrics as tables (pandas), written as csv, parquet or
jsonl files (`duologue export --experiment`)."""

from __future__ import annotations

from pathlib import Path

from ..analysis.experiment_report import report_settings
from ..errors import DuologueError
from ..store import DEFAULT_DB, MessageRow, Store

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

    from ..analysis.metrics import compute_metrics

    experiment = store.require_experiment(name)
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
    stored, settings = report_settings(experiment.spec)
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


def write_experiment_tables(name: str, fmt: str, folder: Path, *, db: str | Path = DEFAULT_DB) -> list[Path]:
    """An experiment's runs, messages and metrics as csv, parquet or jsonl tables in `folder`."""
    with Store(db, create=False) as store:
        return export_experiment(store, name, fmt, folder)
