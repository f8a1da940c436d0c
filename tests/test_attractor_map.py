"""An experiment's attractor map, end to end on scripted conversations: report, JSON, tables."""

from __future__ import annotations

import json

import pytest

from analysis.semantic_cases import DEBATE, FAREWELL_SPIRAL, GRATITUDE_DRIFT, TECH
from duologue.analysis.experiment_report import experiment_report
from duologue.batch import run_experiment
from duologue.exports.experiment import experiment_tables
from duologue.store import Store
from helpers import script_reply, scripted_pair

SCRIPTS = {
    "Tell me about B-trees.": TECH + GRATITUDE_DRIFT,
    "Let's part soon.": TECH[:6] + FAREWELL_SPIRAL + ["Farewell!"] * 2,
    "Debate: monolith or microservices?": DEBATE + DEBATE[:4],
}


def test_report_maps_where_the_runs_end_up(tmp_path, scripted_models):
    scripted_models.reply = script_reply(SCRIPTS)
    exp = scripted_pair("map", SCRIPTS, repeats=2, max_messages=20)
    db = tmp_path / "d.db"
    result = run_experiment(exp, db=db)
    assert not result.errors
    with Store(db) as store:
        rep = experiment_report(store, "map", tmp_path / "reports")
        tables = experiment_tables(store, "map")
    att = rep["attractors"]
    assert att["overall"]["runs"] == 6 and att["overall"]["entered"] == 4
    by_opener = {g["group"]: g for g in att["by_opener"]}
    drift = next(g for name, g in by_opener.items() if "B-trees" in name)
    farewell = next(g for name, g in by_opener.items() if "part" in name)
    debate = next(g for name, g in by_opener.items() if "monolith" in name)
    assert drift["end_states"] == {"bliss": 1.0} and drift["median_entry"] == {"bliss": 9.0}
    assert farewell["end_states"] == {"farewell": 1.0} and farewell["median_entry"] == {"farewell": 7.0}
    assert debate["entered"] == 0 and "bliss" not in debate["end_states"]
    # Kaplan–Meier of time to entry: 4 of 6 runs entered, at 7 and 9; the debates are censored.
    curve = dict(att["entry_survival"]["a ↔ b"])
    assert curve[6] == 1.0 and abs(curve[7] - 4 / 6) < 1e-6 and abs(curve[9] - 2 / 6) < 1e-6 and curve[20] == curve[9]
    shares = att["share_by_turn"]["a ↔ b"]
    assert abs(shares["bliss"][15] - 2 / 6) < 1e-3  # message 16: both drifts are in bliss (a family, as end states)
    # By construction, the by-turn view ends where the end-state view is: at the last message, the same shares.
    assert {k: v[-1] for k, v in shares.items() if v[-1]} == pytest.approx(att["by_pairing"][0]["end_states"])
    # The JSON written beside the plots carries the map; the tables carry each run's end state.
    written = json.loads((tmp_path / "reports" / "map-report.json").read_text())
    assert written["attractors"]["by_opener"] == att["by_opener"]
    assert sorted(tables["runs"]["attractor"].dropna()) == ["bliss"] * 2 + ["farewell"] * 2
    assert set(tables["messages"]["theme"].dropna()) >= {"gratitude", "farewell"}
    assert {p.rsplit("-", 1)[-1] for p in rep["plots"]} >= {"attractors.png", "entry.png", "states.png"}


def test_unknown_end_states_are_clustered_and_named():
    from duologue.analysis.attractors import RunEnd, cluster_unknown

    tea = ["Oolong, sencha and genmaicha: which tea do you steep today?", "Green tea, steeped briefly, for me."]
    chess = ["The Sicilian defence again, with the knight to f6.", "Chess openings: I play the Sicilian too."]
    runs = [RunEnd(f"t{i}", {}, 10, None, None, None, final_text=tea[i % 2]) for i in range(3)]
    runs += [RunEnd(f"c{i}", {}, 10, None, None, None, final_text=chess[i % 2]) for i in range(3)]
    runs.append(RunEnd("g", {}, 10, "gratitude", "gratitude", 4, final_text="Thank you."))
    cluster_unknown(runs)
    names = {r.run_id: r.shown_end for r in runs}
    assert names["g"] == "gratitude"
    assert len({names[f"t{i}"] for i in range(3)}) == 1 and names["t0"].startswith("other: ")
    assert len({names[f"c{i}"] for i in range(3)}) == 1 and names["c0"] != names["t0"]
    assert "sicilian" in names["c0"] and "tea" in names["t0"]
