"""Forks: a new run from the first N messages of another, with changed settings, and its lineage."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from click.testing import CliRunner

from duologue import api
from duologue.cli import cli
from duologue.errors import DuologueError
from duologue.spec import ConversationSpec, spec_from_dict
from helpers import run_cli


def parent_run(db, models, **spec):
    """A finished run of scripted alice and bob, whose `scripted/` models the CLI can fork too."""
    spec = spec_from_dict(
        {
            "participants": [
                {"name": "alice", "system": "You are Alice.", "model": "scripted/alice"},
                {"name": "bob", "system": "You are Bob.", "model": "scripted/bob"},
            ],
            "opener": "Hello.",
            "max_messages": 6,
            "seed": 5,
            **spec,
        }
    )
    return asyncio.run(api.arun_conversation(spec, db=db, make_backend=models.make))


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_fork_keeps_the_first_n_messages_and_continues_with_new_settings(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    parent = parent_run(db, scripted_models)
    base = api.fork_base(parent, 3)
    base["participants"][0]["temperature"] = base["participants"][1]["temperature"] = 1.3
    base["max_messages"] = 7
    n_before = len(scripted_models.made)
    child = api.fork_run(parent.id, 3, ConversationSpec.model_validate(base), db=db, make_backend=scripted_models.make)

    assert (child.parent_run_id, child.fork_at) == (parent.id, 3)
    assert child.id != parent.id and child.status == "finished" and len(child.messages) == 7
    kept = [(m.index, m.speaker, m.content, m.started_at, m.prompt_tokens, m.injected) for m in child.messages[:3]]
    assert kept == [
        (m.index, m.speaker, m.content, m.started_at, m.prompt_tokens, m.injected) for m in parent.messages[:3]
    ]
    # Message 4 is bob's again, and he hears the kept messages.
    new = [b for b in scripted_models.made[n_before:]]
    bob = next(b for b in new if b.name == "bob")
    assert bob.requests[0].pairs == [
        ("system", "You are Bob."),
        ("user", "Hello."),
        ("assistant", parent.messages[1].content),
        ("user", parent.messages[2].content),
    ]
    assert {r.sampling.temperature for b in new for r in b.requests} == {1.3}
    # The parent is left as it was.
    again = api.load_run(parent.id, db=db)
    assert [m.content for m in again.messages] == [m.content for m in parent.messages]
    assert again.spec["participants"][0]["temperature"] == 0.7


def test_a_fork_with_unchanged_settings_samples_as_the_parent_did(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    parent = parent_run(db, scripted_models)
    api.fork_run(parent.id, 2, db=db, make_backend=scripted_models.make)
    alice, bob = scripted_models.made_for("alice")[0], scripted_models.made_for("bob")[0]
    parent_seeds = [r.sampling.seed for r in alice.requests + bob.requests[1:]]  # messages 3..6
    fork_seeds = [r.sampling.seed for b in scripted_models.made[2:] for r in b.requests]
    assert len(fork_seeds) == 4 and sorted(parent_seeds) == sorted(fork_seeds)


def test_fork_base_folds_in_the_changes_already_made(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    parent = parent_run(
        db,
        scripted_models,
        max_messages=9,
        changes=[
            {"at": 3, "participant": "alice", "temperature": 0.2, "system": "Changed."},
            {"at": 8, "participant": "bob", "temperature": 1.9},
        ],
    )
    base = api.fork_base(parent, 5)
    alice, bob = base["participants"]
    assert (alice["temperature"], alice["system"]) == (0.2, "Changed.")
    assert [c["at"] for c in base["changes"]] == [8]
    # So a flag given to the fork wins over an earlier change instead of being undone by it.
    invoke("fork", parent.id, "--at", "5", "--temperature", "1.4", "--db", str(db))
    (child_id,) = [r["id"] for r in api.list_runs(db=db) if r["parent_run_id"]]
    child = api.load_run(child_id, db=db)
    assert [p["temperature"] for p in child.spec["participants"]] == [1.4, 1.4]
    assert child.spec["participants"][0]["system"] == "Changed."
    assert child.spec["changes"] == [{"at": 8, "participant": "bob", "model": None, "system": None, "temperature": 1.9}]


def test_fork_refuses_what_it_cannot_do(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    parent = parent_run(db, scripted_models)
    for at in (0, 7):
        with pytest.raises(DuologueError, match="has 6 messages; fork at one of 1..6"):
            api.fork_run(parent.id, at, db=db, make_backend=scripted_models.make)
    renamed = spec_from_dict({"participants": [{"name": "alice"}, {"name": "carol"}]})
    with pytest.raises(DuologueError, match="missing: bob"):
        api.fork_run(parent.id, 3, renamed, db=db, make_backend=scripted_models.make)
    assert len(api.list_runs(db=db)) == 1  # nothing half-made


def test_lineage_in_ls_show_and_the_json_export(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    parent = parent_run(db, scripted_models)
    invoke(
        "fork",
        parent.id,
        "--at",
        "3",
        "--temperature",
        "1.2",
        "--seed",
        "9",
        "--max-messages",
        "5",
        "-q",
        "--db",
        str(db),
    )
    (child,) = [r for r in api.list_runs(db=db) if r["parent_run_id"]]
    invoke("fork", child["id"], "--at", "4", "-q", "--db", str(db))
    (grandchild,) = [r for r in api.list_runs(db=db) if r["parent_run_id"] == child["id"]]

    ls = invoke("ls", "--db", str(db))
    assert f"{parent.id}@3" in ls and f"{child['id']}@4" in ls
    show_child = invoke("show", child["id"], "--db", str(db))
    assert f"forked from {parent.id} at message 3" in show_child
    assert f"forks: {grandchild['id']}@4" in show_child
    assert "temperature 1.2  seed 9" in show_child and "temperature 1.2  seed 10" in show_child
    show_grandchild = invoke("show", grandchild["id"], "--db", str(db))
    assert f"lineage: {parent.id}@3 → {child['id']}@4 → {grandchild['id']}" in show_grandchild
    assert f"forks: {child['id']}@3" in invoke("show", parent.id, "--db", str(db))
    exported = json.loads(invoke("export", child["id"], "-f", "json", "--db", str(db)))
    assert (exported["parent_run_id"], exported["fork_at"]) == (parent.id, 3)
    assert len(exported["messages"]) == 5


def test_fork_of_an_unknown_run_is_a_one_line_error(tmp_path):
    (tmp_path / "t.md").write_text(
        "# a ↔ b\n\n**Started:** 2026-01-01 10:00:00\n**Ended:** 2026-01-01 10:01:00\n**Messages:** 1\n\n---\n\n"
        "### a\n\nhello\n\n---\n\n"
    )
    run_cli("import", "t.md", cwd=tmp_path, check=True)
    proc = run_cli("fork", "nosuchrun", "--at", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "no run 'nosuchrun'" in proc.stderr and "Traceback" not in proc.stderr


def test_an_imported_transcript_can_be_continued_with_models_given(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    (tmp_path / "t.md").write_text(
        "# kimi ↔ llama\n\n**Started:** 2026-01-01 10:00:00\n**Ended:** 2026-01-01 10:01:00\n**Messages:** 3\n\n"
        "---\n\n### kimi\n\n \n\n---\n\n### llama\n\nHello?\n\n---\n\n### kimi\n\nHi.\n\n---\n\n"
    )
    parent = api.import_transcript(tmp_path / "t.md", db=db)
    with pytest.raises(DuologueError, match="no model is known for kimi, llama: give the models"):
        api.fork_run(parent.id, 3, db=db, make_backend=scripted_models.make)
    invoke(
        "fork",
        parent.id,
        "--at",
        "3",
        "--a",
        "scripted/kimi",
        "--b",
        "scripted/llama",
        "--max-messages",
        "5",
        "-q",
        "--db",
        str(db),
    )
    (child,) = [r for r in api.list_runs(db=db) if r["parent_run_id"] == parent.id]
    run = api.load_run(child["id"], db=db)
    assert [m.speaker for m in run.messages] == ["kimi", "llama", "kimi", "llama", "kimi"]
    assert [m.content for m in run.messages[:3]] == [" ", "Hello?", "Hi."]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_fork_a_looped_run_before_its_loop_at_a_higher_temperature(tmp_path):
    """Done means: greedy SmolLM2 falls into a loop; a fork from the message before it runs hotter."""
    small = ["--max-tokens", "32", "--context-length", "1024", "--seed", "1"]
    run_cli(
        "run",
        "--temperature",
        "0",
        "--max-messages",
        "20",
        "--opener",
        "Hello! What shall we talk about?",
        *small,
        cwd=tmp_path,
        check=True,
    )
    db = tmp_path / "runs" / "duologue.db"
    conn = sqlite3.connect(db)
    (parent_id, reason) = conn.execute("SELECT id, stop_reason FROM runs").fetchone()
    assert reason == "loop"
    (data,) = conn.execute("SELECT data FROM events WHERE run_id=? AND kind='loop'", (parent_id,)).fetchone()
    onset = json.loads(data)["onset"]
    assert onset >= 2
    at = onset - 1  # the message before the loop

    proc = run_cli(
        "fork",
        parent_id,
        "--at",
        str(at),
        "--temperature",
        "1.2",
        "--max-messages",
        str(at + 6),
        "--on-loop",
        "flag",
        cwd=tmp_path,
        check=True,
    )
    assert f"forked from {parent_id} at message {at}" in proc.stdout
    (child_id, parent_col, fork_at, status) = conn.execute(
        "SELECT id, parent_run_id, fork_at, status FROM runs WHERE parent_run_id IS NOT NULL"
    ).fetchone()
    assert (parent_col, fork_at, status) == (parent_id, at, "finished")
    parent_msgs = conn.execute(
        "SELECT idx, speaker, content FROM messages WHERE run_id=? ORDER BY idx", (parent_id,)
    ).fetchall()
    child_msgs = conn.execute(
        "SELECT idx, speaker, content, model FROM messages WHERE run_id=? ORDER BY idx", (child_id,)
    ).fetchall()
    assert [m[:3] for m in child_msgs[:at]] == parent_msgs[:at]
    assert len(child_msgs) == at + 6 and all(m[3] == "local/smollm2" for m in child_msgs[at:])
    spec = json.loads(conn.execute("SELECT spec FROM runs WHERE id=?", (child_id,)).fetchone()[0])
    assert [p["temperature"] for p in spec["participants"]] == [1.2, 1.2]

    ls = run_cli("ls", cwd=tmp_path, check=True).stdout
    assert f"{parent_id}@{at}" in ls
    assert f"forked from {parent_id} at message {at}" in run_cli("show", child_id, cwd=tmp_path, check=True).stdout
    assert f"forks: {child_id}@{at}" in run_cli("show", parent_id, cwd=tmp_path, check=True).stdout
    exported = json.loads(run_cli("export", child_id, "-f", "json", cwd=tmp_path, check=True).stdout)
    assert (exported["parent_run_id"], exported["fork_at"]) == (parent_id, at)
    md = (tmp_path / "runs" / f"{child_id}.md").read_text()
    assert md.count("\n### ") == at + 6
