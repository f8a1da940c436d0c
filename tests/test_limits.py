"""Token budgets and time limits: from flags and TOML, as stop reasons, and resumed with a new limit."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from duologue import api
from duologue.cli import build_spec, cli
from duologue.engine import Conversation
from duologue.errors import DuologueError, SpecError
from duologue.experiment_spec import ExperimentSpec, plan_experiment
from duologue.records import Message
from duologue.spec import Participant, spec_from_dict
from duologue.stopping import message_tokens, spent_tokens


def spec(**extra):
    return spec_from_dict(
        {
            "opener": "hello there",
            "max_messages": 20,
            "participants": [{"name": "a", "model": "scripted/a"}, {"name": "b", "model": "scripted/b"}],
            **extra,
        }
    )


def five_words(n, view):
    return f"reply {n} has five words"


def test_a_token_budget_stops_when_generated_completion_tokens_reach_it(tmp_path, scripted_models):
    scripted_models.reply = five_words
    run = api.run_conversation(spec(token_budget=12), db=tmp_path / "d.db")
    # The opener costs nothing; messages 2, 3 and 4 cost 5 each: 15 ≥ 12 after message 4.
    assert run.stop_reason == "token_budget" and len(run.messages) == 4
    assert run.stop_detail == "15 completion tokens reached the budget of 12"
    assert run.status == "finished"


def test_injected_messages_cost_nothing_and_unknown_counts_are_estimated(tmp_path, scripted_models):
    scripted_models.reply = five_words
    long = "an injected message with a great many words " * 10
    run = api.run_conversation(
        spec(token_budget=12, injections=[{"at": 3, "as": "b", "text": long}]), db=tmp_path / "d.db"
    )
    assert [m.injected for m in run.messages] == [True, False, True, False, False]
    assert run.stop_reason == "token_budget" and spent_tokens(run.messages) == 15
    unknown = Message(index=2, speaker="a", content="x" * 35, completion_tokens=None)
    assert message_tokens(unknown) == 10
    assert message_tokens(Message(index=2, speaker="a", content="x" * 36, completion_tokens=None)) == 11
    assert message_tokens(Message(index=2, speaker="a", content="x" * 36, completion_tokens=3)) == 3


class FakeClock:
    """Seconds that pass only when a reply is written: `tick` per reply."""

    def __init__(self, tick: float):
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        return self.now

    def reply(self, n, view):
        self.now += self.tick
        return f"reply {n} after {self.now}"


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(4.0)
    monkeypatch.setattr(Conversation, "clock", staticmethod(fake))
    return fake


def test_a_time_limit_stops_after_the_message_that_reaches_it(tmp_path, scripted_models, clock):
    scripted_models.reply = clock.reply
    run = api.run_conversation(spec(time_limit=10), db=tmp_path / "d.db")
    # Replies end 4, 8 and 12 seconds after the start: message 4 reaches 10 s.
    assert run.stop_reason == "time_limit" and len(run.messages) == 4
    assert run.stop_detail == "12.0 s reached the time limit of 10 s"


def test_a_run_stopped_by_its_budget_resumes_only_with_a_larger_one(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    scripted_models.reply = five_words
    run = api.run_conversation(spec(token_budget=12, max_messages=8), db=db)
    with pytest.raises(DuologueError, match="--token-budget"):
        api.resume_run(run.id, db=db)
    with pytest.raises(DuologueError, match="spent 15 completion tokens"):
        api.resume_run(run.id, db=db, token_budget=15)
    with pytest.raises(DuologueError, match="stopped at its token budget"):  # a new time limit is not enough
        api.resume_run(run.id, db=db, time_limit=60)
    again = api.resume_run(run.id, db=db, token_budget=22)
    assert again.id == run.id and again.stop_reason == "token_budget" and len(again.messages) == 6
    stored = api.load_run(run.id, db=db)
    assert stored.spec["token_budget"] == 22 and stored.status == "finished"
    limits = [e for e in api.run_events(run.id, db=db) if e["kind"] == "limits"]
    assert len(limits) == 1 and limits[0]["message_index"] == 4
    assert limits[0]["detail"] == "token budget 12 → 22"
    assert limits[0]["data"] == {"token_budget": {"from": 12, "to": 22}}
    with pytest.raises(DuologueError, match="already finished"):  # another stop reason: nothing to resume
        api.resume_run(api.run_conversation(spec(max_messages=3), db=db).id, db=db, token_budget=100)


def test_a_run_stopped_by_its_time_limit_resumes_with_a_new_one_and_the_clock_restarts(
    tmp_path, scripted_models, clock
):
    db = tmp_path / "d.db"
    scripted_models.reply = clock.reply
    run = api.run_conversation(spec(time_limit=10, max_messages=9), db=db)
    assert len(run.messages) == 4
    with pytest.raises(DuologueError, match="--time-limit"):
        api.resume_run(run.id, db=db)
    with pytest.raises(DuologueError, match="time_limit"):
        api.resume_run(run.id, db=db, time_limit=-1)
    again = api.resume_run(run.id, db=db, time_limit=6)
    # The clock starts again at the resume: replies end 4 and 8 s after it, so two more messages.
    assert again.stop_reason == "time_limit" and len(again.messages) == 6
    assert api.load_run(run.id, db=db).spec["time_limit"] == 6
    limits = [e for e in api.run_events(run.id, db=db) if e["kind"] == "limits"]
    assert [e["detail"] for e in limits] == ["time limit 10 → 6"]


def test_limits_from_toml_flags_and_experiments(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(
        'token_budget = 500\ntime_limit = 30.5\n[[participants]]\nname = "a"\n[[participants]]\nname = "b"\n'
    )
    s = build_spec(toml, {})
    assert (s.token_budget, s.time_limit) == (500, 30.5)
    s = build_spec(toml, {"token_budget": 900, "time_limit": None})
    assert (s.token_budget, s.time_limit) == (900, 30.5)
    assert (build_spec(None, {}).token_budget, build_spec(None, {}).time_limit) == (None, None)
    with pytest.raises(SpecError, match="token_budget"):
        build_spec(toml, {"token_budget": 0})
    with pytest.raises(SpecError, match="time_limit"):
        build_spec(toml, {"time_limit": 0})
    exp = ExperimentSpec(
        name="e", participants=[Participant(name="x"), Participant(name="y")], token_budget=300, time_limit=60
    )
    assert all((p.spec.token_budget, p.spec.time_limit) == (300, 60) for p in plan_experiment(exp))


def test_an_experiment_stored_before_the_limits_existed_still_runs(tmp_path, scripted_models):
    from duologue.batch import _check_experiment_record
    from duologue.store import Store

    exp = ExperimentSpec(name="old", participants=[Participant(name="x", model="scripted/x")], pairings="all_with_self")
    old = {k: v for k, v in exp.record().items() if k not in ("token_budget", "time_limit")}
    with Store(tmp_path / "d.db") as store:
        store.create_experiment("old", "old", old)
        _check_experiment_record(store, exp)  # no complaint: the unset new settings are no change
        with pytest.raises(DuologueError, match="other settings"):
            _check_experiment_record(store, exp.model_copy(update={"conversation": {"token_budget": 10}}))


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_the_cli_sets_a_budget_and_resumes_with_a_larger_one(tmp_path, scripted_models):
    db = str(tmp_path / "d.db")
    scripted_models.reply = five_words
    common = ["--a", "scripted/a", "--b", "scripted/b", "--db", db, "-q"]
    out = invoke("run", *common, "--token-budget", "12", "--opener", "hi").stdout
    assert "stop: token_budget (15 completion tokens reached the budget of 12)" in out
    assert "duologue resume" in out and "--token-budget N" in out
    run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
    refused = invoke("resume", run_id, "--db", db, code=2)
    assert "--token-budget" in refused.stderr and "Traceback" not in refused.output
    out = invoke("resume", run_id, "--db", db, "-q", "--token-budget", "25").stdout
    assert "stop: token_budget (25 completion tokens reached the budget of 25)" in out
    assert api.load_run(run_id, db=db).spec["token_budget"] == 25
    shown = invoke("show", run_id, "--db", db).stdout
    assert "token budget 25" in shown and "▸ limits: token budget 12 → 25" in shown
    for command in ("run", "fork", "resume"):
        help_text = invoke(command, "--help").stdout
        assert "--token-budget" in help_text and "--time-limit" in help_text
        assert "injected messages" in " ".join(help_text.split())


def test_the_api_resumes_with_limits_from_async_code(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    scripted_models.reply = five_words
    run = api.run_conversation(spec(token_budget=6, max_messages=6, on_loop="continue"), db=db)
    again = asyncio.run(api.aresume_run(run.id, db=db, token_budget=100))
    assert again.stop_reason == "max_messages" and len(again.messages) == 6
