"""The SQLite store: runs, messages, experiments and events.

WAL mode, one row per message committed the moment the message is complete,
schema changes as an ordered list of named migrations applied once each (the
way simonw/llm keeps its log database). Nothing is pickled: any SQLite tool,
Datasette included, can read it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DuologueError, RunNotFoundError
from .records import Message, Run, utcnow

DEFAULT_DB = Path("runs") / "duologue.db"


def _m001_initial(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            participants TEXT NOT NULL,
            models TEXT NOT NULL,
            spec TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            status TEXT NOT NULL,
            stop_reason TEXT,
            stop_detail TEXT,
            duologue_version TEXT,
            parent_run_id TEXT REFERENCES runs(id),
            fork_at INTEGER,
            experiment_id TEXT REFERENCES experiments(id),
            source TEXT,
            pid INTEGER,
            analysis TEXT
        );
        CREATE INDEX runs_started ON runs(started_at);
        CREATE INDEX runs_experiment ON runs(experiment_id);
        CREATE TABLE messages (
            run_id TEXT NOT NULL REFERENCES runs(id),
            idx INTEGER NOT NULL,
            speaker TEXT NOT NULL,
            model TEXT,
            content TEXT NOT NULL,
            reasoning TEXT,
            started_at TEXT,
            ended_at TEXT,
            ttft REAL,
            latency REAL,
            prompt_tokens INTEGER,
            cached_tokens INTEGER,
            completion_tokens INTEGER,
            finish_reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            injected INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, idx)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES runs(id),
            message_index INTEGER,
            kind TEXT NOT NULL,
            detail TEXT,
            data TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX events_run ON events(run_id);
        """
    )


def _m002_experiment_cells(conn: sqlite3.Connection) -> None:
    # One run per cell of an experiment's matrix: the unique index is what makes
    # a re-run of a batch (after a kill -9, say) unable to duplicate a conversation.
    conn.executescript(
        """
        ALTER TABLE runs ADD COLUMN experiment_cell TEXT;
        CREATE UNIQUE INDEX runs_experiment_cell ON runs(experiment_id, experiment_cell)
            WHERE experiment_cell IS NOT NULL;
        """
    )


def _m003_run_summary(conn: sqlite3.Connection) -> None:
    # What the viewer's runs table shows and sorts by, kept on the run itself so a
    # page of tens of thousands of runs counts no messages and parses no analyses.
    # Triggers keep the columns current in the same transaction as the write, for
    # every writer (add_message, create_run's copied messages, save_analysis, any
    # SQLite tool) without touching those methods.
    conn.executescript(
        """
        ALTER TABLE runs ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN loop_period INTEGER;
        ALTER TABLE runs ADD COLUMN loop_onset INTEGER;
        UPDATE runs SET
            message_count = (SELECT COUNT(*) FROM messages m WHERE m.run_id = runs.id),
            loop_period = json_extract(analysis, '$.exact_loop.period'),
            loop_onset = json_extract(analysis, '$.exact_loop.onset_message');
        CREATE INDEX runs_message_count ON runs(message_count);
        CREATE INDEX runs_loop_period ON runs(loop_period);
        CREATE INDEX runs_loop_onset ON runs(loop_onset);
        CREATE INDEX runs_stop_reason ON runs(stop_reason);
        CREATE TRIGGER runs_count_message AFTER INSERT ON messages BEGIN
            UPDATE runs SET message_count = message_count + 1 WHERE id = NEW.run_id;
        END;
        CREATE TRIGGER runs_uncount_message AFTER DELETE ON messages BEGIN
            UPDATE runs SET message_count = message_count - 1 WHERE id = OLD.run_id;
        END;
        CREATE TRIGGER runs_loop_from_analysis AFTER UPDATE OF analysis ON runs BEGIN
            UPDATE runs SET
                loop_period = json_extract(NEW.analysis, '$.exact_loop.period'),
                loop_onset = json_extract(NEW.analysis, '$.exact_loop.onset_message')
            WHERE id = NEW.id;
        END;
        """
    )


def _m004_fork_lineage(conn: sqlite3.Connection) -> None:
    # `show` lists the forks of a run; without an index that is a scan of every run.
    conn.execute("CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_run_id) WHERE parent_run_id IS NOT NULL")


# Ordered; append new migrations, never edit or reorder applied ones.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_initial, _m002_experiment_cells, _m003_run_summary, _m004_fork_lineage,
]


def process_alive(pid: int | None) -> bool:
    """Whether process `pid` (a run's writer) still exists on this machine."""
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def shown_status(status: str, pid: int | None) -> str:
    """A run's status as people should see it: a "running" run whose process is gone was killed."""
    return "killed" if status == "running" and not process_alive(pid) else status


