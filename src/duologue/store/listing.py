"""Lists of runs: filtered, sorted and paged for the viewer; newest first for `ls`.

Every list reads the run summary columns (message_count and the loop columns,
written by the store with each message and each analysis), so a page of tens of
thousands of runs counts no messages and parses no analyses.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .experiments import LOOP_COLUMNS, SEMANTIC_COLUMNS, loops_from_row, semantic_from_row
from .rows import PER_PAGE, FilterChoices, RunPage, RunProgress, RunRow
from .search import fts_query
from .status import process_alive, shown_status

# Sort keys the viewer offers -> the column they sort by. Nothing else reaches ORDER BY.
SORTS = {
    "started": "started_at",
    "title": "title",
    "participants": "participants",
    "models": "models",
    "messages": "message_count",
    "stop": "stop_reason",
    "period": "loop_period",
    "onset": "loop_onset",
}
NULLABLE = {"stop_reason", "loop_period", "loop_onset"}  # sorted with their empty cells last

RUNNING = "running"  # the stop filter's value for runs that have not stopped yet
KILLED = "killed"  # ... and for runs marked running whose process is gone
# A run's status as shown (`duologue ls`, the exports): "killed" is a run marked running whose process is gone.
STATUSES = ("running", "finished", "interrupted", "error", "killed")


@dataclass(frozen=True)
class RunFilter:
    """Which runs, in which order, which page."""

    participant: str = ""
    model: str = ""
    stop: str = ""  # a stop reason, RUNNING or KILLED
    looped: str = ""  # "yes", "no" or "" for either
    experiment: str = ""
    text: str = ""  # words the run's messages contain (full-text search; see store/search.py)
    status: str = ""  # a run status as shown (running, finished, interrupted, error, killed)
    model_part: str = ""  # a part of a participant's model string (any case)
    any_loop: str = ""  # "yes": an exact or near loop was found, or the run stopped on one; "no"; "" for either
    sort: str = "started"  # a key of SORTS
    desc: bool = True
    page: int = 1


def _where(q: RunFilter, alive: set[int] | None) -> tuple[str, list[Any]]:
    """The SQL filter; `alive`: the pids of running runs whose process still exists."""
    clauses: list[str] = []
    args: list[Any] = []
    if q.participant:
        clauses.append("EXISTS (SELECT 1 FROM json_each(runs.participants) WHERE value = ?)")
        args.append(q.participant)
    if q.model:
        clauses.append("EXISTS (SELECT 1 FROM json_each(runs.models) WHERE value = ?)")
        args.append(q.model)
    if q.stop in (RUNNING, KILLED):
        clauses.append(_running_clause(q.stop, alive))
        args.extend(sorted(alive or ()))
    elif q.stop:
        clauses.append("stop_reason = ?")
        args.append(q.stop)
    if q.looped:
        clauses.append("loop_period IS NOT NULL" if q.looped == "yes" else "loop_period IS NULL")
    if q.experiment:
        clauses.append("experiment_id = ?")
        args.append(q.experiment)
    if q.text.strip(' *"'):
        clauses.append("id IN (SELECT run_id FROM messages_fts WHERE messages_fts MATCH ?)")
        args.append(fts_query(q.text))
    if q.status in (RUNNING, KILLED):  # as shown: a running run whose process is gone is killed
        clauses.append(_running_clause(q.status, alive))
        args.extend(sorted(alive or ()))
    elif q.status:
        clauses.append("status = ?")
        args.append(q.status)
    if q.model_part:
        escaped = q.model_part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("EXISTS (SELECT 1 FROM json_each(runs.models) WHERE value LIKE ? ESCAPE '\\')")
        args.append(f"%{escaped}%")
    if q.any_loop:
        looped = "(loop_period IS NOT NULL OR near_loop_onset IS NOT NULL OR stop_reason IN ('loop', 'near_loop'))"
        clauses.append(looped if q.any_loop == "yes" else f"NOT {looped}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _running_clause(which: str, alive: set[int] | None) -> str:
    """Running runs whose process is alive (RUNNING) or gone (KILLED); its arguments: sorted(alive)."""
    pids = sorted(alive or ())
    within = f"pid IN ({', '.join('?' * len(pids))})" if pids else "0"
    gone = f"NOT COALESCE({within}, 0)"  # a NULL pid counts as gone
    return "status = 'running' AND " + (within if which == RUNNING else gone)


def _alive_pids(conn: sqlite3.Connection) -> set[int]:
    """Which "running" runs still have a process: few, so asked one by one."""
    return {
        pid for (pid,) in conn.execute("SELECT DISTINCT pid FROM runs WHERE status = 'running'") if process_alive(pid)
    }


_ROW_COLUMNS = (
    "id, title, participants, models, started_at, ended_at, status, stop_reason, stop_detail, parent_run_id, "
    "fork_at, experiment_id, message_count, pid, cost, cost_unknown, analysis IS NOT NULL AS analysed, "
    f"{LOOP_COLUMNS}, {SEMANTIC_COLUMNS}"
)


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _run_row(r: sqlite3.Row) -> RunRow:
    return RunRow(
        id=r["id"],
        title=r["title"],
        participants=json.loads(r["participants"]),
        models=json.loads(r["models"]),
        started_at=_dt(r["started_at"]),
        ended_at=_dt(r["ended_at"]),
        status=shown_status(r["status"], r["pid"]),
        stop_reason=r["stop_reason"],
        stop_detail=r["stop_detail"],
        parent_run_id=r["parent_run_id"],
        fork_at=r["fork_at"],
        experiment_id=r["experiment_id"],
        message_count=r["message_count"],
        cost=r["cost"],
        cost_unknown=r["cost_unknown"],
        # The run's stored analysis, for its verdict (verdict.py); None when it has none.
        loops=loops_from_row(r) if r["analysed"] else None,
        semantic=semantic_from_row(r) if r["analysed"] else None,
    )


class RunLists:
    """The Store's list queries (a part of Store; see store/core.py)."""

    conn: sqlite3.Connection

    def query_runs(self, q: RunFilter, per_page: int = PER_PAGE) -> RunPage:
        """One page of the runs `q` asks for, with how many there are in all."""
        conn = self.conn
        alive = _alive_pids(conn) if RUNNING in (q.stop, q.status) or KILLED in (q.stop, q.status) else None
        where, args = _where(q, alive)
        total = conn.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0]
        pages = max(1, -(-total // per_page))
        page = min(q.page, pages)
        column = SORTS.get(q.sort, "started_at")
        direction = "DESC" if q.desc else "ASC"
        order = f"{column} IS NULL, " if column in NULLABLE else ""
        order += f"{column} {direction}, id {direction}"
        rows = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM runs{where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, per_page, (page - 1) * per_page],
        ).fetchall()
        return RunPage([_run_row(r) for r in rows], total, page, pages, per_page)

    def filter_choices(self) -> FilterChoices:
        """The values the viewer's filters offer: every participant, model, stop reason and experiment."""
        conn = self.conn

        def distinct_json(column: str) -> list[str]:
            rows = conn.execute(
                f"SELECT DISTINCT j.value FROM runs, json_each(runs.{column}) j WHERE j.value IS NOT NULL"
            )
            return sorted(str(r[0]) for r in rows)

        stops = [r[0] for r in conn.execute("SELECT DISTINCT stop_reason FROM runs WHERE stop_reason IS NOT NULL")]
        experiments = {r[0]: r[1] for r in conn.execute("SELECT id, name FROM experiments ORDER BY created_at DESC")}
        return FilterChoices(distinct_json("participants"), distinct_json("models"), sorted(stops), experiments)

    def list_runs(
        self,
        *,
        limit: int | None = None,
        experiment_id: str | None = None,
        status: str | None = None,
        model: str | None = None,
        looped: bool | None = None,
    ) -> list[RunRow]:
        """Runs newest first (no message bodies): of one experiment, with one status (as shown: killed for a
        running run whose process is gone), with a model string containing `model` (any case), that looped
        (an exact or near loop found, or stopped on one) or did not."""
        q = RunFilter(
            experiment=experiment_id or "",
            status=status or "",
            model_part=model or "",
            any_loop="" if looped is None else ("yes" if looped else "no"),
        )
        alive = _alive_pids(self.conn) if q.status in (RUNNING, KILLED) else None
        where, args = _where(q, alive)
        sql = f"SELECT {_ROW_COLUMNS} FROM runs{where} ORDER BY started_at DESC, id"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [_run_row(r) for r in self.conn.execute(sql, args)]

    def run_progress(self, run_id: str) -> RunProgress | None:
        """A run's shown status and message count (what a live page polls); None for no such run."""
        row = self.conn.execute("SELECT status, message_count, pid FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunProgress(shown_status(row["status"], row["pid"]), row["message_count"]) if row else None
