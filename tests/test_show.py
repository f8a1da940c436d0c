"""`duologue show`: the whole spec and every recorded event, in text and in --json."""

from __future__ import annotations

import json

from click.testing import CliRunner

from duologue import api
from duologue.cli import cli

TOML = """
opener = "Let us talk about rivers."
max_messages = 16
token_budget = 5000
time_limit = 600
end_marker = "[DONE]"
end_on = "any"
on_loop = "flag"
on_near_loop = "continue"
seed = 7

[context]
strategy = "summarize"
summarizer = { model = "scripted/summarizer", max_tokens = 12 }

[[participants]]
name = "alice"
model = "scripted/a"
system = "You are Alice, a careful geographer."
temperature = 0.3
top_p = 0.8
max_tokens = 20
context_length = 160

[[participants]]
name = "bob"
model = "scripted/b"
system = "You are Bob, who likes boats."
temperature = 1.1
max_tokens = 20
context_length = 160

[[injections]]
at = 5
as = "moderator"
text = "Please talk about deltas now."

[[changes]]
at = 8
participant = "bob"
temperature = 0.2
"""


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def ten_words(n, view):
    return f"reply number {n} has exactly ten words in it, friend"


def test_show_prints_the_whole_spec_and_every_event_with_its_text(tmp_path, scripted_models):
    scripted_models.reply = ten_words
    config, db = tmp_path / "c.toml", str(tmp_path / "d.db")
    config.write_text(TOML)
    invoke("run", "-c", str(config), "--db", db, "-q")
    run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
    events = api.run_events(run_id, db=db)
    summaries = [ev["data"]["summary"] for ev in events if ev["kind"] == "context"]
    assert summaries, "the run should have been summarised"
    shown = invoke("show", run_id, "--db", db).stdout
    # The spec: participants with their models, sampling and system prompts; opener; limits; actions; context.
    assert "alice: scripted/a  temperature 0.3  seed" in shown and "bob: scripted/b  temperature 1.1" in shown
    assert "top_p 0.8" in shown and "max_tokens 20" in shown and "context_length 160" in shown
    assert "system: You are Alice, a careful geographer." in shown
    assert "system: You are Bob, who likes boats." in shown
    assert "opener: Let us talk about rivers." in shown
    assert "limits: max messages 16  token budget 5000  time limit 600  end marker [DONE]  end on any" in shown
    assert "on detection: on_loop flag  on_near_loop continue  on_convergence flag  on_attractor flag" in shown
    assert "context: strategy summarize" in shown and "summarizer.model scripted/summarizer" in shown
    assert "injection at 5 as moderator: Please talk about deltas now." in shown
    assert "change at 8 for bob: temperature 0.2" in shown
    # The events where they happened, each summary with its text.
    assert "▸ injection: moderator:" in shown and "▸ change: bob:" in shown
    assert shown.count("▸ context: ") == len(summaries)
    for text in summaries:
        assert f"  summary: {text}" in shown
    # --json: the same events, each summary's text among them.
    doc = json.loads(invoke("show", run_id, "--json", "--db", db).stdout)
    assert [ev["kind"] for ev in doc["events"]] == [ev["kind"] for ev in events]
    assert [ev["data"]["summary"] for ev in doc["events"] if ev["kind"] == "context"] == summaries
    assert doc["spec"]["participants"][0]["system"] == "You are Alice, a careful geographer."


def test_show_prints_detections_with_their_details(tmp_path, scripted_models):
    scripted_models.reply = lambda n, view: "the very same words every single time"
    db = str(tmp_path / "d.db")
    invoke("run", "--a", "scripted/a", "--b", "scripted/b", "--max-messages", "12", "--db", db, "-q")
    run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
    detections = [ev for ev in api.run_events(run_id, db=db) if ev["kind"] in ("loop", "near_loop")]
    assert detections
    shown = invoke("show", run_id, "--db", db).stdout
    for ev in detections:
        assert f"▸ {ev['kind']}, flagged live at message {ev['message_index']}: {ev['detail']}" in shown
        assert f"action {ev['data']['action']}" in shown
    doc = json.loads(invoke("show", run_id, "--json", "--db", db).stdout)
    assert [ev["detail"] for ev in doc["events"] if ev["kind"] in ("loop", "near_loop")] == [
        ev["detail"] for ev in detections
    ]


def test_show_does_not_wrap_long_message_text_when_piped(tmp_path, scripted_models):
    long = " ".join(f"word{i}" for i in range(60))
    scripted_models.reply = lambda n, view: long
    db = str(tmp_path / "d.db")
    invoke("run", "--a", "scripted/a", "--b", "scripted/b", "--max-messages", "2", "--db", db, "-q")
    run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
    shown = CliRunner().invoke(cli, ["show", run_id, "--db", db], env={"COLUMNS": "80"}).stdout
    assert long in shown.splitlines()


def test_show_says_when_a_runs_analysis_was_made_by_older_rules(tmp_path, scripted_models):
    # A run analysed when it ended carries the rules' version; one stored before versions were kept (or by an
    # older version) is named as such, with the command that makes it again, and `analyze` brings it up to date.
    import sqlite3

    from duologue.analysis.report import RULES

    scripted_models.reply = ten_words
    db = str(tmp_path / "d.db")
    invoke("run", "--a", "scripted/a", "--b", "scripted/b", "--max-messages", "4", "--db", db, "-q")
    run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
    assert "older rules" not in invoke("show", run_id, "--db", db).stdout
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT analysis FROM runs WHERE id=?", (run_id,)).fetchone()
        assert json.loads(stored)["rules"] == RULES
        conn.execute("UPDATE runs SET analysis=json_remove(analysis, '$.rules') WHERE id=?", (run_id,))
    shown = invoke("show", run_id, "--db", db).stdout
    assert f"(made by older rules: `duologue analyze {run_id}` makes it again)" in shown
    invoke("analyze", run_id, "--no-plots", "--db", db)
    assert "older rules" not in invoke("show", run_id, "--db", db).stdout
