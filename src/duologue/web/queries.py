"""The SQL behind the viewer's lists: runs filtered, sorted and paged; experiment aggregates.

Every list reads the run summary columns (message_count, loop_period,
loop_onset, kept current by the store's triggers), so a page of tens of
thousands of runs counts no messages and parses no analyses.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import urlencode

from ..store import process_alive, shown_status

PER_PAGE = 50

# Sort keys the page offers -> the column they sort by. Nothing else reaches ORDER BY.
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


@dataclass(frozen=True)
class RunQuery:
    """What the runs page was asked for; read from and written back to its query string."""

    participant: str = ""
    model: str = ""
    stop: str = ""
    looped: str = ""  # "yes", "no" or "" for either
    experiment: str = ""
    sort: str = "started"
    desc: bool = True
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str], **fixed: Any) -> "RunQuery":
        sort = params.get("sort", "started")
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        q = cls(
            participant=params.get("participant", "").strip(),
            model=params.get("model", "").strip(),
            stop=params.get("stop", "").strip(),
            looped=params.get("looped", "") if params.get("looped") in ("yes", "no") else "",
            experiment=params.get("experiment", "").strip(),
            sort=sort if sort in SORTS else "started",
            desc=params.get("dir", "desc" if sort == "started" else "asc") == "desc",
            page=page,
        )
        return replace(q, **fixed)

    @property
    def filtered(self) -> bool:
        return any((self.participant, self.model, self.stop, self.looped, self.experiment))

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this query with some fields changed; defaults are left out."""
        q = replace(self, **changes)
        out = {
            "participant": q.participant, "model": q.model, "stop": q.stop, "looped": q.looped,
            "experiment": q.experiment,
        }
        if q.sort != "started" or not q.desc:
            out["sort"], out["dir"] = q.sort, "desc" if q.desc else "asc"
        if q.page != 1:
            out["page"] = str(q.page)
        return {k: v for k, v in out.items() if v}

    def url(self, base: str, **changes: Any) -> str:
        params = self.params(**changes)
        return f"{base}?{urlencode(params)}" if params else base

    def sort_url(self, base: str, key: str) -> str:
        """Sort by `key`; asking again for the current key flips the direction."""
        desc = not self.desc if key == self.sort else key in ("started", "messages")
        return self.url(base, sort=key, desc=desc, page=1)

    def where(self, alive: set[int] | None = None) -> tuple[str, list[Any]]:
        """The SQL filter; `alive`: the pids of running runs whose process still exists."""
        clauses: list[str] = []
        args: list[Any] = []
        if self.participant:
            clauses.append("EXISTS (SELECT 1 FROM json_each(runs.participants) WHERE value = ?)")
            args.append(self.participant)
        if self.model:
            clauses.append("EXISTS (SELECT 1 FROM json_each(runs.models) WHERE value = ?)")
            args.append(self.model)
        if self.stop in (RUNNING, KILLED):
            pids = sorted(alive or ())
            within = f"pid IN ({', '.join('?' * len(pids))})" if pids else "0"
            gone = f"NOT COALESCE({within}, 0)"  # a NULL pid counts as gone
            clauses.append("status = 'running' AND " + (within if self.stop == RUNNING else gone))
            args.extend(pids)
        elif self.stop:
            clauses.append("stop_reason = ?")
            args.append(self.stop)
        if self.looped:
            clauses.append("loop_period IS NOT NULL" if self.looped == "yes" else "loop_period IS NULL")
        if self.experiment:
            clauses.append("experiment_id = ?")
            args.append(self.experiment)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


@dataclass
class RunRow:
    id: str
    title: str
    participants: list[str]
    models: list[str]
    started_at: datetime | None
    status: str
    stop_reason: str | None
    experiment_id: str | None
    message_count: int
    loop_period: int | None
    loop_onset: int | None


