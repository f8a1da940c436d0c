"""The run summary columns (message_count, loop_period, loop_onset): backfilled by their migration,
then kept current by the store for every way a message or an analysis gets in."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from duologue import store as store_module
from duologue.analysis import analysis_to_dict
from duologue.api import analyze_run
from duologue.records import Message, Run
from duologue.store import Store

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=timezone.utc)
LOOPING = [" ", "one", "two", "bye", "ciao", "bye", "ciao", "bye", "ciao"]  # period 2 from message 4


def make_run(run_id: str, contents: list[str]) -> Run:
    messages = [Message(index=i, speaker="ab"[(i - 1) % 2], content=c) for i, c in enumerate(contents, 1)]
    return Run(id=run_id, spec={"participants": [{"name": "a"}, {"name": "b"}]}, participants=["a", "b"],
               started_at=T0, status="finished", messages=messages)


def summary(store: Store, run_id: str) -> tuple:
    return tuple(store.conn.execute(
        "SELECT message_count, loop_period, loop_onset FROM runs WHERE id = ?", (run_id,)).fetchone())


def test_migration_backfills_existing_runs(tmp_path, monkeypatch):
    db = tmp_path / "old.db"
    before = store_module.MIGRATIONS[: store_module.MIGRATIONS.index(store_module._m003_run_summary)]
    monkeypatch.setattr(store_module, "MIGRATIONS", before)
    with Store(db) as old:
        looped, plain = make_run("looped", LOOPING), make_run("plain", [" ", "hi", "hello"])
        old.create_run(looped)
        old.create_run(plain)
        old.save_analysis("looped", analysis_to_dict(analyze_run(looped)))
        assert "message_count" not in {r[1] for r in old.conn.execute("PRAGMA table_info(runs)")}
    monkeypatch.undo()
    with Store(db) as new:
        assert summary(new, "looped") == (9, 2, 4)
        assert summary(new, "plain") == (3, None, None)


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
        store.save_analysis("r", analysis_to_dict(analyze_run(run)))
        assert summary(store, "r") == (9, 2, 4)
        store.save_analysis("r", {"exact_loop": None})
        assert summary(store, "r") == (9, None, None)
