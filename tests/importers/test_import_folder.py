"""`duologue import DIR`: a folder of logs in one command, what is stored and what is listed, --strict,
re-importing, globs, and a collection (`--experiment`) that `report`, the viewer and exports read like an
experiment duologue ran, split by model pairing and template.

The folder is tests/fixtures/importers/backrooms_logs/ (written by hand in each shape of
UniversalBackrooms' logs; see test_backrooms_shapes.py), copied so each test has its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from duologue import api
from duologue.cli import cli
from duologue.store import Store
from helpers import FIXTURES, assert_one_line_error, run_cli

LOGS = FIXTURES / "importers" / "backrooms_logs"
GOOD = {
    "dreamsim3/gpt5_k2_dreamsim3_20250906_101500.txt": 6,
    "dreamsim3/haiku3_opus4_dreamsim3_20250910_151643.txt": 1,
    "dreamsim3/k2_k2_dreamsim3_20250907_090000.txt": 3,
    "emoji_brother/opus4_opus4_emoji_brother_20250920_120000.txt": 2,
    "testing/hermes_reasoning_hermes_reasoning_cli_20250901_205804.txt": 3,
}
SKIPPED = {
    "emoji_brother/sonnet4_sonnet4_emoji_brother_20250923_212246.txt": "no message to import: the log holds only "
    "the run's header (Template: emoji_brother, Models: sonnet4, sonnet4), the template's variables and a round line",
    "gallery/opus4_gallery_20250920_134359.txt": "no message to import: the log holds only the run's header "
    "(Template: gallery, Models: opus4)",
    "oneoff/lucid_20250912_212222_PAPER LIGHTHOUSE.txt": "no message to import: the log holds only blocks of "
    "Media Agent, Media Agent (Discord Post)",
}
SIDE_FILES = ["dreamsim3/dreamsim3_meta.jsonl", "oneoff/lucid_20250912_212222_PAPER LIGHTHOUSE.txt.media_state.json"]


@pytest.fixture
def logs(tmp_path) -> Path:
    return Path(shutil.copytree(LOGS, tmp_path / "logs"))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)


def sources(db: Path) -> dict[str, int]:
    with Store(db, create=False) as store:
        return {Path(s).name: n for s, n in store.conn.execute("SELECT source, message_count FROM runs")}


def test_a_folder_stores_the_good_files_lists_the_others_and_counts(logs, tmp_path):
    db = tmp_path / "d.db"
    result = invoke("import", str(logs), "--db", str(db))
    assert result.exit_code == 1  # some files were skipped
    imported = [line.split(" as run ")[0] for line in result.stdout.splitlines()]
    assert imported == [f"imported {logs / name}" for name in sorted(GOOD)]
    assert result.stderr.splitlines() == [
        *(f"skipped {logs / name}: {reason}" for name, reason in sorted(SKIPPED.items())),
        f"5 files imported (5 runs); 3 skipped; 2 left alone: no format recognises them ({logs / SIDE_FILES[0]}, "
        f"{logs / SIDE_FILES[1]})",
    ]
    assert sources(db) == {Path(name).name: n for name, n in GOOD.items()}
    with Store(db) as store:
        runs = store.list_runs()
        assert not [p for r in runs for p in r.participants if "Agent" in p or "Discord" in p or "SQL" in p]
        kinds = dict(store.conn.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall())
    assert kinds == {"agent": 10, "agent_error": 1}


def test_a_folder_where_every_file_imports_exits_0(logs, tmp_path):
    for name in SKIPPED:
        (logs / name).unlink()
    result = invoke("import", str(logs), "--db", str(tmp_path / "d.db"))
    assert result.exit_code == 0, result.output
    assert result.stderr.endswith("5 files imported (5 runs); 0 skipped; 2 left alone: no format recognises them "
                                  f"({logs / SIDE_FILES[0]}, {logs / SIDE_FILES[1]})\n")  # fmt: skip


def test_strict_is_all_or_nothing(logs, tmp_path):
    proc = run_cli("import", str(logs), "--strict", "--db", "d.db", cwd=tmp_path)
    assert_one_line_error(proc, "no message to import", "sonnet4_sonnet4_emoji_brother_20250923_212246.txt")
    assert not (tmp_path / "d.db").exists()


def test_importing_the_same_files_again_stores_nothing_new(logs, tmp_path):
    db = tmp_path / "d.db"
    first = invoke("import", str(logs), "--db", str(db))
    ids = {line.split(" as run ")[1].split()[0] for line in first.stdout.splitlines()}
    again = invoke("import", str(logs), "--db", str(db), "--json")
    assert again.exit_code == 1  # the files without a message are skipped again
    outcome = json.loads(again.stdout)
    assert outcome["imported"] == []
    assert {Path(k["file"]).relative_to(logs).as_posix() for k in outcome["known"]} == set(GOOD)
    assert {i for k in outcome["known"] for i in k["run_ids"]} == ids
    # The same bytes anywhere else are the same file; a changed file is a new one.
    elsewhere = tmp_path / "copy.txt"
    shutil.copy(logs / "dreamsim3" / "k2_k2_dreamsim3_20250907_090000.txt", elsewhere)
    result = invoke("import", str(elsewhere), "--db", str(db))
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.startswith(f"already imported {elsewhere} (run ")
    with elsewhere.open("a", encoding="utf-8") as f:
        f.write("\n### Round 3/inf\n")
    assert invoke("import", str(elsewhere), "--db", str(db)).stdout.startswith(f"imported {elsewhere} as run ")
    with Store(db) as store:
        assert len(store.list_runs()) == len(GOOD) + 1


def test_a_glob_picks_files_and_a_glob_of_nothing_is_an_error(logs, tmp_path):
    db = tmp_path / "d.db"
    result = invoke("import", f"{logs}/dreamsim3/*.txt", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert sorted(sources(db)) == sorted(Path(n).name for n in GOOD if n.startswith("dreamsim3/"))
    result = invoke("import", f"{logs}/**/*.txt", "--db", str(tmp_path / "all.db"))
    assert result.exit_code == 1 and len(sources(tmp_path / "all.db")) == len(GOOD)
    proc = run_cli("import", f"{logs}/*.nothing", "--db", "x.db", cwd=tmp_path)
    assert_one_line_error(proc, "*.nothing: matches no file")
    proc = run_cli("import", "no-such-folder", "--db", "x.db", cwd=tmp_path)
    assert_one_line_error(proc, "no-such-folder: no such file or folder")


def test_a_file_that_is_not_utf8_is_imported_with_a_note(logs, tmp_path):
    log = logs / "dreamsim3" / "gpt5_k2_dreamsim3_20250906_101500.txt"
    log.write_bytes(log.read_bytes().replace(b"wake up", b"wake \xff up"))
    result = invoke("import", str(logs / "dreamsim3"), "--db", str(tmp_path / "d.db"))
    assert result.exit_code == 0, result.output
    assert f"note: {log}: 1 byte sequence that is not UTF-8 replaced by U+FFFD (the first on line 54)" in (
        result.stderr
    )


def test_show_prints_an_imported_runs_first_message_once_and_no_empty_fields(logs, tmp_path):
    db = tmp_path / "d.db"
    result = invoke("import", str(logs / "dreamsim3" / "gpt5_k2_dreamsim3_20250906_101500.txt"), "--db", str(db))
    run_id = result.stdout.split(" as run ")[1].split()[0]
    shown = invoke("show", run_id, "--db", str(db)).stdout
    assert shown.count("you stand in a lighthouse made of folded maps") == 1
    assert "opener:" not in shown and "limits:" not in shown and "None" not in shown
    assert "  GPT-5 1: gpt5\n" in shown  # the model its header names, not `imported`
    assert (
        "metadata: format backrooms  template dreamsim3  models gpt5, k2  started 2025-09-06T01:15:00.250000+00:00"
        in (shown)
    )
    assert "stop max_messages (Reached maximum number of turns (3). Conversation ended.)" in shown
    # The agents' blocks where they happened, with what they wrote.
    after_two = shown.split("> climb the stairs\n", 1)[1].split("### GPT-5 1", 1)[0]
    assert "▸ agent: Media Agent\n  Mode: t2i\n  Prompt: a lighthouse of folded paper maps at dusk\n" in after_two
    assert "▸ agent: Discord Agent\n  posted: the keeper of the paper lighthouse climbs\n" in after_two
    assert "▸ agent_error: Discord Agent error: list index out of range\n" in shown


# -- a collection to study ----------------------------------------------------------------------------------------


def test_a_collection_is_reported_by_pairing_and_by_template(logs, tmp_path):
    db = tmp_path / "d.db"
    result = invoke("import", str(logs), "--experiment", "backrooms", "--db", str(db))
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "collection backrooms: 5 runs added and analysed; report: duologue report backrooms\n"
    )
    report = json.loads(invoke("report", "backrooms", "--db", str(db), "-o", str(tmp_path / "r"), "--json").stdout)
    assert report["runs"] == 5 and report["settings"] == ["pairing", "template"]
    by_pairing = {g["group"]: g for g in report["by_pairing"]}
    assert sorted(by_pairing) == [
        "gpt5 ↔ k2",
        "haiku3 ↔ opus4",
        "hermes_reasoning ↔ hermes_reasoning",
        "k2 ↔ k2",
        "opus4 ↔ opus4",
    ]
    assert by_pairing["k2 ↔ k2"]["stop_reasons"] == {"end_marker": 1}
    assert {g["group"]: g["runs"] for g in report["by_template"]} == {"cli": 1, "dreamsim3": 3, "emoji_brother": 1}
    # End-state shares per pairing (the attractor map), each pairing's shares summing to 1.
    ends = {g["group"]: g["end_states"] for g in report["attractors"]["by_pairing"]}
    assert set(ends) == set(by_pairing)
    assert all(abs(sum(shares.values()) - 1) < 1e-6 for shares in ends.values())
    assert {g["group"] for g in report["attractors"]["by_template"]} == {"cli", "dreamsim3", "emoji_brother"}
    assert set(report["survival"]) == set(by_pairing)
    shown = invoke("report", "backrooms", "--db", str(db), "-o", str(tmp_path / "r")).stdout
    assert "by template" in shown and "attractor map by template" in shown


def test_a_collection_exports_its_tables_and_shows_in_the_viewer(logs, tmp_path):
    from starlette.testclient import TestClient

    from duologue.web import create_app

    db = tmp_path / "d.db"
    invoke("import", str(logs), "--experiment", "backrooms", "--db", str(db))
    written = invoke("export", "backrooms", "--db", str(db), "-o", str(tmp_path / "tables")).stdout
    assert "backrooms-runs.csv" in written
    header = (tmp_path / "tables" / "backrooms-runs.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "pairing" in header and "template" in header
    client = TestClient(create_app(db))
    page = client.get("/experiments/backrooms")
    assert page.status_code == 200
    assert "gpt5 ↔ k2" in page.text and "emoji_brother" in page.text
    # A run's page shows its agents' blocks in the events' timeline, with what they wrote.
    with Store(db) as store:
        (run_id,) = [r.id for r in store.list_runs() if r.title == "GPT-5 1 ↔ Kimi K2 2"]
    page = client.get(f"/runs/{run_id}").text
    assert 'data-kind="agent"' in page and "Prompt: a lighthouse of folded paper maps at dusk" in page
    assert "Discord Agent error: list index out of range" in page


def test_runs_imported_before_join_a_collection_and_an_experiment_that_ran_is_not_one(logs, tmp_path):
    db = tmp_path / "d.db"
    invoke("import", str(logs), "--db", str(db))
    result = invoke("import", str(logs), "--experiment", "study", "--db", str(db), "--json")
    outcome = json.loads(result.stdout)
    assert outcome["imported"] == [] and len(outcome["joined"]) == len(GOOD) and outcome["analysed"] == len(GOOD)
    with Store(db) as store:
        assert len(store.experiment_run_records("study")) == len(GOOD)
        store.create_experiment("ran", "ran", {"name": "ran", "participants": []})
    proc = run_cli("import", str(logs), "--experiment", "ran", "--db", str(db), cwd=tmp_path)
    assert_one_line_error(proc, "'ran' is an experiment duologue ran", "not a collection")


def test_the_python_api_gives_the_same_outcome(logs, tmp_path):
    outcome = api.import_files([logs], db=tmp_path / "d.db")
    assert sorted(Path(r.source).relative_to(logs).as_posix() for r in outcome.imported) == sorted(GOOD)
    assert {p.relative_to(logs).as_posix(): reason for p, reason in outcome.skipped} == SKIPPED
    assert sorted(p.relative_to(logs).as_posix() for p in outcome.ignored) == sorted(SIDE_FILES)


def test_a_collection_imported_again_analyses_what_a_stopped_import_left_unanalysed(logs, tmp_path):
    db = tmp_path / "d.db"
    api.import_files([logs], db=db, experiment="backrooms")
    with Store(db) as store:
        run_id = store.experiment_run_records("backrooms")[0].id
        with store.conn:  # as if the import had been stopped before this run's analysis
            store.conn.execute("UPDATE runs SET analysis = NULL WHERE id = ?", (run_id,))
        assert store.run_loops(run_id) is None
    outcome = api.import_files([logs], db=db, experiment="backrooms")
    assert (outcome.imported, outcome.joined, outcome.analysed) == ([], [], 1)
    with Store(db) as store:
        assert store.run_loops(run_id) is not None


def test_an_imported_participants_model_is_its_first_messages_else_the_files_list_else_as_specified():
    """Run.models (what `ls`, `show`, the viewer and the store's models column say) and a collection's
    pairing read an imported participant's model the same way."""
    from datetime import UTC, datetime

    from duologue.importers.corpus import pairing
    from duologue.records import IMPORTED_MODEL, Message, Run

    def run(metadata, *models):
        participants = [{"name": n, "model": m} for n, m in zip("abc", models, strict=False)]
        messages = [Message(1, "a", "hi", model="from-a"), Message(2, "b", "ho"), Message(3, "a", "x", model="later")]
        spec = {"participants": participants, "metadata": metadata}
        return Run(id="r", participants=list("abc"), spec=spec, started_at=datetime.now(UTC), messages=messages)

    both = run({"models": ["named-a", "named-b", "named-c"]}, IMPORTED_MODEL, IMPORTED_MODEL, "openai/x")
    assert both.models == ["from-a", "named-b", "openai/x"]  # a model duologue ran is never replaced
    assert pairing(both) == "named-a ↔ named-b ↔ named-c"  # a pairing is the file's list when it has one
    unnamed = run({}, IMPORTED_MODEL, IMPORTED_MODEL, None)
    assert unnamed.models == ["from-a", IMPORTED_MODEL, None]
    assert pairing(unnamed) == "from-a ↔ b ↔ c"  # else each one's model, else its name
