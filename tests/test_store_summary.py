"""The run summary columns (message_count and the loop columns): backfilled by their migrations, then
written by the store itself for every way a message or an analysis gets in."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest

from duologue.analysis import analysis_to_dict
from duologue.api import analyze_run
from duologue.records import Message, Run
from duologue.store import ExactLoopRecord, LoopSummary, Store
from duologue.store import schema as store_module

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
LOOPING = [" ", "one", "two", "bye", "ciao", "bye", "ciao", "bye", "ciao"]  # period 2 from message 4


def make_run(run_id: str, contents: list[str]) -> Run:
    messages = [Message(index=i, speaker="ab"[(i - 1) % 2], content=c) for i, c in enumerate(contents, 1)]
    return Run(
        id=run_id,
        spec={"participants": [{"name": "a"}, {"name": "b"}]},
        participants=["a", "b"],
        started_at=T0,
        status="finished",
        messages=messages,
    )


def summary(store: Store, run_id: str) -> tuple:
    (row,) = [r for r in store.list_runs() if r.id == run_id]
    return row.message_count, row.loop_period, row.loop_onset


def old_store(db, last_migration) -> Store:
    """A store made by an earlier version: the migrations up to `last_migration` only."""
    before = store_module.MIGRATIONS[: store_module.MIGRATIONS.index(last_migration) + 1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_module, "MIGRATIONS", before)
        return Store(db)


def store_analysis_json(store: Store, run: Run) -> None:
    """What save_analysis wrote before the loop columns were typed: the analysis JSON alone."""
    store.conn.execute(
        "UPDATE runs SET analysis = ? WHERE id = ?", (json.dumps(analysis_to_dict(analyze_run(run))), run.id)
    )
    store.conn.commit()


def test_migration_backfills_existing_runs(tmp_path):
    db = tmp_path / "old.db"
    with old_store(db, store_module._m002_experiment_cells) as old:
        looped, plain = make_run("looped", LOOPING), make_run("plain", [" ", "hi", "hello"])
        old.create_run(looped)
        old.create_run(plain)
        store_analysis_json(old, looped)
        assert "message_count" not in {r[1] for r in old.conn.execute("PRAGMA table_info(runs)")}
    with Store(db) as new:
        assert summary(new, "looped") == (9, 2, 4)
        assert summary(new, "plain") == (3, None, None)
        assert new.run_loops("looped") == LoopSummary.of(analyze_run(looped))
        assert new.run_loops("plain") is None  # never analysed


def test_the_typed_loop_columns_replace_the_trigger_over_the_analysis_json(tmp_path):
    db = tmp_path / "old.db"
    looped = make_run("looped", LOOPING)
    with old_store(db, store_module._m004_fork_lineage) as old:
        old.create_run(looped)
        store_analysis_json(old, looped)
        assert old.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs_loop_from_analysis'").fetchone()
    with Store(db) as new:
        triggers = [r[0] for r in new.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")]
        assert triggers and not any("json" in sql.lower() for sql in triggers), triggers
        loops = new.run_loops("looped")
        assert loops == LoopSummary.of(analyze_run(looped))
        assert loops.exact == ExactLoopRecord(2, 4, 6, 9, "self-repetition", True, loops.exact.detail)
        assert loops.exact.detail.startswith("period 2 since message 4")
        # An analysis whose JSON says otherwise no longer moves the columns: only save_analysis writes them.
        new.conn.execute("UPDATE runs SET analysis = '{\"exact_loop\": null}' WHERE id = 'looped'")
        new.conn.commit()
        assert summary(new, "looped") == (9, 2, 4)


def test_store_keeps_the_summary_current(tmp_path):
    with Store(tmp_path / "d.db") as store:
        run = make_run("r", LOOPING[:2])
        store.create_run(run)  # copies its two messages
        assert summary(store, "r") == (2, None, None)
        for i, content in enumerate(LOOPING[2:], start=3):
            store.add_message("r", Message(index=i, speaker="ab"[(i - 1) % 2], content=content))
        assert summary(store, "r") == (9, None, None)
        with pytest.raises(sqlite3.IntegrityError):  # a failed insert counts nothing
            store.add_message("r", Message(index=9, speaker="a", content="again"))
        assert summary(store, "r")[0] == 9
        run.messages = store.get_messages("r")
        store.save_analysis("r", analyze_run(run))
        assert summary(store, "r") == (9, 2, 4)
        assert store.load_analysis("r")["exact_loop"]["period"] == 2  # the JSON goes along, for exports
        run.messages[3].content = "something else"  # the loop is gone from this analysis
        store.save_analysis("r", analyze_run(run))
        assert summary(store, "r") == (9, None, None)
        assert store.run_loops("r") == LoopSummary(None, None)
