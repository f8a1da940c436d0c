"""The report's plots split by what the experiment varied (issue 25, finding 4): one figure per plot and per
varied path (and the pairing), axes scaled to the data, legends outside the axes, a blank opener visible."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from analysis.semantic_cases import DEBATE, TECH
from duologue.analysis import plotting
from duologue.cli import cli

EXPERIMENT = """
name = "varied"
max_messages = 10
pairings = "all_with_self"

[[participants]]
name = "s"
model = "scripted/s"

[vary]
context.strategy = ["stop", "truncate"]
opener = [" ", "What is the most beautiful idea you know? Tell me at length, with every reason you have for it."]
"""
PLOTS = ("survival", "lengths", "attractors", "attractor-entry", "end-states")


def reply(n, view):
    said = [m.content for m in view if m.role != "system"]
    script = TECH if said[0].strip() else DEBATE
    return script[len(said) % len(script)] + f" ({len(said)})"


@pytest.fixture
def figures(monkeypatch):
    """Every figure the report saves, by file name, as it was when saved."""
    saved = {}
    original = plotting.save

    def keep(fig, path, bottom=0.0):
        out = original(fig, path, bottom)
        saved[path.name] = fig
        return out

    monkeypatch.setattr(plotting, "save", keep)
    return saved


def batch_and_report(tmp_path, scripted_models, experiment: str = EXPERIMENT) -> tuple[str, dict]:
    """Run the experiment on the scripted models and `report --json` it into tmp_path/rep: the db and the report."""
    scripted_models.reply = reply
    (tmp_path / "exp.toml").write_text(experiment)
    db = str(tmp_path / "d.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["batch", str(tmp_path / "exp.toml"), "--db", db]).exit_code == 0
    out = runner.invoke(cli, ["report", "varied", "--db", db, "-o", str(tmp_path / "rep"), "--json"])
    return db, json.loads(out.stdout)


def test_every_plot_is_split_by_the_pairing_and_by_each_varied_path(tmp_path, scripted_models, figures):
    db, rep = batch_and_report(tmp_path, scripted_models)
    assert rep["settings"] == ["pairing", "context.strategy", "opener"]
    assert set(rep["plots_by"]) == set(rep["settings"])
    suffix = {"pairing": "", "context.strategy": "-by-context-strategy", "opener": "-by-opener"}
    for setting, paths in rep["plots_by"].items():
        assert sorted(p.rsplit("/", 1)[1] for p in paths) == sorted(f"varied-{p}{suffix[setting]}.png" for p in PLOTS)
        assert all((tmp_path / "rep" / p.rsplit("/", 1)[1]).stat().st_size > 1000 for p in paths)

    def legend(name: str) -> list[str]:
        fig = figures[name]
        return [t.get_text() for lg in fig.legends for t in lg.get_texts()]

    # One curve per value of the path, not one per pairing; a blank opener named so that it shows.
    assert legend("varied-survival-by-context-strategy.png") == ["stop (n=2)", "truncate (n=2)"]
    opener = legend("varied-survival-by-opener.png")
    assert opener[0] == "' ' (n=2)" and opener[1].startswith("What is the most beautiful idea") and "…" in opener[1]
    assert legend("varied-survival.png") == ["s ↔ s (n=4)"]
    assert legend("varied-end-states-by-opener.png") == opener
    panels = [ax.get_title(loc="left") for ax in figures["varied-attractors-by-context-strategy.png"].axes]
    assert panels == ["stop (n=2)", "truncate (n=2)"]

    # The viewer's experiment page shows the same plots, each of every setting inline, none empty.
    from starlette.testclient import TestClient

    from duologue.web import create_app

    with TestClient(create_app(db)) as client:
        page = client.get("/experiments/varied").text
    for setting in rep["settings"]:
        block = page.split(f'<div class="plots" data-setting="{setting}">')
        assert len(block) == 3, setting  # the numbers' plots and the attractor map's
        images = [part.split("</div>", 1)[0] for part in block[1:]]
        sources = [src for part in images for src in re.findall(r'src="data:image/png;base64,([^"]*)"', part)]
        assert len(sources) == len(PLOTS) and all(len(src) > 1000 for src in sources), setting


def test_axes_are_scaled_to_the_data_and_legends_stay_off_the_axes(tmp_path, scripted_models, figures):
    _, rep = batch_and_report(tmp_path, scripted_models)
    topics = [v for g in rep["attractors"]["by_opener"] for v in g["topics"].values()]
    fig = figures["varied-end-states-by-opener.png"]
    top = fig.axes[0].get_xlim()[1]
    assert max(topics) < top <= max(max(topics) * 1.2, 0.05)  # not 1.0 for shares of a few percent
    for name, fig in figures.items():
        renderer = fig.canvas.get_renderer()
        for lg in fig.legends:
            box = lg.get_window_extent(renderer)
            for ax in fig.axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), name
        assert not any(ax.get_legend() for ax in fig.axes), name  # no legend drawn inside an axes


def test_a_long_label_is_cut_and_a_blank_one_shown():
    assert plotting.group_label(" ", 3) == "' ' (n=3)"
    assert plotting.group_label("x" * 100).endswith("…") and len(plotting.group_label("x" * 100)) == 48
    assert plotting.share_limit([0.02, 0.08]) == pytest.approx(0.092)
    assert plotting.share_limit([0.9]) == 1.0


def test_the_map_reads_each_runs_final_window_from_its_own_thresholds(tmp_path, scripted_models):
    from duologue.analysis.experiment_report import experiment_stats_by
    from duologue.store import Store

    db, _ = batch_and_report(tmp_path, scripted_models, EXPERIMENT + "\n[detection.attractor]\nfinal_window = 3\n")
    with Store(db, create=False) as store:
        _, report = experiment_stats_by(store, "varied")
    ends = report["_ends"]
    assert len(ends) == 4 and {r.window for r in ends} == {3}
