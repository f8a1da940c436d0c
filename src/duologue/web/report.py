"""The experiment report in the viewer: the numbers of `duologue report`, with its plots inline."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from markupsafe import Markup

from ..store import Store


def experiment_report_html(store: Store, experiment, templates) -> Markup:
    """Tables per pairing and per varied setting, survival curves and lengths by turn, and the
    attractor map: where the runs end up, per pairing and varied setting (PNG as data: URIs)."""
    from ..analysis.attractors import grouped_ends, write_attractor_plots
    from ..analysis.experiment import grouped, write_experiment_plots
    from ..analysis.experiment_report import experiment_stats_by

    stats, report = experiment_stats_by(store, experiment.id)
    ends = report.pop("_ends", [])  # the runs' RunEnd objects: for the plots only
    attractors = report.get("attractors") or {}
    labels = attractors.get("labels") or {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_experiment_plots(grouped(stats, "pairing"), Path(tmp), "experiment")
        if ends:
            labeller = attractors.get("labeller", "built-in")
            paths += write_attractor_plots(grouped_ends(ends, "pairing"), labels, Path(tmp), "experiment", labeller)
        # experiment-survival.png -> "survival", experiment-attractor-entry.png -> "attractor-entry"
        images = {p.stem.removeprefix("experiment-"): base64.b64encode(p.read_bytes()).decode("ascii") for p in paths}
    settings = report.get("settings") or []  # the pairing, then each varied path
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
    )
    return Markup(html)  # rendered with autoescape: model and user text inside is escaped
