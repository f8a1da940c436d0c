"""Full-text search: `duologue search`, the store's FTS5 index (migration 007) and the Python API."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from duologue.cli import cli
from duologue.errors import DuologueError
from duologue.records import Message
from duologue.search import MARK_END, MARK_START, search_messages
from duologue.store import Store
from duologue.store.schema import MIGRATIONS, apply_migrations
from duologue.store.search import fts_query
from helpers import make_run


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "duologue.db"
    with Store(path) as store:
        store.create_run(make_run("r1", ["we talk of rivers", "and now we are resting, silent", "ok"]))
        store.create_run(make_run("r2", ["Resting. Silent.", "silent resting", "the river"], minutes=1))
        store.create_run(make_run("r3", ["nothing here", "resting only"], minutes=2))
    return path


def where(result) -> set[tuple[str, int]]:
    return {(h.run_id, h.index) for h in result.hits}


def test_all_words_in_any_order_across_runs(db):
    result = search_messages("resting silent", db=db)
    assert where(result) == {("r1", 2), ("r2", 1), ("r2", 2)}
    assert (result.total, result.runs) == (3, 2)


def test_phrases_prefixes_case_and_accents(db):
    assert where(search_messages('"silent resting"', db=db)) == {("r2", 2)}
    assert where(search_messages("river*", db=db)) == {("r1", 1), ("r2", 3)}
    assert where(search_messages("RÉSTING SILENT", db=db)) == {("r1", 2), ("r2", 1), ("r2", 2)}


def test_filters_by_run_speaker_and_limit(db):
    assert where(search_messages("resting", db=db, run="r3")) == {("r3", 2)}
    assert where(search_messages("resting", db=db, speaker="bo")) == {("r1", 2), ("r2", 2), ("r3", 2)}
    limited = search_messages("resting", db=db, limit=1)
    assert len(limited.hits) == 1 and limited.total == 4


def test_snippet_marks_the_matched_words(db):
    (hit,) = search_messages('"silent resting"', db=db).hits
    assert hit.snippet == f"{MARK_START}silent resting{MARK_END}"  # a phrase is marked whole
    assert hit.plain_snippet("[", "]") == "[silent resting]"
    (hit,) = search_messages("rivers", db=db).hits
    assert hit.plain_snippet("[", "]") == "we talk of [rivers]"


@pytest.mark.parametrize("text", ["AND OR NOT", "NEAR(", "content:x", "-", "a*b", "(", "'", "^start", "x: y"])
def test_what_a_user_types_is_never_fts_syntax(db, text):
    assert search_messages(text, db=db).total == 0


def test_quoted_terms_cannot_break_out():
    assert fts_query('say "hi there" x*') == '"say" "hi there" "x"*'
    assert fts_query("don't stop") == '"don\'t" "stop"'
    assert fts_query('"open phrase') == '"open phrase"'
    assert fts_query('a"b c"') == '"a" "b c"'
    with pytest.raises(DuologueError, match="nothing to search"):
        fts_query("  * ")


def test_raw_fts_queries_and_their_errors(db):
    assert where(search_messages("resting NOT silent", db=db, raw=True)) == {("r3", 2)}
    with pytest.raises(DuologueError, match="not a valid query"):
        search_messages("NEAR(", db=db, raw=True)


def test_messages_added_later_are_found(db):
    with Store(db) as store:
        store.add_message("r3", Message(index=3, speaker="ada", content="finally silent and resting"))
    assert ("r3", 3) in where(search_messages("resting silent", db=db))


def test_the_migration_indexes_messages_stored_before_it(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    apply_migrations(conn, MIGRATIONS[:6])  # a store written before search existed
    conn.execute(
        "INSERT INTO runs (id, title, participants, models, spec, started_at, status) "
        "VALUES ('old', 't', '[]', '[]', '{}', '2026-01-01T00:00:00+00:00', 'finished')"
    )
    conn.execute("INSERT INTO messages (run_id, idx, speaker, content) VALUES ('old', 1, 'a', 'resting silent')")
    conn.commit()
    conn.close()
    assert where(search_messages("silent", db=path)) == {("old", 1)}


def test_vacuum_does_not_point_the_index_at_other_messages(db):
    # The index keeps each message's key, not the table's rowid (which VACUUM may renumber).
    with Store(db) as store:
        store.conn.execute("VACUUM")
    assert where(search_messages("resting silent", db=db)) == {("r1", 2), ("r2", 1), ("r2", 2)}


def test_cli_prints_matches_and_json(db):
    runner = CliRunner()
    out = runner.invoke(cli, ["search", "resting silent", "--db", str(db)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "3 messages in 2 run(s) match 'resting silent'"
    assert any(line.startswith("r1  #2  bo: ") and "resting, silent" in line for line in lines)
    data = json.loads(runner.invoke(cli, ["search", "resting", "--json", "-n", "2", "--db", str(db)]).output)
    assert data["total"] == 4 and len(data["matches"]) == 2
    assert {"run_id", "index", "speaker", "snippet", "title"} <= set(data["matches"][0])


def test_cli_model_output_is_not_markup(tmp_path):
    path = tmp_path / "d.db"
    with Store(path) as store:
        store.create_run(make_run("x", ["[bold red]resting[/] [link=http://e.x]silent[/link]"]))
    out = CliRunner().invoke(cli, ["search", "resting", "--db", str(path)])
    assert "[bold red]resting[/] [link=http://e.x]silent[/link]" in out.output


def test_cli_errors_and_empty_states(db, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(cli, ["search", "NEAR(", "--raw", "--db", str(db)])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "not a valid query" in bad.output
    unknown = runner.invoke(cli, ["search", "x", "--run", "nope", "--db", str(db)])
    assert unknown.exit_code == 2 and "nope" in unknown.output
    no_exp = runner.invoke(cli, ["search", "x", "--experiment", "nope", "--db", str(db)])
    assert no_exp.exit_code == 2 and "no experiment 'nope'" in no_exp.output
    none = runner.invoke(cli, ["search", "x", "--db", str(tmp_path / "none.db")])
    assert none.exit_code == 0 and "no runs yet" in none.output
    assert not (tmp_path / "none.db").exists()
    nothing = runner.invoke(cli, ["search", "zebra", "--db", str(db)])
    assert nothing.exit_code == 0 and "no message matches 'zebra'" in nothing.output


def test_experiment_filter_and_best_first(tmp_path):
    """`experiment=NAME` keeps the runs of that experiment only; hits come best first (bm25): the message
    most about the words before one that mentions them once among many others."""
    path = tmp_path / "d.db"
    with Store(path) as store:
        store.create_experiment("tides", "tides", {"name": "tides"})  # as `duologue batch` stores one: id = name
        # The experiment's run: one message all about the river, one long one mentioning it once.
        long = "we walked for hours past fields and hills and barns and fences and a river far away at dusk"
        store.create_run(make_run("in", [long, "river river river", "nothing"], experiment="tides"))
        store.create_run(make_run("out", ["the river", "river again, river"], minutes=1))  # no experiment
    everywhere = search_messages("river", db=path)
    assert {h.run_id for h in everywhere.hits} == {"in", "out"} and everywhere.total == 4
    result = search_messages("river", db=path, experiment="tides")
    assert [(h.run_id, h.index) for h in result.hits] == [("in", 2), ("in", 1)]  # best first
    assert (result.total, result.runs) == (2, 1)
    # The same through the CLI.
    out = CliRunner().invoke(cli, ["search", "river", "--experiment", "tides", "--json", "--db", str(path)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [(m["run_id"], m["index"]) for m in data["matches"]] == [("in", 2), ("in", 1)]
    assert data["total"] == 2
