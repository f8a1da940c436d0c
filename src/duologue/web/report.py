"""The experiment report in the viewer: the numbers of `duologue report`, with its plots inline."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from markupsafe import Markup

from ..store import Store


def experiment_report_html(store: Store, experiment, templates) -> Markup:
    """Tables per pairing and per varied setting, survival curves and lengths by turn (PNG as data: URIs)."""
    from ..analysis.experiment import grouped, write_experiment_plots
    from ..batch import experiment_stats_by

    stats, report = experiment_stats_by(store, experiment.id)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_experiment_plots(grouped(stats, "pairing"), Path(tmp), "experiment")
        images = {p.stem.rsplit("-", 1)[1]: base64.b64encode(p.read_bytes()).decode("ascii") for p in paths}
    tables = [(key[3:], report[key]) for key in ("by_pairing", "by_opener", "by_system", "by_temperature")
              if key in report]
    html = templates.get_template("_experiment_report.html").render(tables=tables, images=images)
    return Markup(html)  # rendered with autoescape: model and user text inside is escaped
