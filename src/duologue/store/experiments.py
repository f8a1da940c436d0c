"""Experiments in the store: their records, the runs of their cells, and what their reports and tables read."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, overload

from ..errors import DuologueError
from ..records import utcnow
from .rows import (
    CellRun,
    ExactLoopRecord,
    ExperimentRow,
    ExperimentRun,
    LoopSummary,
    MessageRow,
    NearLoopRecord,
    SemanticSummary,
)


@overload
def cell_key(cell: dict[str, Any]) -> str: ...
@overload
def cell_key(cell: None) -> None: ...
def cell_key(cell: dict[str, Any] | None) -> str | None:
    """The canonical text of an experiment cell, as stored and compared."""
    return json.dumps(cell, sort_keys=True, ensure_ascii=False) if cell is not None else None


# The loop columns of `runs`, in the order loops_from_row reads them.
LOOP_COLUMNS = (
    "loop_period, loop_onset, loop_first_repeat, loop_last, loop_kind, loop_absorbing, loop_detail, "
    "near_loop_onset, near_loop_lag"
)


def loops_from_row(r: sqlite3.Row) -> LoopSummary:
    exact = None
    if r["loop_period"] is not None:
        absorbing = r["loop_absorbing"]
        exact = ExactLoopRecord(
            r["loop_period"],
            r["loop_onset"],
            r["loop_first_repeat"],
            r["loop_last"],
            r["loop_kind"],
            None if absorbing is None else bool(absorbing),
            r["loop_detail"],
        )
    near = NearLoopRecord(r["near_loop_onset"], r["near_loop_lag"]) if r["near_loop_onset"] is not None else None
    return LoopSummary(exact, near)


# The semantic columns of `runs`, in SemanticSummary's field order.
SEMANTIC_COLUMNS = "end_state, attractor, attractor_onset, convergence_onset, convergence_strength"


def semantic_from_row(r: sqlite3.Row) -> SemanticSummary:
    return SemanticSummary(
        r["end_state"], r["attractor"], r["attractor_onset"], r["convergence_onset"], r["convergence_strength"]
    )


def semantic_values(sem: SemanticSummary | None) -> tuple[Any, ...]:
    sem = sem or SemanticSummary()
    return (sem.end_state, sem.attractor, sem.attractor_onset, sem.convergence_onset, sem.convergence_strength)


def loop_values(loops: LoopSummary | None) -> tuple[Any, ...]:
    """The loop columns' values (in LOOP_COLUMNS order) for a summary; all NULL without one."""
    e = loops.exact if loops else None
    n = loops.near if loops else None
    return (
        e.period if e else None,
        e.onset if e else None,
        e.first_repeat if e else None,
        e.last if e else None,
        e.kind if e else None,
        None if e is None or e.absorbing is None else int(e.absorbing),
        e.detail if e else None,
        n.onset if n else None,
        n.dominant_lag if n else None,
    )


def _experiment(r: sqlite3.Row, runs: int) -> ExperimentRow:
    try:
        spec = json.loads(r["spec"])
    except (TypeError, ValueError):
        spec = {"unreadable spec": r["spec"]}
    created = datetime.fromisoformat(r["created_at"]) if r["created_at"] else None
    return ExperimentRow(r["id"], r["name"], created, spec, runs)


