"""A plugin provider gets what the embedded provider gets, through the same hooks: a scope shared by the
conversations of a workload (one run, or a batch), a scope per conversation, each participant prepared
as it will run, and the window the run needs (tests/plugins/duologue_pooled)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from duologue import api
from duologue.backends.registry import register_provider, unregister_provider
from duologue.context import run_context
from duologue.experiment_spec import ExperimentSpec
from duologue.spec import Participant, spec_from_dict
from duologue.store import Store

sys.path.insert(0, str(Path(__file__).parent / "plugins" / "duologue_pooled"))
import duologue_pooled  # noqa: E402


@pytest.fixture
def pooled():
    duologue_pooled.POOLS.clear()
    register_provider(duologue_pooled.PROVIDER)
    try:
        yield duologue_pooled.POOLS
    finally:
        unregister_provider("pooled")


def spec(**extra):
    return spec_from_dict(
        {
            "participants": [{"name": n, "model": f"pooled/{n}"} for n in ("a", "b")],
            "max_messages": 4,
            "on_loop": "continue",
            "on_near_loop": "continue",
            **extra,
        }
    )


def test_a_run_opens_a_scope_of_its_own_and_its_backends_get_the_window_and_their_conversation(pooled, tmp_path):
    s = spec()
    run = api.run_conversation(s, db=tmp_path / "d.db")
    assert run.status == "finished" and len(run.messages) == 4
    (pool,) = pooled
    assert (pool.conversations, pool.at_once, pool.closed) == (1, 1, True)  # one run, closed when it ended
    assert [b.model for b in pool.backends] == ["pooled/b", "pooled/a"]
    assert {b.conversation for b in pool.backends} == {run.id}
    assert {b.window for b in pool.backends} == {run_context(s, s.participants[0])}
    # Prepared inside the workload, and stored as it ran.
    assert [p["extra"] for p in run.spec["participants"]] == [{"pool_size": 1}] * 2


def test_a_participant_with_its_own_context_length_gets_no_window(pooled, tmp_path):
    api.run_conversation(
        spec(
            **{
                "participants": [
                    {"name": "a", "model": "pooled/a", "context_length": 512},
                    {"name": "b", "model": "pooled/b"},
                ]
            }
        ),
        db=tmp_path / "d.db",
    )
    (pool,) = pooled
    windows = {b.model: b.window for b in pool.backends}
    assert windows["pooled/a"] is None and windows["pooled/b"] is not None


def test_a_batch_shares_one_scope_among_its_conversations(pooled, tmp_path):
    exp = ExperimentSpec(
        name="pooled-batch",
        participants=[Participant(name="a", model="pooled/a"), Participant(name="b", model="pooled/b")],
        repeats=3,
        max_messages=4,
        concurrency={"pooled": 2},
    )
    result = api.run_experiment(exp, db=tmp_path / "d.db")
    assert result.finished == 3
    (pool,) = pooled  # one scope for the whole batch, not one per conversation
    assert (pool.conversations, pool.at_once, pool.closed) == (3, 2, True)
    with Store(tmp_path / "d.db") as store:
        ids = {r.id for r in store.list_runs()}
        stored = [store.get_run(i).spec for i in ids]
    # Each conversation's backends knew their own conversation; each participant was prepared in the pool.
    assert {b.conversation for b in pool.backends} == ids and len(pool.backends) == 6
    assert all(p["extra"] == {"pool_size": 2} for s in stored for p in s["participants"])
