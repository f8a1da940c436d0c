"""The Store: one SQLite database of runs, messages, experiments and events.

WAL mode, one row per message committed the moment the message is complete,
schema changes as an ordered list of named migrations applied once each (the
way simonw/llm keeps its log database; see schema.py). Nothing is pickled: any
SQLite tool, Datasette included, can read it.

Every write is one transaction (`_write`): a run imported with its messages, a
message with its run's count, an analysis with the loop columns derived from
it. A full disk ends the write with a StoreFullError (one line) and leaves the
store as it was before that write.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DuologueError, RunNotFoundError
from ..records import Message, Run, utcnow
from ..verdict import verdict_of
from .experiments import (
    LOOP_COLUMNS,
    SEMANTIC_COLUMNS,
    Experiments,
    cell_key,
    loop_values,
    loops_from_row,
    semantic_from_row,
    semantic_values,
)
from .labels import Labels
from .listing import RunLists
from .rows import LoopSummary, MessageTheme, SemanticSummary
from .schema import apply_migrations
from .search import MessageSearch
from .status import shown_status

if TYPE_CHECKING:
    from ..analysis.report import Analysis

DEFAULT_DB = Path("runs") / "duologue.db"
# @last, @last~N: the newest run, the Nth before it.
_LAST = re.compile(r"@last(?:~(\d+))?")


class StoreFullError(DuologueError):
    """The disk (or the store's size limit) is full: the write that hit it was not made."""


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


class Store(RunLists, Experiments, MessageSearch, Labels):
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
            apply_migrations(self.conn)
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise self._full(err) from None
            raise DuologueError(f"{self.path}: not a usable duologue store ({err})") from None
        except sqlite3.DatabaseError as err:
            raise DuologueError(f"{self.path}: not a usable duologue store ({err})") from None

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    def _full(self, err: sqlite3.Error) -> StoreFullError:
        return StoreFullError(f"the store {self.path} is full ({err}): free some space")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed whole at the end, rolled back whole on any error."""
        try:
            with self.conn:
                yield self.conn
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise self._full(err) from None
            raise

    # -- runs ------------------------------------------------------------------

    def create_run(self, run: Run, *, copy_messages: bool = True) -> None:
        """Insert a run (and, for imports and forks, the messages it starts with) in one transaction."""
        with self._write():
            self._insert_run(run, copy_messages, os.getpid() if run.status == "running" else None)

    def create_runs(self, runs: list[Run]) -> None:
        """Insert runs with their messages (an import of a file), all in one transaction or none.

        A run whose id is already in the store is an error, and none of the runs is inserted. No
        process of this machine writes an imported run: one recorded as running shows as killed."""
        seen: set[str] = set()
        with self._write():
            for run in runs:
                if run.id in seen:
                    raise DuologueError(f"run {run.id} comes twice in what is imported")
                seen.add(run.id)
                if self.has_run(run.id):
                    raise DuologueError(f"run {run.id} is already in {self.path}")
                self._insert_run(run, True, None)

    def _insert_run(self, run: Run, copy_messages: bool, pid: int | None) -> None:
        models = run.models  # an imported participant: the model its file names
        columns = """id, title, participants, models, spec, started_at, ended_at,
               status, stop_reason, stop_detail, duologue_version, parent_run_id, fork_at,
               experiment_id, source, pid, experiment_cell"""
        values: tuple = (
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
            pid,
            cell_key(run.experiment_cell),
        )
        if run.source_hash is not None:  # an imported file's hash (migration 009)
            columns += ", source_hash"
            values += (run.source_hash,)
        if run.price_data is not None:  # migration 010
            columns += ", price_data"
            values += (run.price_data,)
        marks = ", ".join("?" * len(values))
        self.conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", values)
        if copy_messages:
            for m in run.messages:
                self._insert_message(run.id, m)
        if run.events:
            now = _iso(utcnow())
            self.conn.executemany(
                "INSERT INTO events (run_id, message_index, kind, detail, data, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        run.id,
                        e.message_index,
                        e.kind,
                        e.detail,
                        json.dumps(e.data, ensure_ascii=False) if e.data else None,
                        now,
                    )
                    for e in run.events
                ],
            )

    def imported_from(self, hashes: Iterable[str]) -> dict[str, list[str]]:
        """{file hash: the ids of the runs imported from a file with that SHA-256} for those of `hashes`
        the store has runs of (oldest first)."""
        found: dict[str, list[str]] = {}
        wanted = list(dict.fromkeys(hashes))
        for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[start : start + 500]
            rows = self.conn.execute(
                f"SELECT source_hash, id FROM runs WHERE source_hash IN ({', '.join('?' * len(chunk))}) "
                "ORDER BY started_at, id",
                chunk,
            )
            for digest, run_id in rows:
                found.setdefault(digest, []).append(run_id)
        return found

    def has_run(self, run_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    def claim_run(self, run_id: str) -> None:
        """Mark a run as running in this process (for resume)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET status='running', stop_reason=NULL, stop_detail=NULL, ended_at=NULL, pid=? WHERE id=?",
                (os.getpid(), run_id),
            )

    def update_spec(self, run_id: str, spec: dict[str, Any], *, kind: str, detail: str, data: dict[str, Any]) -> None:
        """Change a run's stored spec (a resume with a larger budget) and record why, in one transaction."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET spec=? WHERE id=?", (json.dumps(spec, ensure_ascii=False), run_id))
            index = conn.execute("SELECT message_count FROM runs WHERE id=?", (run_id,)).fetchone()[0]
            conn.execute(
                "INSERT INTO events (run_id, message_index, kind, detail, data, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, index, kind, detail, json.dumps(data, ensure_ascii=False), _iso(utcnow())),
            )

    def set_price_data(self, run_id: str, price_data: str) -> None:
        """The price data a run's messages are priced with (e.g. "genai-prices 0.2.3"), the latest resume's."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET price_data=? WHERE id=?", (price_data, run_id))

    def finish_run(
        self, run_id: str, *, status: str, stop_reason: str | None, stop_detail: str | None, ended_at: datetime
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET status=?, stop_reason=?, stop_detail=?, ended_at=?, pid=NULL WHERE id=?",
                (status, stop_reason, stop_detail, _iso(ended_at), run_id),
            )

    def save_analysis(self, run_id: str, analysis: Analysis, vectors: Any = None, embedder: str | None = None) -> None:
        """Keep a run's analysis (as JSON), the loop and semantic columns derived from it, its messages'
        theme labels and (given `vectors`, one row per message, and the `embedder`'s name) their
        embeddings, in one transaction."""
        from ..analysis.report import analysis_to_dict

        data = json.dumps(analysis_to_dict(analysis), ensure_ascii=False)
        columns = [c.strip() for c in f"{LOOP_COLUMNS}, {SEMANTIC_COLUMNS}".split(",")]
        values = (*loop_values(LoopSummary.of(analysis)), *semantic_values(SemanticSummary.of(analysis)))
        with self._write() as conn:
            conn.execute(
                f"UPDATE runs SET analysis=?, {', '.join(c + '=?' for c in columns)} WHERE id=?",
                (data, *values, run_id),
            )
            if analysis.themes is not None:
                conn.executemany(
                    "UPDATE messages SET theme=?, topic=? WHERE run_id=? AND idx=?",
                    [(m.label, m.topic, run_id, m.index) for m in analysis.themes],
                )
            if vectors is not None and embedder:
                rows = [
                    (run_id, i, embedder, int(v.shape[-1]), v.astype("<f4").tobytes())
                    for i, v in enumerate(vectors, start=1)
                ]
                conn.executemany(
                    "INSERT OR REPLACE INTO message_vectors (run_id, idx, embedder, dim, vector) "
                    "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM messages WHERE run_id=? AND idx=?)",
                    [(*r, r[0], r[1]) for r in rows],
                )

    def load_vectors(self, run_id: str, embedder: str) -> dict[int, Any]:
        """The stored embeddings of a run's messages by this embedder: {message index: float32 vector}."""
        import numpy as np

        rows = self.conn.execute(
            "SELECT idx, vector FROM message_vectors WHERE run_id=? AND embedder=? ORDER BY idx", (run_id, embedder)
        )
        return {idx: np.frombuffer(blob, dtype="<f4") for idx, blob in rows}

    def run_semantic(self, run_id: str) -> SemanticSummary | None:
        """The semantic findings of a run's stored analysis; None when it has none stored."""
        row = self.conn.execute(
            f"SELECT analysis IS NOT NULL AS analysed, {SEMANTIC_COLUMNS} FROM runs WHERE id=?", (run_id,)
        ).fetchone()
        if not row or not row["analysed"]:
            return None
        return semantic_from_row(row)

    def message_themes(self, run_id: str) -> list[MessageTheme]:
        """Each message's end-state theme and topic from the run's stored analysis, message 1 first;
        empty when the run has no stored analysis."""
        rows = self.conn.execute(
            "SELECT m.idx, m.theme, m.topic FROM messages m JOIN runs r ON r.id = m.run_id "
            "WHERE m.run_id=? AND r.analysis IS NOT NULL ORDER BY m.idx",
            (run_id,),
        )
        return [MessageTheme(idx, theme, topic) for idx, theme, topic in rows]

    def load_analysis(self, run_id: str) -> dict[str, Any] | None:
        """The stored analysis as JSON data (for exports); the loops in it are typed in `run_loops`. Its
        `verdict` is the one its columns give (verdict.py: what every surface says of the run), also for an
        analysis stored before verdicts were."""
        row = self.conn.execute(
            f"SELECT analysis, {LOOP_COLUMNS}, {SEMANTIC_COLUMNS} FROM runs WHERE id=?", (run_id,)
        ).fetchone()
        if not row or not row["analysis"]:
            return None
        data = json.loads(row["analysis"])
        verdict = verdict_of(loops_from_row(row), semantic_from_row(row)).as_dict()
        return {"verdict": verdict, **{k: v for k, v in data.items() if k != "verdict"}}

    def analysis_rules(self, run_id: str) -> int | None:
        """The version of the rules (analysis.report.RULES) the run's stored analysis was made by: 1 for one
        stored before versions were kept; None when it has none stored."""
        row = self.conn.execute(
            "SELECT analysis IS NOT NULL AS analysed, json_extract(analysis, '$.rules') AS rules FROM runs WHERE id=?",
            (run_id,),
        ).fetchone()
        if not row or not row["analysed"]:
            return None
        return int(row["rules"]) if row["rules"] is not None else 1

    def run_loops(self, run_id: str) -> LoopSummary | None:
        """The loops of a run's stored analysis; None when it has none stored."""
        row = self.conn.execute(
            f"SELECT analysis IS NOT NULL AS analysed, {LOOP_COLUMNS} FROM runs WHERE id=?", (run_id,)
        ).fetchone()
        return loops_from_row(row) if row and row["analysed"] else None

    def resolve_run_id(self, ref: str) -> str:
        """The full id a run reference names.

        A reference is a full id, a unique prefix of one, a unique prefix of an
        id's random suffix (`76c4` for 20261127-153956-76c430), `@last` (the
        newest run: the first `duologue ls` lists) or `@last~N` (the Nth run
        before it).
        """
        ref = ref.strip()
        row = self.conn.execute("SELECT id FROM runs WHERE id=?", (ref,)).fetchone()
        if row:
            return row[0]
        if ref.startswith("@"):
            return self._resolve_last(ref)
        if ref:
            pattern = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self.conn.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\' ORDER BY started_at DESC, id",
                (pattern, "%-" + pattern),
            ).fetchall()
            # The second pattern also finds the reference after an inner dash: keep the suffix matches only.
            found = [r[0] for r in rows if r[0].startswith(ref) or r[0].rsplit("-", 1)[-1].startswith(ref)]
            if len(found) == 1:
                return found[0]
            if found:
                shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
                raise RunNotFoundError(f"run '{ref}' is ambiguous: {len(found)} runs match ({shown}); give more of it")
        raise RunNotFoundError(f"no run '{ref}' in {self.path}")

    def _resolve_last(self, ref: str) -> str:
        match = _LAST.fullmatch(ref)
        if not match:
            raise RunNotFoundError(f"no run '{ref}': a reference starting with @ is @last or @last~N (N a number)")
        back = int(match[1] or 0)
        # The order of `duologue ls`: @last~N is its (N+1)th row.
        row = self.conn.execute("SELECT id FROM runs ORDER BY started_at DESC, id LIMIT 1 OFFSET ?", (back,)).fetchone()
        if row:
            return row[0]
        count = self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        if not count:
            raise RunNotFoundError(f"no run '{ref}': no runs yet in {self.path}")
        raise RunNotFoundError(f"no run '{ref}': {self.path} holds {count} run{'s' if count != 1 else ''}")

    def experiment_full_runs(self, experiment_id: str) -> list[Run]:
        """Every run of an experiment (or a collection), with its messages, in experiment_run_records' order."""
        return [self.get_run(r.id) for r in self.experiment_run_records(experiment_id)]

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
            started_at=datetime.fromisoformat(row["started_at"]),
            ended_at=_dt(row["ended_at"]),
            status=shown_status(row["status"], row["pid"]),
            stop_reason=row["stop_reason"],
            stop_detail=row["stop_detail"],
            duologue_version=row["duologue_version"],
            parent_run_id=row["parent_run_id"],
            fork_at=row["fork_at"],
            experiment_id=row["experiment_id"],
            source=row["source"],
            source_hash=row["source_hash"] if "source_hash" in row.keys() else None,  # noqa: SIM118 (a Row)
            price_data=row["price_data"] if "price_data" in row.keys() else None,  # noqa: SIM118 (a Row)
            experiment_cell=json.loads(row["experiment_cell"]) if row["experiment_cell"] else None,
        )

    # -- messages --------------------------------------------------------------

    def add_message(self, run_id: str, message: Message) -> None:
        """Commit one complete message. A second message with the same index is an error."""
        with self._write():
            self._insert_message(run_id, message)

    def _insert_message(self, run_id: str, m: Message) -> None:
        # The run's message_count follows in the same transaction (trigger runs_count_message).
        values: tuple = (
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
        )
        columns = """run_id, idx, speaker, model, content, reasoning, started_at, ended_at, ttft, latency,
               prompt_tokens, cached_tokens, completion_tokens, finish_reason, attempts, injected"""
        if m.draft_tokens is not None or m.accepted_tokens is not None:  # lookup decoding's counts (migration 008)
            columns += ", draft_tokens, accepted_tokens"
            values += (m.draft_tokens, m.accepted_tokens)
        if m.cost is not None or m.cost_source is not None or m.cache_write_tokens is not None:  # migration 010
            columns += ", cache_write_tokens, cost, cost_source"
            values += (m.cache_write_tokens, m.cost, m.cost_source)
        marks = ", ".join("?" * len(values))
        self.conn.execute(f"INSERT INTO messages ({columns}) VALUES ({marks})", values)

    def get_messages(self, run_id: str, *, after: int = 0) -> list[Message]:
        rows = self.conn.execute(
            "SELECT * FROM messages WHERE run_id=? AND idx>? ORDER BY idx", (run_id, after)
        ).fetchall()
        lookup = bool(rows) and "draft_tokens" in rows[0].keys()  # a store before migration 008 (tests' old stores)
        costs = bool(rows) and "cost" in rows[0].keys()  # … and before migration 010
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
                draft_tokens=r["draft_tokens"] if lookup else None,
                accepted_tokens=r["accepted_tokens"] if lookup else None,
                finish_reason=r["finish_reason"],
                attempts=r["attempts"],
                injected=bool(r["injected"]),
                cache_write_tokens=r["cache_write_tokens"] if costs else None,
                cost=r["cost"] if costs else None,
                cost_source=r["cost_source"] if costs else None,
            )
            for r in rows
        ]

    def reply_lengths(self, models: Iterable[str], newest: int = 5000) -> dict[str, list[int]]:
        """{model: the completion tokens of its newest generated messages (up to `newest`)} for those of
        `models` the store holds any of (what an estimate measures a typical reply from)."""
        out: dict[str, list[int]] = {}
        for model in sorted(set(models)):
            rows = self.conn.execute(
                "SELECT completion_tokens FROM messages WHERE model = ? AND injected = 0 "
                "AND completion_tokens IS NOT NULL ORDER BY rowid DESC LIMIT ?",
                (model, newest),
            ).fetchall()
            if rows:
                out[model] = [r[0] for r in rows]
        return out

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
        with self._write() as conn:
            conn.execute(
                "INSERT INTO events (run_id, message_index, kind, detail, data, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    message_index,
                    kind,
                    detail,
                    json.dumps(data, ensure_ascii=False) if data else None,
                    _iso(utcnow()),
                ),
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
