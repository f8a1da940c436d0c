"""Extending a finished run: `resume --max-messages N`, whatever stopped it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from duologue import api
from duologue.cli import cli
from duologue.errors import DuologueError
from duologue.spec import spec_from_dict


def spec(**extra):
    return spec_from_dict(
        {
            "opener": "hello there",
            "participants": [{"name": "a", "model": "scripted/a"}, {"name": "b", "model": "scripted/b"}],
            **extra,
        }
    )


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result


def test_a_run_that_reached_its_message_limit_is_extended_and_the_change_recorded(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    run = api.run_conversation(spec(max_messages=4), db=db)
    assert run.stop_reason == "max_messages" and len(run.messages) == 4
    with pytest.raises(DuologueError, match="--max-messages N"):
        api.resume_run(run.id, db=db)
    for too_few in (3, 4):
        with pytest.raises(DuologueError, match="already has 4 messages; give a --max-messages above that"):
            api.resume_run(run.id, db=db, max_messages=too_few)
    again = api.resume_run(run.id, db=db, max_messages=7)
    assert again.status == "finished" and again.stop_reason == "max_messages" and len(again.messages) == 7
    assert [m.index for m in again.messages] == list(range(1, 8))
    assert api.load_run(run.id, db=db).spec["max_messages"] == 7
    limits = [ev for ev in api.run_events(run.id, db=db) if ev["kind"] == "limits"]
    assert len(limits) == 1 and limits[0]["detail"] == "max messages 4 → 7"
    assert limits[0]["data"] == {"max_messages": {"from": 4, "to": 7}}


def test_a_run_a_loop_stopped_goes_on_to_its_new_limit(tmp_path, scripted_models):
    # The loop found before the resume was reported then: the same loop going on does not stop it again.
    db = tmp_path / "d.db"
    scripted_models.reply = lambda n, view: "the very same words every single time"
    run = api.run_conversation(spec(max_messages=30, on_loop="stop"), db=db)
    assert run.stop_reason in ("loop", "near_loop") and len(run.messages) < 30
    had = len(run.messages)
    again = api.resume_run(run.id, db=db, max_messages=had + 10)
    assert again.stop_reason == "max_messages" and len(again.messages) == had + 10


def test_the_cli_extends_a_finished_run(tmp_path, scripted_models):
    db = str(tmp_path / "d.db")
    invoke("run", "--a", "scripted/a", "--b", "scripted/b", "--max-messages", "3", "--db", db, "-q")
    run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
    refused = invoke("resume", run_id, "--db", db, code=2)
    assert f"duologue resume {run_id} --max-messages N" in refused.stderr
    refused = invoke("resume", run_id, "--db", db, "--max-messages", "2", code=2)
    assert refused.stderr.count("\n") == 1 and "already has 3 messages" in refused.stderr
    assert "Traceback" not in refused.output
    out = invoke("resume", run_id, "--db", db, "-q", "--max-messages", "5").stdout
    assert "messages: 5   stop: max_messages" in out
    shown = invoke("show", run_id, "--db", db).stdout
    assert "▸ limits: max messages 3 → 5" in shown
    assert "--max-messages" in invoke("resume", "--help").stdout
