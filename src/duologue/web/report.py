"""The experiment report in the viewer: the numbers of `duologue report`, with its plots inline."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from markupsafe import Markup

from ..store import Store
from ..vocabulary import WORDS, shown_text


def experiment_report_html(store: Store, experiment, templates) -> Markup:
    """Tables per pairing and per varied setting, survival curves and lengths by turn, and the
    attractor map: where the runs end up, per pairing and varied setting (PNG as data: URIs)."""
    from ..analysis.experiment_report import experiment_stats_by, write_report_plots

    stats, report = experiment_stats_by(store, experiment.id)
    ends = report.pop("_ends", [])  # the runs' RunEnd objects: for the plots only
    family_of = report.pop("_family_of", {})
    attractors = report.get("attractors") or {}
    labels = attractors.get("labels") or {}
    settings = report.get("settings") or []  # the pairing, then each varied path
    with tempfile.TemporaryDirectory() as tmp:
        plots = write_report_plots(stats, ends, report, Path(tmp), "experiment", family_of)
        # Per setting, each plot by its kind ("survival", "attractor-entry", …)
        images = {
            setting: {kind: base64.b64encode(p.read_bytes()).decode("ascii") for kind, p in paths.items()}
            for setting, paths in plots.items()
        }
    tables = [(s, report[f"by_{s}"]) for s in settings]
    attractor_tables = [(k.removeprefix("by_"), v) for k, v in attractors.items() if k.startswith("by_")]
    # One row per run: its varied values, a column per varied path.
    varied = [s for s in settings if s != "pairing"]
    cells = [(r.run_id, [r.cell.get(s) for s in ["pairing", *varied]]) for r in stats]
    html = templates.get_template("_experiment_report.html").render(
        tables=tables,
        cell_columns=["pairing", *varied],
        cells=cells,
        images=images,
        attractor_tables=attractor_tables if ends else [],
        overall=attractors.get("overall") if ends else None,
        labeller=attractors.get("labeller", "built-in"),
        agreements=report.get("agreement") or [],
        label=lambda k: labels.get(k, k),
        shown=shown_text,
        looped=WORDS["looped"],
        seconds_words=WORDS["conversation_seconds"],
        wall_words=WORDS["wall_seconds"],
        wall_seconds=report.get("wall_seconds", 0.0),
        conversation_seconds=report["overall"]["conversation_seconds"],
    )
    return Markup(html)  # rendered with autoescape: model and user text inside is escaped
