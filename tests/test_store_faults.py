"""Faults at the store: Ctrl-C names the run it stopped, a full disk ends a run with one line and keeps every
committed message (resume continues once there is room), a kill -9 during an import or a migration leaves
the store as it was or complete, never half."""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from duologue import api, conversations
from duologue.cli import cli
from duologue.records import Message, Run, utcnow
from duologue.store import Store, schema
from helpers import REPO

MODELS = ("--a", "scripted/alice", "--b", "scripted/bob")  # the scripted provider: no key or server


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"})


def error_lines(result) -> list[str]:
    text = result.stderr if hasattr(result, "stderr") and result.stderr is not None else result.output
    return [line for line in text.splitlines() if line.strip()]


# -- Ctrl-C ------------------------------------------------------------------------------


def test_ctrl_c_names_the_interrupted_run_not_the_newest(tmp_path, scripted_models):
    db = tmp_path / "d.db"
    calls = {"n": 0, "cut_at": 2}

    def reply(n, view):  # the cut_at-th reply of the process never comes: Ctrl-C is pressed while it is awaited
        calls["n"] += 1
        if calls["n"] == calls["cut_at"]:
            raise KeyboardInterrupt
        return f"reply {calls['n']}"

    scripted_models.reply = reply
    first = invoke("run", *MODELS, "--max-messages", "8", "-q", "--db", str(db))
    assert first.exit_code == 130, first.output
    (older,) = api.list_runs(db=db)
    assert older["status"] == "interrupted" and older["messages"] == 2  # the opener and one reply
    assert f"interrupted: run {older['id']} kept" in first.output

    calls.update(n=0, cut_at=0)  # a newer run, left to finish
    newer = invoke("run", *MODELS, "--max-messages", "3", "-q", "--db", str(db))
    assert newer.exit_code == 0, newer.output
    assert api.list_runs(db=db, limit=1)[0]["id"] != older["id"]

    calls.update(n=0, cut_at=3)  # the older run resumed, and interrupted again after two more replies
    resumed = invoke("resume", older["id"], "-q", "--db", str(db))
    assert resumed.exit_code == 130, resumed.output
    assert f"interrupted: run {older['id']} kept; continue it with `duologue resume {older['id']}`" in resumed.output
    assert api.load_run(older["id"], db=db).status == "interrupted"
    assert len(api.load_run(older["id"], db=db).messages) == 4


# -- a full disk -------------------------------------------------------------------------


FILL = "words to fill the disk " * 250


class TinyStore(Store):
    """A store whose connection may grow to `max_pages` pages (SQLite's max_page_count): a disk that fills."""

    max_pages: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.max_pages is not None:
            self.conn.execute(f"PRAGMA max_page_count = {self.max_pages}")


def test_a_full_disk_ends_the_run_with_one_line_and_resume_continues(tmp_path, scripted_models, monkeypatch):
    db = tmp_path / "d.db"
    with Store(db) as store:
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    # Each reply fills more than a page; the store may grow by a few pages only.
    scripted_models.reply = lambda n, view: f"{n} " + FILL
    monkeypatch.setattr(conversations, "Store", TinyStore)  # where `run` opens the store
    monkeypatch.setattr(TinyStore, "max_pages", pages + 12)

    full = invoke("run", *MODELS, "--max-messages", "30", "-q", "--db", str(db))
    assert full.exit_code == 2, full.output
    lines = error_lines(full)
    assert len(lines) == 1 and lines[0].startswith("duologue: error: run "), lines
    assert "is full" in lines[0] and "duologue resume" in lines[0] and "Traceback" not in full.output
    with Store(db) as store:
        (run,) = [store.get_run(r.id) for r in store.list_runs()]
        kept = run.messages
        assert store.integrity_check() == "ok"
    assert 2 <= len(kept) < 30
    assert [m.index for m in kept] == list(range(1, len(kept) + 1))  # every committed message, none half
    assert all(m.content.endswith(FILL) for m in kept[1:])  # each message whole
    assert run.id in lines[0]

    monkeypatch.setattr(TinyStore, "max_pages", None)  # room again
    resumed = invoke("resume", run.id, "-q", "--db", str(db))
    assert resumed.exit_code == 0, resumed.output
    with Store(db) as store:
        done = store.get_run(run.id)
        assert store.integrity_check() == "ok"
    assert done.status == "finished" and done.stop_reason == "max_messages"
    assert [m.index for m in done.messages] == list(range(1, 31))
    assert [(m.speaker, m.content) for m in done.messages[: len(kept)]] == [(m.speaker, m.content) for m in kept]


