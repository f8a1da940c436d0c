"""Scripts and notebooks: --json on the reading commands, exit status 1 on errors, the sync API in a loop."""

from __future__ import annotations

import asyncio
import json
import signal
import threading

import pytest
from click.testing import CliRunner

from duologue import api
from duologue.batch import run_experiment
from duologue.cli import cli
from duologue.errors import BackendError
from duologue.experiment_spec import ExperimentSpec
from duologue.spec import Participant, spec_from_dict


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def as_json(result):
    """stdout is one JSON document, with no colour or markup."""
    assert "\x1b[" not in result.stdout
    return json.loads(result.stdout)


def spec(**extra):
    return spec_from_dict(
        {
            "opener": "hello there",
            "max_messages": 5,
            "participants": [{"name": "a", "model": "scripted/a"}, {"name": "b", "model": "scripted/b"}],
            **extra,
        }
    )


def fails_at(k: int):
    def reply(n, view):
        if n == k:
            raise BackendError("the server went away")
        return f"reply {n} to {len(view)}"  # new backends count from 1 again: the view tells messages apart

    return reply


def test_run_fork_and_resume_exit_1_when_the_run_ends_with_an_error(tmp_path, scripted_models):
    db = str(tmp_path / "d.db")
    common = ["--a", "scripted/a", "--b", "scripted/b", "--db", db, "-q", "--max-messages", "6"]
    scripted_models.reply = fails_at(2)  # each backend's 2nd reply: message 4, A's second
    failed = invoke("run", *common, code=1)
    assert "stop: error (the server went away)" in failed.stdout
    assert "ended with an error: the server went away" in failed.stderr
    run_id = as_json(invoke("ls", "--json", "--db", db))[0]["id"]
    assert invoke("resume", run_id, "--db", db, "-q", code=1).stderr.count("ended with an error") == 1
    invoke("fork", run_id, "--at", "2", "--db", db, "-q", code=1)
    scripted_models.reply = lambda n, view: f"fine {n} to {len(view)}"
    invoke("resume", run_id, "--db", db, "-q", code=0)
    invoke("run", *common, code=0)


