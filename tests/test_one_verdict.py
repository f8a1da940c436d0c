"""One verdict everywhere (issue 25, finding 3).

A scripted experiment whose runs stop on a verbatim loop, end in a period-1 (mirroring) loop, visit an
attractor and leave it, drift into one and stay, or do none of these. For every run the batch summary,
`report` (text and --json), `ls` (text and --json), `show` (text and --json), the viewer's run page and
experiment page, and the JSONL export say the same loop, attractor and end state: the verdict of the run's
one stored analysis of its final messages. The live detectors' events are shown as what they were at the
time ("flagged live at message N").
"""

from __future__ import annotations

import html
import json
import re

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from analysis.semantic_cases import DEBATE, GRATITUDE_DRIFT, TECH
from duologue.analysis.stored import analyze_run
from duologue.cli import cli
from duologue.store import Store
from duologue.verdict import Verdict, theme_labels_for, verdict_of
from duologue.web import create_app

LOOP = [*TECH[:5], *["We keep coming back to the same point.", "Indeed we do, again and again."] * 4]
MIRROR = [*TECH[:7], *["Exactly so."] * 3]  # a period-1 loop: both say the same thing
VISIT = [*TECH[:4], *GRATITUDE_DRIFT[:6], *DEBATE[1:11]]  # flagged live as an attractor, then leaves it
DRIFT = [*TECH, *GRATITUDE_DRIFT]  # enters spiritual bliss and stays
SCRIPTS = {"loop": LOOP, "mirror": MIRROR, "visit": VISIT, "drift": DRIFT, "debate": DEBATE}

EXPERIMENT = """
name = "verdicts"
max_messages = 20
on_loop = "stop"

[[participants]]
name = "x"
model = "scripted/x"

[[participants]]
name = "y"
model = "scripted/y"

[vary]
opener = ["loop", "mirror", "visit", "drift", "debate"]
"""


def scripted_reply(n, view):
    said = [m.content for m in view if m.role != "system"]
    script = SCRIPTS[said[0]]
    if len(said) < len(script):
        return script[len(said)]
    return DEBATE[len(said) % len(DEBATE)] + f" (point {len(said)})"  # on task, and never the same twice


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    from scripted import scripted_provider

    tmp = tmp_path_factory.mktemp("verdicts")
    db = str(tmp / "d.db")
    (tmp / "exp.toml").write_text(EXPERIMENT)
    with scripted_provider() as models:
        models.reply = scripted_reply
        batch_text = invoke("batch", str(tmp / "exp.toml"), "--db", db).stdout
        batch_json = json.loads(invoke("batch", str(tmp / "exp.toml"), "--db", db, "--json").stdout)
    with Store(db, create=False) as store:
        rows = store.list_runs(experiment_id="verdicts")
        verdicts = {r.id: verdict_of(store.run_loops(r.id), store.run_semantic(r.id)) for r in rows}
        runs = {r.id: store.get_run(r.id) for r in rows}
        events = {r.id: store.get_events(r.id) for r in rows}
    by_script = {run.messages[0].content: run.id for run in runs.values()}
    return {
        "tmp": tmp,
        "db": db,
        "batch_text": batch_text,
        "batch_json": batch_json,
        "verdicts": verdicts,
        "runs": runs,
        "events": events,
        "by_script": by_script,
        "labels": theme_labels_for(None)[0],
    }


def test_the_stored_verdicts_are_the_analysis_of_the_final_messages(experiment):
    v, ids = experiment["verdicts"], experiment["by_script"]
    assert all(x.analysed for x in v.values())
    # A run that ends in a verbatim loop has the verbatim loop as its end state: stopped on one, or in a
    # period-1 loop (which labels its last messages verbatim only in part).
    assert v[ids["loop"]].loop == "exact_loop" and v[ids["loop"]].end_state == "verbatim"
    assert v[ids["mirror"]].loop == "exact_loop" and v[ids["mirror"]].loop_period == 1
    assert v[ids["mirror"]].end_state == "verbatim"
    assert v[ids["drift"]].attractor == "bliss" and v[ids["drift"]].end_state == "bliss"
    # The visit was flagged live as an attractor, and is not one by the end.
    visit_events = [e for e in experiment["events"][ids["visit"]] if e["kind"] == "attractor"]
    assert visit_events and v[ids["visit"]].attractor is None
    assert v[ids["debate"]] == Verdict(analysed=True, end_state=None)
    for run_id, run in experiment["runs"].items():  # the one computation, again, on the final messages
        a = analyze_run(run)
        assert (
            a.end_state == v[run_id].end_state and (a.attractor.theme if a.attractor else None) == v[run_id].attractor
        )