# -- kill -9 -----------------------------------------------------------------------------

CHILD_ENV_PATH = str(REPO / "src")


def start_child(code: str) -> subprocess.Popen:
    """A Python process that prints "ready" once its imports are done, then does `code`."""
    script = (
        "import sys\nfrom duologue import api\nfrom duologue.store import Store\n"
        "print('ready', flush=True)\n" + textwrap.dedent(code)
    )
    env = {"PYTHONPATH": CHILD_ENV_PATH, "PATH": "/usr/bin:/bin"}
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)


def kill_during(code: str, delay: float) -> int | None:
    """Run `code` in a child and SIGKILL it `delay` seconds after its imports; its exit code if it ended first."""
    child = start_child(code)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    return child.returncode if child.returncode != -signal.SIGKILL else None


def timed(code: str) -> float:
    child = start_child(f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)")
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0
    return float(out.split()[-1])


def big_transcript(path: Path, messages: int) -> None:
    run = Run(
        id="big",
        spec={},
        participants=["alice", "bob"],
        started_at=utcnow(),
        status="finished",
        messages=[
            Message(
                index=i,
                speaker="alice" if i % 2 else "bob",
                content=f"Message {i}: " + "a line of talk that goes on " * 12,
            )
            for i in range(1, messages + 1)
        ],
    )
    from duologue.transcripts.markdown import render_run_markdown

    path.write_text(render_run_markdown(run), encoding="utf-8")


def test_kill_9_during_import_leaves_none_or_all_of_the_run(tmp_path):
    transcript = tmp_path / "big.md"
    n = 6000
    big_transcript(transcript, n)
    empty = tmp_path / "empty.db"
    Store(empty).close()
    db = tmp_path / "d.db"
    code = f"api.import_transcript({str(transcript)!r}, db={str(db)!r})"
    shutil.copy(empty, db)
    took = timed(code)
    rng = random.Random(11)
    outcomes = set()
    for _ in range(6):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copy(empty, db)
        kill_during(code, rng.uniform(0, took * 1.2))
        with Store(db) as store:
            assert store.integrity_check() == "ok"
            runs = store.list_runs()
            counts = [len(store.get_messages(r.id)) for r in runs]
        assert counts in ([], [n]), counts
        outcomes.add(len(counts))
    print("outcomes (runs stored after the kill):", sorted(outcomes))


M005 = [schema.migration_name(m) for m in schema.MIGRATIONS].index("m005_typed_loop_columns")


def test_kill_9_during_a_migration_leaves_the_store_before_or_after_it(tmp_path):
    old = tmp_path / "old.db"
    with pytest.MonkeyPatch.context() as mp:  # a store made before migration 005, with many analysed runs
        mp.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:M005])
        with Store(old) as store:
            analysis = (
                '{"exact_loop": {"period": 2, "onset_message": 4, "first_repeat_message": 6, '
                '"last_message": 9, "kind": "mirroring", "absorbing": true, "detail": "period 2"}}'
            )
            for i in range(20000):
                store.create_run(
                    Run(id=f"r{i:05}", spec={}, participants=["a", "b"], started_at=utcnow(), status="finished"),
                    copy_messages=False,
                )
            store.conn.execute("UPDATE runs SET analysis = ?", (analysis,))
            store.conn.commit()
    db = tmp_path / "d.db"
    code = f"Store({str(db)!r}).close()"
    shutil.copy(old, db)
    took = timed(code)
    rng = random.Random(5)
    outcomes = set()
    names = schema.migration_name(schema.MIGRATIONS[M005])
    for _ in range(6):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copy(old, db)
        kill_during(code, rng.uniform(0, took * 1.2))
        conn = sqlite3.connect(db)
        applied = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (names,)).fetchone() is not None
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        filled = (
            conn.execute("SELECT COUNT(*) FROM runs WHERE loop_first_repeat = 6").fetchone()[0]
            if "loop_first_repeat" in columns
            else 0
        )
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        assert (applied, "loop_first_repeat" in columns, filled) in ((False, False, 0), (True, True, 20000))
        outcomes.add(applied)
        with Store(db) as store:  # and it opens (and finishes the migration) afterwards
            assert store.run_loops("r00007").exact.first_repeat == 6
    print("outcomes (migration applied after the kill):", sorted(outcomes), f"migration took {took:.3f}s")