def cell_key(cell: dict[str, Any] | None) -> str | None:
    """The canonical text of an experiment cell, as stored and compared."""
    return json.dumps(cell, sort_keys=True, ensure_ascii=False) if cell is not None else None


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


class Store:
    """A duologue database. Open with `Store(path)`; close with `close()` or `with`."""

    def __init__(self, path: str | Path = DEFAULT_DB, *, create: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise DuologueError(f"no duologue store at {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise DuologueError(f"{self.path}: not a usable duologue store ({err})") from None

    # -- lifecycle -------------------------------------------------------------

    def _migrate(self) -> None:
        with self.conn:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
        done = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
        for fn in MIGRATIONS:
            name = fn.__name__.lstrip("_")
            if name in done:
                continue
            with self.conn:
                fn(self.conn)
                self.conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, datetime('now'))", (name,)
                )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- runs ------------------------------------------------------------------

    def create_run(self, run: Run, *, copy_messages: bool = True) -> None:
        """Insert a run (and, for imports and forks, the messages it starts with)."""
        models = [p.get("model") for p in run.spec.get("participants", [])]
        with self.conn:
            self.conn.execute(
                """INSERT INTO runs (id, title, participants, models, spec, started_at, ended_at,
                   status, stop_reason, stop_detail, duologue_version, parent_run_id, fork_at,
                   experiment_id, source, pid, experiment_cell)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    run.id,
                    run.title,
                    json.dumps(run.participants, ensure_ascii=False),
                    json.dumps(models, ensure_ascii=False),
                    json.dumps(run.spec, ensure_ascii=False),
                    _iso(run.started_at),
                    _iso(run.ended_at),
                    run.status,
                    run.stop_reason,
                    run.stop_detail,
                    run.duologue_version,
                    run.parent_run_id,
                    run.fork_at,
                    run.experiment_id,
                    run.source,
                    os.getpid() if run.status == "running" else None,
                    cell_key(run.experiment_cell),
                ),
            )
            if copy_messages:
                for m in run.messages:
                    self._insert_message(run.id, m)

    def claim_run(self, run_id: str) -> None:
        """Mark a run as running in this process (for resume)."""
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET status='running', stop_reason=NULL, stop_detail=NULL, ended_at=NULL, pid=? WHERE id=?",
                (os.getpid(), run_id),
            )

    def finish_run(
        self, run_id: str, *, status: str, stop_reason: str | None, stop_detail: str | None, ended_at: datetime
    ) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET status=?, stop_reason=?, stop_detail=?, ended_at=?, pid=NULL WHERE id=?",
                (status, stop_reason, stop_detail, _iso(ended_at), run_id),
            )

    def save_analysis(self, run_id: str, analysis: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET analysis=? WHERE id=?", (json.dumps(analysis, ensure_ascii=False), run_id)
            )

    def load_analysis(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT analysis FROM runs WHERE id=?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def resolve_run_id(self, ref: str) -> str:
        """A full run id, or a unique prefix of one."""
        ref = ref.strip()
        row = self.conn.execute("SELECT id FROM runs WHERE id=?", (ref,)).fetchone()
        if row:
            return row[0]
        if ref:
            rows = self.conn.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 3",
                (ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
            ).fetchall()
            if len(rows) == 1:
                return rows[0][0]
            if len(rows) > 1:
                raise RunNotFoundError(f"run id '{ref}' is ambiguous: it starts {', '.join(r[0] for r in rows)}…")
        raise RunNotFoundError(f"no run '{ref}' in {self.path}")

    def get_run(self, ref: str, *, with_messages: bool = True) -> Run:
        run_id = self.resolve_run_id(ref)
        row = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        run = self._run_from_row(row)
        if with_messages:
            run.messages = self.get_messages(run_id)
        return run

    def run_pid(self, run_id: str) -> int | None:
        row = self.conn.execute("SELECT pid FROM runs WHERE id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def list_runs(self, *, limit: int | None = None, experiment_id: str | None = None) -> list[dict[str, Any]]:
        """Run rows with their message count, newest first (no message bodies)."""
        sql = """SELECT r.id, r.title, r.participants, r.models, r.started_at, r.ended_at, r.status,
                        r.stop_reason, r.stop_detail, r.parent_run_id, r.fork_at, r.experiment_id,
                        r.message_count AS messages, r.pid
                 FROM runs r"""
        args: list[Any] = []
        if experiment_id:
            sql += " WHERE r.experiment_id = ?"
            args.append(experiment_id)
        sql += " ORDER BY r.started_at DESC, r.id"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        out = []
        for r in self.conn.execute(sql, args):
            d = dict(r)
            d["status"] = shown_status(d["status"], d.pop("pid"))
            d["participants"] = json.loads(d["participants"])
            d["models"] = json.loads(d["models"])
            out.append(d)
        return out

    def list_forks(self, run_id: str) -> list[tuple[str, int]]:
        """(run id, fork point) of the runs forked from this one, oldest first."""
        rows = self.conn.execute(
            "SELECT id, fork_at FROM runs WHERE parent_run_id=? ORDER BY started_at, id", (run_id,)
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def _run_from_row(self, row: sqlite3.Row) -> Run:
        return Run(
            id=row["id"],
            spec=json.loads(row["spec"]),
            participants=json.loads(row["participants"]),
            started_at=_dt(row["started_at"]),
            ended_at=_dt(row["ended_at"]),
            status=shown_status(row["status"], row["pid"]),
            stop_reason=row["stop_reason"],
            stop_detail=row["stop_detail"],
            duologue_version=row["duologue_version"],
            parent_run_id=row["parent_run_id"],
            fork_at=row["fork_at"],
            experiment_id=row["experiment_id"],
            source=row["source"],
            experiment_cell=json.loads(row["experiment_cell"]) if row["experiment_cell"] else None,
        )

    # -- experiments -----------------------------------------------------------

    def get_experiment(self, experiment_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM experiments WHERE id=?", (experiment_id,)).fetchone()
        if row is None:
            return None
        return {**dict(row), "spec": json.loads(row["spec"])}

    def create_experiment(self, experiment_id: str, name: str, spec: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO experiments (id, name, spec, created_at) VALUES (?, ?, ?, ?)",
                (experiment_id, name, json.dumps(spec, ensure_ascii=False), _iso(utcnow())),
            )

    def list_experiments(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            """SELECT e.id, e.name, e.created_at, COUNT(r.id) AS runs
               FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.id
               GROUP BY e.id ORDER BY e.created_at DESC"""
        ).fetchall()
        return [dict(r) for r in rows]

    def experiment_runs(self, experiment_id: str) -> dict[str, tuple[str, str, int | None]]:
        """cell key -> (run id, status, pid) for the runs of an experiment."""
        rows = self.conn.execute(
            "SELECT experiment_cell, id, status, pid FROM runs WHERE experiment_id=? AND experiment_cell IS NOT NULL",
            (experiment_id,),
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    # -- messages --------------------------------------------------------------

    def add_message(self, run_id: str, message: Message) -> None:
        """Commit one complete message. A second message with the same index is an error."""
        with self.conn:
            self._insert_message(run_id, message)

    def _insert_message(self, run_id: str, m: Message) -> None:
        self.conn.execute(
            """INSERT INTO messages (run_id, idx, speaker, model, content, reasoning, started_at, ended_at,
               ttft, latency, prompt_tokens, cached_tokens, completion_tokens, finish_reason, attempts, injected)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run_id,
                m.index,
                m.speaker,
                m.model,
                m.content,
                m.reasoning,
                _iso(m.started_at),
                _iso(m.ended_at),
                m.ttft,
                m.latency,
                m.prompt_tokens,
                m.cached_tokens,
                m.completion_tokens,
                m.finish_reason,
                m.attempts,
                int(m.injected),
            ),
        )

    def get_messages(self, run_id: str, *, after: int = 0) -> list[Message]:
        rows = self.conn.execute(
            "SELECT * FROM messages WHERE run_id=? AND idx>? ORDER BY idx", (run_id, after)
        ).fetchall()
        return [
            Message(
                index=r["idx"],
                speaker=r["speaker"],
                content=r["content"],
                model=r["model"],
                reasoning=r["reasoning"],
                started_at=_dt(r["started_at"]),
                ended_at=_dt(r["ended_at"]),
                ttft=r["ttft"],
                latency=r["latency"],
                prompt_tokens=r["prompt_tokens"],
                cached_tokens=r["cached_tokens"],
                completion_tokens=r["completion_tokens"],
                finish_reason=r["finish_reason"],
                attempts=r["attempts"],
                injected=bool(r["injected"]),
            )
            for r in rows
        ]

    # -- events ----------------------------------------------------------------

    def add_event(
        self,
        run_id: str,
        kind: str,
        *,
        message_index: int | None = None,
        detail: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO events (run_id, message_index, kind, detail, data, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, message_index, kind, detail, json.dumps(data, ensure_ascii=False) if data else None,
                 _iso(utcnow())),
            )

    def get_events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM events WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["data"] = json.loads(d["data"]) if d["data"] else None
            out.append(d)
        return out

    def iter_run_ids(self) -> Iterator[str]:
        for (rid,) in self.conn.execute("SELECT id FROM runs ORDER BY started_at"):
            yield rid