def test_live_events_are_the_analysis_of_the_prefix_they_were_recorded_at(experiment):
    """The live watchers and the stored analysis are one computation: what a detector flagged after
    message k is what the analysis of messages 1..k finds."""
    checked = set()
    for run_id, run in experiment["runs"].items():
        for ev in experiment["events"][run_id]:
            if ev["kind"] not in ("loop", "attractor"):
                continue
            checked.add(ev["kind"])
            k = ev["message_index"]
            prefix = analyze_run(run.__class__(**{**run.__dict__, "messages": run.messages[:k]}))
            if ev["kind"] == "loop":
                assert prefix.exact_loop is not None and prefix.exact_loop.detail() == ev["detail"]
            else:
                assert prefix.attractor is not None and prefix.attractor.detail() == ev["detail"]
    assert checked == {"loop", "attractor"}  # the experiment flagged both live: neither check was skipped


def expected_counts(verdicts):
    vs = list(verdicts.values())
    return {
        "looped": sum(1 for v in vs if v.loop),
        "exact_loop": sum(1 for v in vs if v.loop == "exact_loop"),
        "near_loop": sum(1 for v in vs if v.loop == "near_loop"),
        "attractor": sum(1 for v in vs if v.attractor),
    }


def test_the_batch_summary_counts_the_stored_verdicts(experiment):
    verdicts, labels = experiment["verdicts"], experiment["labels"]
    n = expected_counts(verdicts)
    out = experiment["batch_json"]
    assert {k: out["analysis"][k] for k in n} == n
    assert {r["run_id"]: Verdict.from_dict(r) for r in out["verdicts"]} == verdicts
    text = experiment["batch_text"]
    assert (
        f"its 5 runs by their analyses: loop or near loop {n['looped']} (exact loop {n['exact_loop']} · "
        f"near loop {n['near_loop']}) · attractor {n['attractor']} · " in text
    )
    ends = {}
    for v in verdicts.values():
        ends[v.end_state_text(labels)] = ends.get(v.end_state_text(labels), 0) + 1
    for label, count in ends.items():
        assert f"{label} {count}" in text.split("end states ")[1].splitlines()[0]
    # What the live detectors saw is there too, and says so.
    assert "flagged live during this batch: " in text


def test_report_and_its_json_give_each_runs_verdict(experiment):
    tmp, db, verdicts = experiment["tmp"], experiment["db"], experiment["verdicts"]
    rep = json.loads(invoke("report", "verdicts", "--db", db, "-o", str(tmp / "rep"), "--json").stdout)
    assert {r["run_id"]: Verdict.from_dict(r) for r in rep["verdicts"]} == verdicts
    n = expected_counts(verdicts)
    assert rep["overall"]["looped"] == n["looped"] and rep["attractors"]["overall"]["entered"] == n["attractor"]
    ends = rep["attractors"]["overall"]["end_states"]
    for v in verdicts.values():
        assert (v.end_state or "unresolved") in ends or any(k.startswith("other: ") for k in ends)
    text = invoke("report", "verdicts", "--db", db, "-o", str(tmp / "rep")).stdout
    rows = [line for line in text.splitlines() if line.startswith(" x ↔ y ")]  # by pairing: the one pairing
    assert f" {n['looped']} ({n['looped'] / 5:.0%}) " in rows[0]  # loop or near loop
    assert re.split(r"\s{2,}", rows[1].strip())[3] == str(n["attractor"])  # the attractor map's "entered"