def test_ls_and_show_as_json(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    scripted_models.reply = lambda n, view: f"reply {n}"
    parent = api.run_conversation(spec(), db=db)
    child = api.fork_run(parent.id, 3, db=db)
    rows = as_json(invoke("ls", "--json", "--db", str(db)))
    assert [r["id"] for r in rows] == [child.id, parent.id]
    assert set(rows[0]) == {
        "id",
        "title",
        "participants",
        "models",
        "started_at",
        "ended_at",
        "status",
        "stop_reason",
        "stop_detail",
        "parent_run_id",
        "fork_at",
        "experiment_id",
        "messages",
        "cost_usd",
        "cost_unknown_messages",
        "verdict",
    }
    assert rows[0]["parent_run_id"] == parent.id and rows[0]["fork_at"] == 3 and rows[1]["messages"] == 5
    shown = as_json(invoke("show", parent.id, "--json", "--db", str(db)))
    assert shown["format"] == "duologue.run/1" and shown["id"] == parent.id
    assert [m["content"] for m in shown["messages"]] == [m.content for m in parent.messages]
    assert shown["stop_reason"] == "max_messages" and shown["spec"]["max_messages"] == 5
    assert "analysis" in shown and isinstance(shown["events"], list)
    assert shown["lineage"] == {"ancestors": [], "forks": [{"run_id": child.id, "fork_at": 3}]}
    child_shown = as_json(invoke("show", child.id, "--json", "--db", str(db)))
    assert child_shown["lineage"]["ancestors"] == [{"run_id": parent.id, "child_fork_at": 3}]
    assert as_json(invoke("ls", "--json", "--db", str(db), "-n", "1"))[0]["id"] == child.id


def test_models_as_json(scripted_models, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    data = as_json(invoke("models", "--json"))
    providers = {p["name"]: p for p in data["providers"]}
    assert set(providers["openrouter"]) == {"name", "model_string", "api", "key_env", "key", "base_url", "description"}
    assert providers["openrouter"]["key_env"] == "OPENROUTER_API_KEY" and providers["openrouter"]["key"] == "not set"
    assert providers["scripted"]["model_string"] == "scripted/<model>"
    smol = next(m for m in data["embedded"] if m["model_string"] == "local/smollm2")
    assert set(smol) == {"model_string", "description", "package", "installed", "path"}
    assert smol["installed"] == (smol["path"] is not None)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-secret-value")
    out = invoke("models", "--json").stdout
    assert "sk-secret-value" not in out
    assert {p["name"]: p for p in json.loads(out)["providers"]}["openrouter"]["key"] == "set"


def experiment_toml(tmp_path, openers=("hello", "fail here")) -> str:
    path = tmp_path / "exp.toml"
    listed = ", ".join(json.dumps(o) for o in openers)
    path.write_text(
        f'name = "scr"\nmax_messages = 4\nopeners = [{listed}]\npairings = "all"\n'
        '[[participants]]\nname = "x"\nmodel = "scripted/x"\n'
        '[[participants]]\nname = "y"\nmodel = "scripted/y"\n'
    )
    return str(path)


def test_batch_and_report_as_json_and_the_error_count(tmp_path, scripted_models):
    db = str(tmp_path / "d.db")

    def reply(n, view):
        if any(m.content == "fail here" for m in view):
            raise BackendError("refused")
        return f"reply {n}"

    scripted_models.reply = reply
    toml = experiment_toml(tmp_path)
    plan = as_json(invoke("batch", toml, "--dry-run", "--json", "--db", db))
    assert plan["experiment"] == "scr" and plan["conversations"] == 2 and plan["max_messages"] == 8
    assert [c["opener"] for c in plan["cells"]] == ["hello", "fail here"]
    done = invoke("batch", toml, "--json", "--db", db, code=1)
    assert done.stderr.strip() == "1 of 2 conversations ended with an error"
    out = as_json(done)
    assert {k: out[k] for k in ("experiment", "planned", "skipped", "finished")} == {
        "experiment": "scr",
        "planned": 2,
        "skipped": 0,
        "finished": 1,
    }
    assert [e["detail"] for e in out["errors"]] == ["refused"] and out[
        "messages"
    ] == 4 + 1  # the failed one stored its opener
    text = invoke("batch", toml, "--db", db, code=1)  # re-run: the failed one again, without --json
    assert "1 of 2 conversations ended with an error" in text.stderr and "error in run" in text.stdout
    scripted_models.reply = lambda n, view: f"reply {n}"
    again = as_json(invoke("batch", toml, "--json", "--db", db))
    assert again["skipped"] == 1 and again["finished"] == 2 and again["errors"] == []
    rep = as_json(invoke("report", "scr", "--json", "--db", db, "-o", str(tmp_path / "rep")))
    assert rep["experiment"] == "scr" and rep["runs"] == 2
    assert {g["group"] for g in rep["by_opener"]} == {"hello", "fail here"}
    assert json.loads((tmp_path / "rep" / "scr-report.json").read_text()) == rep


def test_the_sync_api_works_inside_a_running_event_loop(tmp_path, scripted_models):
    """As in a notebook, where a loop already runs: the sync functions still run to the end."""
    db = tmp_path / "d.db"
    scripted_models.reply = fails_at(2)

    async def notebook_cell():
        run = api.run_conversation(spec(), db=db)
        scripted_models.reply = lambda n, view: f"again {n} to {len(view)}"
        resumed = api.resume_run(run.id, db=db)
        forked = api.fork_run(run.id, 2, db=db)
        exp = ExperimentSpec(
            name="nb",
            participants=[Participant(name="x", model="scripted/x"), Participant(name="y", model="scripted/y")],
            max_messages=3,
        )
        result = run_experiment(exp, db=db)
        return run, resumed, forked, result

    run, resumed, forked, result = asyncio.run(notebook_cell())
    assert run.status == "error" and len(run.messages) == 3
    assert resumed.id == run.id and resumed.stop_reason == "max_messages" and len(resumed.messages) == 5
    assert forked.parent_run_id == run.id and forked.stop_reason == "max_messages"
    assert result.finished == 1 and result.errors == []


class InterruptAt(api.RunListener):
    """Sends SIGINT to a thread when message `index` starts, as a person pressing stop would; opens
    `gate` (which holds that message's reply) once the run has ended."""

    def __init__(self, index: int, thread: int, gate: threading.Event):
        self.index, self.thread, self.gate = index, thread, gate

    def message_started(self, run, index, speaker):
        if index == self.index:
            signal.pthread_kill(self.thread, signal.SIGINT)

    def run_ended(self, run):
        self.gate.set()


def test_an_interrupt_while_a_sync_call_waits_in_a_loop_cancels_the_run(tmp_path, scripted_models):
    """The notebook's stop button: KeyboardInterrupt in the waiting thread; the run is stored as interrupted."""
    db = tmp_path / "d.db"
    gate = threading.Event()
    scripted_models.gates["b"] = gate  # b's first reply (message 2) waits until the run has ended
    current = api.CurrentRun()

    async def notebook_cell():
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a kernel's handler does
        try:
            with pytest.raises(KeyboardInterrupt):
                listeners = [current, InterruptAt(2, threading.get_ident(), gate)]
                api.run_conversation(spec(), db=db, listeners=listeners)
        finally:
            signal.signal(signal.SIGINT, previous)

    asyncio.run(notebook_cell())
    run = api.load_run(current.id, db=db)
    assert run.status == "interrupted" and run.stop_reason == "interrupted" and len(run.messages) == 1