@dataclass
class RunPage:
    rows: list[RunRow]
    total: int
    page: int
    pages: int
    per_page: int = PER_PAGE

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


_ROW_COLUMNS = (
    "id, title, participants, models, started_at, status, stop_reason, experiment_id, "
    "message_count, loop_period, loop_onset, pid"
)


def _run_row(r: sqlite3.Row) -> RunRow:
    return RunRow(
        id=r["id"], title=r["title"], participants=json.loads(r["participants"]), models=json.loads(r["models"]),
        started_at=datetime.fromisoformat(r["started_at"]) if r["started_at"] else None,
        status=shown_status(r["status"], r["pid"]),
        stop_reason=r["stop_reason"], experiment_id=r["experiment_id"], message_count=r["message_count"],
        loop_period=r["loop_period"], loop_onset=r["loop_onset"],
    )


def query_runs(conn: sqlite3.Connection, q: RunQuery, per_page: int = PER_PAGE) -> RunPage:
    alive = None
    if q.stop in (RUNNING, KILLED):  # which "running" runs still have a process: few, so asked one by one
        alive = {pid for (pid,) in conn.execute("SELECT DISTINCT pid FROM runs WHERE status = 'running'")
                 if process_alive(pid)}
    where, args = q.where(alive)
    total = conn.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0]
    pages = max(1, -(-total // per_page))
    page = min(q.page, pages)
    column = SORTS[q.sort]
    direction = "DESC" if q.desc else "ASC"
    order = f"{column} IS NULL, " if column in NULLABLE else ""
    order += f"{column} {direction}, id {direction}"
    rows = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM runs{where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*args, per_page, (page - 1) * per_page],
    ).fetchall()
    return RunPage([_run_row(r) for r in rows], total, page, pages, per_page)


@dataclass
class FilterChoices:
    participants: list[str]
    models: list[str]
    stop_reasons: list[str]
    experiments: dict[str, str]  # id -> name


def filter_choices(conn: sqlite3.Connection) -> FilterChoices:
    def distinct_json(column: str) -> list[str]:
        rows = conn.execute(f"SELECT DISTINCT j.value FROM runs, json_each(runs.{column}) j WHERE j.value IS NOT NULL")
        return sorted(str(r[0]) for r in rows)

    stops = [r[0] for r in conn.execute("SELECT DISTINCT stop_reason FROM runs WHERE stop_reason IS NOT NULL")]
    experiments = {r[0]: r[1] for r in conn.execute("SELECT id, name FROM experiments ORDER BY created_at DESC")}
    return FilterChoices(distinct_json("participants"), distinct_json("models"), sorted(stops), experiments)


# -- experiments -------------------------------------------------------------


@dataclass
class ExperimentRow:
    id: str
    name: str
    created_at: datetime | None
    spec: dict[str, Any]
    runs: int = 0


def list_experiments(conn: sqlite3.Connection) -> list[ExperimentRow]:
    rows = conn.execute(
        """SELECT e.id, e.name, e.created_at, e.spec, COUNT(r.id) AS runs
           FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.id
           GROUP BY e.id ORDER BY e.created_at DESC"""
    )
    return [_experiment(r, r["runs"]) for r in rows]


def get_experiment(conn: sqlite3.Connection, experiment_id: str) -> ExperimentRow | None:
    row = conn.execute("SELECT id, name, created_at, spec FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
    if row is None:
        return None
    runs = conn.execute("SELECT COUNT(*) FROM runs WHERE experiment_id = ?", (experiment_id,)).fetchone()[0]
    return _experiment(row, runs)


def _experiment(r: sqlite3.Row, runs: int) -> ExperimentRow:
    try:
        spec = json.loads(r["spec"])
    except (TypeError, ValueError):
        spec = {"unreadable spec": r["spec"]}
    created = datetime.fromisoformat(r["created_at"]) if r["created_at"] else None
    return ExperimentRow(r["id"], r["name"], created, spec, runs)