def test_ls_and_its_json_give_each_runs_verdict(experiment):
    db, verdicts, labels = experiment["db"], experiment["verdicts"], experiment["labels"]
    rows = json.loads(invoke("ls", "--db", db, "--json").stdout)
    assert {r["id"]: Verdict.from_dict(r["verdict"]) for r in rows} == verdicts
    text = invoke("ls", "--db", db).stdout  # piped: every column
    for run_id, v in verdicts.items():
        (line,) = [ln for ln in text.splitlines() if ln.startswith(f" {run_id} ")]
        cells = re.split(r"\s{2,}", line.strip())
        assert v.loop_cell() in cells and v.attractor_cell(labels) in cells and v.end_state_text(labels) in cells


def test_show_gives_the_verdict_and_labels_live_events(experiment):
    db, verdicts, labels = experiment["db"], experiment["verdicts"], experiment["labels"]
    for run_id, v in verdicts.items():
        shown = invoke("show", run_id, "--db", db).stdout
        assert f"analysis: {v.line(labels)}\n" in shown
        for ev in experiment["events"][run_id]:
            if ev["kind"] in ("loop", "near_loop", "convergence", "attractor"):
                assert f"▸ {ev['kind']}, flagged live at message {ev['message_index']}: " in shown
        doc = json.loads(invoke("show", run_id, "--db", db, "--json").stdout)
        assert Verdict.from_dict(doc["analysis"]["verdict"]) == v
    visit = experiment["by_script"]["visit"]
    assert "analysis: loop none · attractor none · end state unresolved" in invoke("show", visit, "--db", db).stdout


def test_the_jsonl_export_gives_each_runs_verdict(experiment):
    tmp, db, verdicts = experiment["tmp"], experiment["db"], experiment["verdicts"]
    invoke("export", "--all", "--experiment", "verdicts", "-o", str(tmp / "runs.jsonl"), "--db", db)
    lines = (tmp / "runs.jsonl").read_text().splitlines()
    got = {d["id"]: Verdict.from_dict(d["analysis"]["verdict"]) for d in map(json.loads, lines)}
    assert got == verdicts
    for d in map(json.loads, lines):  # the analysis itself says the same
        a, v = d["analysis"], verdicts[d["id"]]
        assert (a["end_state"] or "unresolved") == (v.end_state or "unresolved")
        assert (a["attractor"] or {}).get("theme") == v.attractor
        assert (a["exact_loop"] is not None) == (v.loop == "exact_loop")


def text_of(page: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}">(.*?)</(?:dd|span)>', page, re.S)
    assert m, element_id
    return html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip()


def test_the_viewers_run_and_experiment_pages_give_each_runs_verdict(experiment):
    db, verdicts, labels = experiment["db"], experiment["verdicts"], experiment["labels"]
    client = TestClient(create_app(db))
    for run_id, v in verdicts.items():
        page = client.get(f"/runs/{run_id}").text
        exact, near = text_of(page, "exact-loop"), text_of(page, "near-loop")
        if v.loop == "exact_loop":
            assert f"period {v.loop_period} since message {v.loop_onset}" in exact
        else:
            assert exact == "none"
        if v.loop == "near_loop":
            assert f"since message {v.loop_onset}" in near
        attractor = text_of(page, "attractor")
        assert attractor == (f"entered {labels[v.attractor]} at message {v.attractor_onset}" if v.attractor else "none")
        assert text_of(page, "end-state") == v.end_state_text(labels)
    # The visit's live attractor event is marked as flagged live beside "attractor none".
    visit = client.get(f"/runs/{experiment['by_script']['visit']}").text
    assert '▸ attractor <span class="flag">flagged live</span>' in visit and text_of(visit, "attractor") == "none"
    page = client.get("/experiments/verdicts").text
    for run_id, v in verdicts.items():
        row = re.search(rf'<tr data-run="{run_id}">(.*?)</tr>', page, re.S)
        assert row, run_id
        found = re.findall(r'<td class="verdict-([a-z-]+)">(.*?)</td>', row[1])
        cells = {k: html.unescape(c).strip() for k, c in found}
        assert cells == {
            "loop": v.loop_cell(),
            "attractor": v.attractor_cell(labels),
            "end-state": v.end_state_text(labels),
        }
