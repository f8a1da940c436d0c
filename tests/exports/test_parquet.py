"""Parquet for chat fine-tuning: one row per (run, participant), `messages` as that participant saw the run."""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from duologue import api, export_runs_parquet
from helpers import cli_env

from .sample import EXPERIMENT, FAILED_RUN, build_store, invoke

MESSAGES = pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())]))


@pytest.fixture
def store(tmp_path, scripted_models):
    return build_store(tmp_path, scripted_models), scripted_models


def rows_by(table) -> dict[tuple[str, str], dict]:
    return {(r["run_id"], r["participant"]): r for r in table.to_pylist()}


def test_all_runs_one_row_per_participant_with_the_public_schema(store, tmp_path):
    (db, ids), scripted = store
    out = tmp_path / "views.parquet"
    result = invoke("export", "--all", "--format", "parquet", "-o", str(out), "--db", str(db))
    assert f"wrote {out} (9 rows: one per participant of each run)" in result.stderr
    table = pq.read_table(out)
    assert table.schema.names[:4] == ["run_id", "participant", "model", "messages"]
    assert table.schema.field("run_id").type == pa.string() and table.schema.field("model").type == pa.string()
    # list<struct<role: string, content: string>>, as chat templates and `datasets` expect (the list's own
    # field name is the writer's: compare the value type).
    assert table.schema.field("messages").type.value_type == MESSAGES.value_type
    # Runs oldest first, each run's participants in speaking order.
    assert [(r["run_id"], r["participant"]) for r in table.to_pylist()] == [
        (ids[0], "ann"),
        (ids[0], "ben"),
        (ids[1], "a"),
        (ids[1], "b"),
        (ids[2], "x"),
        (ids[2], "y"),
        (ids[2], "z"),
        (FAILED_RUN, "a"),
        (FAILED_RUN, "b"),
    ]
    rows = rows_by(table)

    # Each view is what the engine sent that participant: its last request, then its own reply, then the rest.
    hostile, three = ids[1], ids[2]
    for run_id in (hostile, three):
        run = api.load_run(run_id, db=db)
        for name in run.participants:
            view = [(m["role"], m["content"]) for m in rows[(run_id, name)]["messages"]]
            last = scripted.requests_of(name)[-1].pairs  # the names differ from run to run
            assert view[: len(last)] == last, (run_id, name)
            own = [m.content for m in run.messages if m.speaker == name]
            assert view[len(last)] == ("assistant", own[-1])
            assert rows[(run_id, name)]["model"] == f"scripted/{name}"
            assert all(role in ("system", "user", "assistant") for role, _ in view)
    # b's private history comes after its system prompt, before the conversation; a never sees it.
    b = [(m["role"], m["content"]) for m in rows[(hostile, "b")]["messages"]]
    assert b[:4] == [("system", "You are B."), ("user", "earlier"), ("assistant", "noted"), ("user", "hello there")]
    a = [(m["role"], m["content"]) for m in rows[(hostile, "a")]["messages"]]
    assert a[:3] == [("system", "You are A."), ("assistant", "hello there"), ("user", "<script>alert(1)</script>")]
    assert ("user", "earlier") not in a
    # With three voices the others' messages carry their names.
    y = [(m["role"], m["content"]) for m in rows[(three, "y")]["messages"]]
    assert y[1] == ("user", "x: all of you, hello") and y[2] == ("assistant", "y says 1")
    # An imported transcript's system prompts are unknown: none, rather than duologue's default.
    ann = [(m["role"], m["content"]) for m in rows[(ids[0], "ann")]["messages"]]
    assert ann == [("assistant", "Hi."), ("user", "Hello, ann."), ("assistant", "Bye.")]
    assert rows[(FAILED_RUN, "a")]["experiment_id"] == EXPERIMENT
    assert rows[(FAILED_RUN, "a")]["status"] == "error" and rows[(hostile, "a")]["stop_reason"] == "max_messages"


def test_one_run_and_filters(store, tmp_path):
    (db, ids), _ = store
    one = invoke("export", ids[2][-6:], "--format", "parquet", "--db", str(db)).stdout_bytes
    table = pq.read_table(pa.BufferReader(one))
    assert table.column("participant").to_pylist() == ["x", "y", "z"]
    assert set(table.column("run_id").to_pylist()) == {ids[2]}
    exp = export_runs_parquet(experiment=EXPERIMENT, db=db)
    assert pq.read_table(pa.BufferReader(exp)).column("run_id").to_pylist() == [FAILED_RUN, FAILED_RUN]
    assert export_runs_parquet(tmp_path / "f.parquet", status="finished", db=db) == 7  # 2 + 2 + 3
    empty = pq.read_table(pa.BufferReader(export_runs_parquet(stop="loop", db=db)))
    assert empty.num_rows == 0 and empty.schema.names[:4] == ["run_id", "participant", "model", "messages"]


def test_datasets_reads_it(store, tmp_path, monkeypatch):
    (db, ids), _ = store
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # a local file: nothing to fetch
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "views.parquet"
    export_runs_parquet(out, db=db)
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(out), split="train")
    assert ds.num_rows == 9 and ds[0]["messages"][0]["role"] in ("system", "assistant")
    assert set(ds.features["messages"].feature) == {"role", "content"}  # what chat templates and fine-tuning read


def test_a_changed_participant_and_a_spec_that_does_not_validate():
    from datetime import UTC, datetime

    from duologue.exports.parquet import view_rows
    from duologue.records import Message, Run

    spec = {
        "participants": [
            {"name": "a", "model": "p/one", "system": "first"},
            {"name": "b", "model": "p/two", "system": "B"},
        ],
        "changes": [{"at": 3, "participant": "a", "model": "p/three", "system": "second"}],
    }
    messages = [Message(1, "a", "hi", injected=True), Message(2, "b", "hello"), Message(3, "a", "again")]
    run = Run(id="r", spec=spec, participants=["a", "b"], started_at=datetime.now(UTC), messages=messages)
    a, b = view_rows(run)
    # As a spoke last: with the model and system prompt the change gave it.
    assert a["model"] == "p/three" and a["messages"][0] == {"role": "system", "content": "second"}
    assert [m["role"] for m in a["messages"]] == ["system", "assistant", "user", "assistant"]
    assert b["model"] == "p/two" and [m["role"] for m in b["messages"]] == ["system", "user", "assistant", "user"]
    # A spec duologue cannot read any more still gives each participant its view, with what it can tell.
    run.spec = {"participants": [{"name": "a", "system": "S", "colour": "red"}, {"name": "b"}], "odd": 1}
    a, b = view_rows(run)
    assert a["messages"][0] == {"role": "system", "content": "S"} and a["model"] is None
    assert b["messages"][0] == {"role": "user", "content": "hi"}
    run.spec = {}
    assert [r["participant"] for r in view_rows(run)] == ["a", "b"]


def test_parquet_is_not_written_to_a_terminal(store):
    import pexpect

    (db, ids), _ = store
    args = ["-m", "duologue", "export", ids[1], "--format", "parquet", "--db", str(db)]
    child = pexpect.spawn(sys.executable, args, env=cli_env(), encoding="utf-8", timeout=120, dimensions=(50, 200))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert child.before.strip() == "duologue: error: Parquet is binary: give -o FILE (or redirect stdout to a file)"