class Experiments:
    """The Store's experiment queries (a part of Store; see store/core.py)."""

    conn: sqlite3.Connection
    path: Path
    _write: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def get_experiment(self, experiment_id: str) -> ExperimentRow | None:
        row = self.conn.execute(
            "SELECT id, name, created_at, spec FROM experiments WHERE id = ?", (experiment_id,)
        ).fetchone()
        if row is None:
            return None
        runs = self.conn.execute("SELECT COUNT(*) FROM runs WHERE experiment_id = ?", (experiment_id,)).fetchone()[0]
        return _experiment(row, runs)

    def require_experiment(self, experiment_id: str) -> ExperimentRow:
        """The experiment, or a DuologueError naming up to ten that exist."""
        exp = self.get_experiment(experiment_id)
        if exp is None:
            known = ", ".join(e.id for e in self.list_experiments()[:10]) or "none yet"
            raise DuologueError(f"no experiment '{experiment_id}' in {self.path} (experiments: {known})")
        return exp

    def create_experiment(self, experiment_id: str, name: str, spec: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO experiments (id, name, spec, created_at) VALUES (?, ?, ?, ?)",
                (experiment_id, name, json.dumps(spec, ensure_ascii=False), utcnow().isoformat()),
            )

    def update_experiment_spec(self, experiment_id: str, spec: dict[str, Any]) -> None:
        """Replace an experiment's record (a collection of imported runs learning a new setting)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE experiments SET spec=? WHERE id=?", (json.dumps(spec, ensure_ascii=False), experiment_id)
            )

    def set_experiments(self, placed: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Put runs into experiments, each with its cell: (run id, experiment id, cell), in one transaction."""
        with self._write() as conn:
            conn.executemany(
                "UPDATE runs SET experiment_id=?, experiment_cell=? WHERE id=?",
                [(experiment_id, cell_key(cell), run_id) for run_id, experiment_id, cell in placed],
            )

    def list_experiments(self) -> list[ExperimentRow]:
        """Every experiment with its number of runs, newest first."""
        rows = self.conn.execute(
            """SELECT e.id, e.name, e.created_at, e.spec, COUNT(r.id) AS runs
               FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.id
               GROUP BY e.id ORDER BY e.created_at DESC"""
        )
        return [_experiment(r, r["runs"]) for r in rows]

    def experiment_runs(self, experiment_id: str) -> dict[str, CellRun]:
        """cell key -> the run of that cell, for the runs of an experiment."""
        rows = self.conn.execute(
            "SELECT experiment_cell, id, status, pid, stop_reason FROM runs "
            "WHERE experiment_id=? AND experiment_cell IS NOT NULL",
            (experiment_id,),
        ).fetchall()
        return {r[0]: CellRun(r[1], r[2], r[3], r[4]) for r in rows}

    def experiment_cost(self, experiment_id: str) -> tuple[float, int]:
        """What an experiment's runs have spent (USD, their generated messages' known costs) and how many
        of their generated messages have no known cost."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(cost), 0), COALESCE(SUM(cost_unknown), 0) FROM runs WHERE experiment_id=?",
            (experiment_id,),
        ).fetchone()
        return float(row[0]), int(row[1])

    def experiment_run_records(self, experiment_id: str) -> list[ExperimentRun]:
        """Every run of the experiment (no messages), by id."""
        rows = self.conn.execute(
            f"""SELECT id, title, participants, models, started_at, ended_at, status, stop_reason, stop_detail,
                       spec, experiment_cell, cost, cost_unknown, analysis IS NOT NULL AS analysed,
                       {LOOP_COLUMNS}, {SEMANTIC_COLUMNS}
                FROM runs WHERE experiment_id=? ORDER BY id""",
            (experiment_id,),
        )
        return [
            ExperimentRun(
                id=r["id"],
                title=r["title"],
                participants=json.loads(r["participants"]),
                models=json.loads(r["models"]),
                started_at=r["started_at"],
                ended_at=r["ended_at"],
                status=r["status"],
                stop_reason=r["stop_reason"],
                stop_detail=r["stop_detail"],
                spec=json.loads(r["spec"]),
                cell=json.loads(r["experiment_cell"]) if r["experiment_cell"] else None,
                loops=loops_from_row(r),
                semantic=semantic_from_row(r),
                cost=r["cost"],
                cost_unknown=r["cost_unknown"],
                analysed=bool(r["analysed"]),
            )
            for r in rows
        ]

    def experiment_messages(self, experiment_id: str) -> list[MessageRow]:
        """Every message of the experiment's runs, by run id and index."""
        rows = self.conn.execute(
            """SELECT m.run_id, m.idx, m.speaker, m.model, m.content, m.reasoning, m.started_at, m.ended_at,
                      m.ttft, m.latency, m.prompt_tokens, m.cached_tokens, m.completion_tokens, m.finish_reason,
                      m.attempts, m.injected, m.theme, m.topic, m.cache_write_tokens, m.cost, m.cost_source
               FROM messages m JOIN runs r ON r.id = m.run_id WHERE r.experiment_id=? ORDER BY m.run_id, m.idx""",
            (experiment_id,),
        )
        return [MessageRow(*tuple(r)) for r in rows]
