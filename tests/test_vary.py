"""Experiments that vary any field of a conversation: [vary] paths, the older files, one spec builder."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from click.testing import CliRunner

from duologue.analysis.loops import LoopParams
from duologue.batch import _check_experiment_record
from duologue.cli import cli
from duologue.errors import DuologueError, SpecError
from duologue.experiment_spec import (
    ExperimentSpec,
    derive_seed,
    experiment_from_dict,
    load_experiment_spec,
    plan_experiment,
)
from duologue.exports.experiment import experiment_tables
from duologue.spec import Detection, spec_from_dict
from duologue.store import Store, cell_key
from helpers import REPO

POOL = [{"name": "x", "model": "scripted/x"}, {"name": "y", "model": "scripted/y"}]


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def experiment(**data):
    return experiment_from_dict({"name": "v", "participants": POOL, **data}, "v.toml")


def test_the_matrix_is_the_product_of_every_varied_path():
    exp = experiment(
        pairings="all_with_self",
        repeats=2,
        max_messages=7,
        vary={
            "temperature": [0.2, 0.9],
            "context": {"strategy": ["stop", "truncate"]},  # TOML's dotted key, as a nested table
            "participants.y.system": {"plain": "Talk.", "poet": "Rhyme."},
            "opener": ["hi", "hello", "hey"],
        },
    )
    plans = plan_experiment(exp)
    assert len(plans) == 3 * 2 * 2 * 2 * 3 * 2  # pairings × values × repeats
    assert len({p.key for p in plans}) == len(plans)
    assert exp.settings == ["pairing", "temperature", "context.strategy", "participants.y.system", "opener"]
    cell = {"pairing": "x ↔ y", "temperature": 0.9, "context.strategy": "truncate"}
    cell |= {"participants.y.system": "poet", "opener": "hello", "repeat": 2}
    (plan,) = [p for p in plans if p.cell == cell]
    spec = plan.spec
    assert (spec.opener, spec.context.strategy, spec.max_messages) == ("hello", "truncate", 7)
    x, y = spec.participants
    assert (x.temperature, y.temperature, y.system) == (0.9, 0.9, "Rhyme.")
    assert x.system != "Rhyme." and spec.seed == derive_seed(0, cell_key(cell)) and y.seed == spec.seed + 1
    # The pool's y on both sides of its self-pairing gets the value; x ↔ x keeps its own system prompt.
    selfish = [p for p in plans if p.cell["pairing"] == "y ↔ y" and p.cell["participants.y.system"] == "poet"]
    assert all(p.spec.participants[0].system == "Rhyme." == p.spec.participants[1].system for p in selfish)


def test_a_and_b_are_the_pairings_first_and_second_speakers_and_injections_vary_whole():
    nudge = [{"at": 3, "as": "moderator", "text": "Change the subject."}]
    exp = experiment(pairings=[["y", "x"]], vary={"participants.b.max_tokens": [9], "injections": [[], nudge]})
    plans = plan_experiment(exp)
    assert [p.spec.participants[1].max_tokens for p in plans] == [9, 9]
    assert [p.spec.participants[1].name for p in plans] == ["x", "x"]
    assert [len(p.spec.injections) for p in plans] == [0, 1]
    assert plans[1].cell["injections"] == nudge  # a list stands for itself in the cell ...
    shown = exp.shown_cell(plans[1].cell)["injections"]  # ... and as compact JSON in reports
    assert json.loads(shown) == nudge


@pytest.mark.parametrize(
    "vary, needle",
    [
        ({"temprature": [1]}, "vary.temprature: unknown setting; vary a conversation field (opener, max_messages,"),
        ({"context.stratgy": ["stop"]}, "vary.context.stratgy: unknown field 'stratgy' (known: strategy, trim_to"),
        ({"participants.z.system": ["a"]}, "vary.participants.z.system: no participant 'z' in the pool (x, y"),
        ({"seed": [1, 2]}, "vary.seed: seeds come from base_seed"),
        ({"opener.text": ["a"]}, "vary.opener.text: 'opener' is one value, not a table"),
        ({"context": ["stop"]}, "vary.context: a table of settings; vary one of its fields"),
        ({"opener": ["a", "a"]}, "vary.opener: a value is listed twice; use repeats"),
        ({"opener": []}, "vary.opener: give a list of values or a table of named values, got []"),
        ({"opener": "hi"}, 'vary.opener: give a list of values or a table of named values, got "hi"'),
    ],
)
def test_a_bad_path_or_values_is_one_line(vary, needle):
    with pytest.raises(SpecError) as caught:
        experiment(vary=vary)
    assert len(caught.value.problems) == 1 and needle in caught.value.problems[0], caught.value.problems


def test_a_bad_value_is_named_by_its_path_in_duologues_words():
    with pytest.raises(SpecError) as caught:
        experiment(vary={"context.strategy": ["stop", "window"]})
    assert caught.value.problems == [
        'v.toml: vary.context.strategy = "window": context.strategy: '
        "expected 'auto', 'stop', 'truncate' or 'summarize', got \"window\""
    ]
    with pytest.raises(SpecError, match=r"^v.toml: max_messages: must be at least 1, got 0$"):
        experiment(max_messages=0, vary={})


def test_older_files_plan_the_same_cells_and_seeds():
    old = {
        "name": "o",
        "participants": POOL,
        "openers": [" ", "Hi"],
        "system_prompts": {"plain": "Talk."},
        "temperatures": [0.5, 1.0],
        "max_messages": 6,
    }
    exp = experiment_from_dict(old)
    assert exp.legacy and exp.settings == ["pairing", "opener", "system", "temperature"]
    plans = plan_experiment(exp)
    assert len(plans) == 2 * 2
    first = plans[0]
    # exactly the cell (and so the key and seed) an older duologue planned
    assert first.cell == {"pairing": "x ↔ y", "opener": 0, "system": "plain", "temperature": 0.5, "repeat": 1}
    assert first.spec.seed == derive_seed(
        0, '{"opener": 0, "pairing": "x ↔ y", "repeat": 1, "system": "plain", "temperature": 0.5}'
    )
    assert (first.spec.opener, first.spec.participants[0].system, first.spec.max_messages) == (" ", "Talk.", 6)
    assert exp.shown_cell(plans[2].cell)["opener"] == "Hi"  # shown as its text
    # a file with neither: the older cells too (so an experiment stored by an older duologue resumes)
    plain = experiment_from_dict({"name": "p", "participants": POOL, "opener": "Hello"})
    assert plan_experiment(plain)[0].cell == {
        "pairing": "x ↔ y",
        "opener": 0,
        "system": None,
        "temperature": None,
        "repeat": 1,
    }
    assert plan_experiment(plain)[0].spec.opener == "Hello"
    python = ExperimentSpec(name="p", participants=POOL, opener="Hello", vary=None)
    assert plan_experiment(python)[0].spec.opener == "Hello"
    empty = experiment_from_dict({"name": "e", "participants": POOL, "opener": "Hello", "vary": {}})
    assert [p.cell for p in plan_experiment(empty)] == [{"pairing": "x ↔ y", "repeat": 1}]
    assert plan_experiment(empty)[0].spec.opener == "Hello"


def test_an_older_record_in_the_store_is_the_same_experiment(tmp_path):
    # What duologue 0.x stored for `openers = [" ", "Hi"]`, `temperatures = [0.7]`: the old model's dump.
    exp = experiment_from_dict({"name": "o", "participants": POOL, "openers": [" ", "Hi"], "temperatures": [0.7]})
    stored = {
        k: v
        for k, v in exp.record().items()
        if k
        in (
            "name",
            "description",
            "participants",
            "pairings",
            "openers",
            "system_prompts",
            "temperatures",
            "repeats",
            "base_seed",
            "max_messages",
            "end_marker",
            "end_on",
            "on_loop",
            "detection",
            "concurrency",
        )
    }
    # Participants as recorded before the embedded engine's weights and lookup settings existed.
    stored["participants"] = [
        {k: v for k, v in p.items() if k not in ("weights", "lookup")} for p in stored["participants"]
    ]
    assert all("weights" in p for p in exp.record()["participants"])  # today's record has them
    with Store(tmp_path / "d.db") as store:
        store.create_experiment("o", "o", stored)
        _check_experiment_record(store, exp)  # the same
        changed = experiment_from_dict({"name": "o", "participants": POOL, "openers": ["Hi"], "temperatures": [0.7]})
        with pytest.raises(DuologueError, match="other settings"):
            _check_experiment_record(store, changed)


def test_mixing_the_older_lists_with_vary_says_how_to_rewrite():
    with pytest.raises(SpecError) as caught:
        experiment(openers=["a"], vary={"temperature": [1]})
    (line,) = caught.value.problems
    assert "openers is the older way to vary a setting and does not mix with [vary]" in line
    assert "opener = [...] for openers" in line
    with pytest.raises(SpecError, match="^v.toml: seed: an experiment's seeds come from base_seed"):
        experiment(seed=3)
    with pytest.raises(SpecError, match="openers .* or opener .*, not both"):
        experiment(openers=["a"], opener="b")


def test_detection_thresholds_are_the_loop_detectors_own():
    detection = Detection()
    assert detection.loop == LoopParams()
    names = {f.name for f in dataclasses.fields(LoopParams)}
    assert names <= set(Detection.model_fields)
    assert Detection(max_period=3, min_cycles=4).loop == LoopParams(max_period=3, min_cycles=4)
    spec = spec_from_dict({"participants": POOL, "detection": {"near_threshold": 0.7}})
    assert spec.detection.loop.near_threshold == 0.7


VARY_TOML = """
name = "cs"
pairings = "all"
max_messages = 5
on_loop = "continue"
[[participants]]
name = "x"
model = "scripted/x"
[[participants]]
name = "y"
model = "scripted/y"
[vary]
context.strategy = ["stop", "truncate"]
injections.none = []
injections.nudge = [{ at = 3, as = "moderator", text = "Talk about the sea." }]
"""


def test_a_toml_experiment_varying_context_strategy_and_injections_runs_and_reports_by_both(tmp_path, scripted_models):
    scripted_models.reply = lambda n, view: f"reply {n} to {view[-1].content}"
    toml, db = tmp_path / "cs.toml", str(tmp_path / "d.db")
    toml.write_text(VARY_TOML)
    plan = json.loads(invoke("batch", str(toml), "--dry-run", "--json", "--db", db).stdout)
    assert plan["conversations"] == 4 and plan["max_messages"] == 20
    assert {(c["context.strategy"], c["injections"]) for c in plan["cells"]} == {
        ("stop", "none"),
        ("stop", "nudge"),
        ("truncate", "none"),
        ("truncate", "nudge"),
    }
    done = json.loads(invoke("batch", str(toml), "--json", "--db", db).stdout)
    assert (done["planned"], done["skipped"], done["finished"], done["errors"]) == (4, 0, 4, [])
    with Store(db) as store:
        runs = store.experiment_run_records("cs")
        nudged = [r for r in runs if r.cell["injections"] == "nudge"]
        assert len(nudged) == 2 and all(r.spec["injections"][0]["text"] == "Talk about the sea." for r in nudged)
        assert {r.spec["context"]["strategy"] for r in runs} == {"stop", "truncate"}
        messages = [m for m in store.experiment_messages("cs") if m.run_id == nudged[0].id]
        assert (messages[2].speaker, messages[2].injected) == ("moderator", True)
        tables = experiment_tables(store, "cs")
    assert {"context.strategy", "injections", "pairing", "repeat"} <= set(tables["runs"].columns)
    assert sorted(tables["runs"]["injections"]) == ["none", "none", "nudge", "nudge"]
    rep = json.loads(invoke("report", "cs", "--json", "--db", db, "-o", str(tmp_path / "rep")).stdout)
    assert rep["settings"] == ["pairing", "context.strategy", "injections"]
    assert {g["group"]: g["runs"] for g in rep["by_context.strategy"]} == {"stop": 2, "truncate": 2}
    assert {g["group"]: g["runs"] for g in rep["by_injections"]} == {"none": 2, "nudge": 2}
    assert {g["group"] for g in rep["attractors"]["by_injections"]} == {"none", "nudge"}
    text = invoke("report", "cs", "--db", db, "-o", str(tmp_path / "rep")).stdout
    assert "by context.strategy" in text and "by injections" in text
    _viewer_shows_the_varied_values(db, "cs")
    again = json.loads(invoke("batch", str(toml), "--json", "--db", db).stdout)
    assert (again["skipped"], again["finished"], again["messages"]) == (4, 4, 0)  # nothing ran again


def _viewer_shows_the_varied_values(db: str, name: str) -> None:
    """The viewer's experiment page: a table per varied path, and each run's varied values as columns."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from duologue.web import create_app

    with TestClient(create_app(db, poll_seconds=0.05)) as client:
        page = client.get(f"/experiments/{name}").text
    assert "<h2>By context.strategy</h2>" in page and "<h2>By injections</h2>" in page
    head = re.search(r'<table class="summary cells">\s*<thead><tr>(.*?)</tr>', page, re.S)
    assert head and re.findall(r"<th>(.*?)</th>", head.group(1)) == ["run", "pairing", "context.strategy", "injections"]
    assert page.count("<td>nudge</td>") == 2 and page.count("<td>truncate</td>") == 2


def test_the_example_plans_and_validates():
    exp = load_experiment_spec(REPO / "examples" / "vary.toml")
    plans = plan_experiment(exp)
    assert len(plans) == 16 and exp.settings == ["pairing", "context.strategy", "opener", "injections"]
    assert {p.spec.context.strategy for p in plans} == {"stop", "truncate"}
