"""Experiments: a matrix of conversations run concurrently, resumably.

An experiment file names a pool of participants and the settings to sweep.
`plan_experiment` expands it into one `PlannedConversation` per cell and
repeat, each with a seed derived from the base seed and the cell, so the plan
is the same every time it is computed. `arun_experiment` runs what the store
does not have yet: finished runs are skipped, interrupted or killed ones
resumed, missing ones started — the store's unique (experiment, cell) index
makes a duplicate impossible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import lifecycle
from .backends.registry import BackendFactory
from .conversations import check_spec
from .costs.limit import SharedBudget, check_prices
from .engine import RunListener
from .errors import DuologueError
from .experiment_spec import ExperimentSpec, PlannedConversation, stored_experiment
from .progress import BatchCounter, BatchTotals
from .runner import run_conversation_once
from .spec_checks import entering_experiment, planned
from .stopping import format_usd
from .store import DEFAULT_DB, CellRun, Store, cell_key, held_elsewhere
from .sync import run_sync
from .verdict import UNRESOLVED, Verdict

__all__ = ["BatchResult", "arun_experiment", "describe_plan", "run_experiment"]

# Seconds between rewrites of a running conversation's transcript file in a batch
# (each rewrite renders the whole transcript; the store has every message at once).
TRANSCRIPT_INTERVAL = 5.0

# Conversations in flight per provider when the experiment file does not say. Embedded ones
# share one engine that decodes their next tokens together (bench/concurrency.py).
DEFAULT_CONCURRENCY = {"local": 8, "default": 8}


@dataclass
class BatchResult:
    experiment: str
    planned: int
    skipped: int
    finished: int
    errors: list[tuple[str, str]]  # (run id, detail)
    totals: BatchTotals
    # The experiment's cost limit: what its conversations have spent (USD), the limit, and how many
    # conversations were not started (or not resumed) because it was reached.
    cost: float = 0.0
    cost_limit: float | None = None
    held_back: int = 0
    cost_unknown: int = 0  # the experiment's generated messages whose cost is unknown
    # Every run of the experiment (this batch's and earlier ones) with its verdict: what its stored analysis
    # says of its loop, attractor and end state (verdict.py), as `report`, `ls` and `show` say it.
    verdicts: list[tuple[str, Verdict]] = field(default_factory=list)

    def verdict_counts(self) -> dict[str, Any]:
        """How many of the experiment's runs have each finding, by their stored analyses."""
        analysed = [v for _, v in self.verdicts if v.analysed]
        ends: dict[str, int] = {}
        for v in analysed:
            key = v.end_state or UNRESOLVED
            ends[key] = ends.get(key, 0) + 1
        return {
            "runs": len(self.verdicts),
            "analysed": len(analysed),
            "looped": sum(1 for v in analysed if v.loop),
            "exact_loop": sum(1 for v in analysed if v.loop == "exact_loop"),
            "near_loop": sum(1 for v in analysed if v.loop == "near_loop"),
            "attractor": sum(1 for v in analysed if v.attractor),
            "end_states": dict(sorted(ends.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def _check_experiment_record(store: Store, exp: ExperimentSpec) -> None:
    data = exp.record()
    existing = store.get_experiment(exp.name)
    if existing is None:
        store.create_experiment(exp.name, exp.name, data)
        return
    # The stored record read by today's model, so a setting added to duologue since, left unset, is no
    # change, and an older duologue's record of the same file is the same record.
    stored = stored_experiment(existing.spec)
    if (stored.record() if stored else existing.spec) != data:
        raise DuologueError(
            f"experiment '{exp.name}' is already in {store.path} with other settings; "
            "give the changed experiment another name"
        )


async def arun_experiment(
    exp: ExperimentSpec,
    *,
    db: str | Path = DEFAULT_DB,
    on_progress: Callable[[BatchTotals], None] | None = None,
    listeners: Iterable[RunListener] = (),
    make_backend: BackendFactory | None = None,
) -> BatchResult:
    """Run every conversation of the experiment the store does not have finished yet.

    `make_backend` makes each participant's backend instead of the provider registry (which then
    checks nothing: the factory answers for its models)."""
    exp = entering_experiment(exp)
    plans = planned(exp)
    for plan in plans if make_backend is None else ():
        check_spec(plan.spec)  # models, files and keys (a change's, the summarizer's too), before anything is written
    if exp.cost_limit is not None:
        check_prices([plan.spec for plan in plans], "the experiment's cost_limit")
    limits = {**DEFAULT_CONCURRENCY, **exp.concurrency}
    with Store(db) as store:
        _check_experiment_record(store, exp)
        budget = _budget(store, exp)
        existing = store.experiment_runs(exp.name)
        todo: list[tuple[PlannedConversation, str | None]] = []
        for plan in plans:
            found = existing.get(plan.key)
            if _done(exp, found):
                continue
            if found is not None and found.status == "running" and held_elsewhere(found.pid):
                raise DuologueError(f"experiment '{exp.name}' is being run by process {found.pid} (run {found.run_id})")
            todo.append((plan, found.run_id if found is not None else None))

        totals = BatchTotals(total=len(plans), skipped=len(plans) - len(todo))
        notify = on_progress or (lambda totals: None)
        counter = BatchCounter(totals, lambda: notify(totals))
        notify(totals)
        semaphores = {name: asyncio.Semaphore(n) for name, n in limits.items()}
        errors: list[tuple[str, str]] = []
        held: list[PlannedConversation] = []

        async def one(plan: PlannedConversation, run_id: str | None) -> None:
            async with AsyncExitStack() as stack:
                for provider in plan.providers:  # sorted: no two tasks wait on each other in a cycle
                    await stack.enter_async_context(semaphores.get(provider, semaphores["default"]))
                if budget is not None and budget.reached:  # the experiment's limit: no more conversations
                    held.append(plan)
                    totals.done += 1
                    notify(totals)
                    return
                totals.running += 1
                totals.max_running = max(totals.max_running, totals.running)
                notify(totals)
                try:
                    run = await run_conversation_once(
                        plan.spec,
                        store,
                        db,
                        resume=store.get_run(run_id) if run_id else None,
                        experiment_id=exp.name,
                        experiment_cell=plan.cell,
                        listeners=[counter, *listeners],
                        make_backend=make_backend,
                        transcript_interval=TRANSCRIPT_INTERVAL,
                        in_workload=True,
                        budget=budget,
                    )
                    if run.status == "error":
                        errors.append((run.id, run.stop_detail or "error"))
                    counter.ended(run)
                except DuologueError as err:
                    errors.append((run_id or "-", str(err)))
                    counter.ended(None)
                finally:
                    totals.running -= 1
                    totals.done += 1
                    notify(totals)

        # The providers' scopes for the conversations in flight: embedded participants share a pool of engines
        # and decode together, as many at once as the experiment's [concurrency] lets each provider run.
        async with lifecycle.workload([plan.spec for plan, _ in todo], limits):
            await asyncio.gather(*(one(plan, run_id) for plan, run_id in todo))
        stored = store.experiment_runs(exp.name)
        finished = sum(1 for plan in plans if (cell := stored.get(plan.key)) and cell.status == "finished")
        spent, unknown = store.experiment_cost(exp.name)
        verdicts = [(r.id, r.verdict) for r in store.experiment_run_records(exp.name)]
    totals.errors = len(errors)
    return BatchResult(
        exp.name,
        len(plans),
        totals.skipped,
        finished,
        errors,
        totals,
        spent,
        exp.cost_limit,
        len(held),
        unknown,
        verdicts=verdicts,
    )


def _budget(store: Store, exp: ExperimentSpec) -> SharedBudget | None:
    """The experiment's spending limit, started from what its stored runs spent; None without a limit."""
    if exp.cost_limit is None:
        return None
    spent, unknown = store.experiment_cost(exp.name)
    if unknown:
        raise DuologueError(
            f"experiment '{exp.name}' has {unknown} message{'s' if unknown != 1 else ''} of unknown cost, "
            "so its cost_limit cannot count what it spent"
        )
    budget = SharedBudget(exp.name, exp.cost_limit, spent)
    if budget.reached:
        raise DuologueError(
            f"experiment '{exp.name}' has spent {format_usd(spent)}, reaching its cost_limit of "
            f"{format_usd(exp.cost_limit)}: raise cost_limit in its file to go on"
        )
    return budget


def run_experiment(
    exp: ExperimentSpec,
    *,
    db: str | Path = DEFAULT_DB,
    on_progress: Callable[[BatchTotals], None] | None = None,
    listeners: Iterable[RunListener] = (),
    make_backend: BackendFactory | None = None,
) -> BatchResult:
    """arun_experiment from sync code; works inside a running event loop too (a notebook)."""
    return run_sync(
        arun_experiment(exp, db=db, on_progress=on_progress, listeners=listeners, make_backend=make_backend)
    )


def remaining(exp: ExperimentSpec, plans: list[PlannedConversation], db: str | Path) -> list[PlannedConversation]:
    """The conversations a batch of `exp` would run now: those the store at `db` does not hold finished
    (or, under a cost limit, stopped at it)."""
    if not Path(db).exists():
        return list(plans)
    with Store(db, create=False) as store:
        found = store.experiment_runs(exp.name)
    return [plan for plan in plans if not _done(exp, found.get(plan.key))]


def _done(exp: ExperimentSpec, cell: CellRun | None) -> bool:
    """Whether a batch of `exp` leaves this cell's run alone: it finished, and not at the experiment's cost
    limit (one that limit stopped goes on under a higher limit)."""
    return (
        cell is not None
        and cell.status == "finished"
        and not (exp.cost_limit is not None and cell.stop_reason == "cost_limit")
    )


def describe_plan(exp: ExperimentSpec, plans: list[PlannedConversation]) -> list[dict[str, Any]]:
    """One row per cell (repeats folded), its varied values as shown (openers as text), for --dry-run."""
    rows: dict[str, dict[str, Any]] = {}
    for plan in plans:
        cell = {k: v for k, v in plan.cell.items() if k != "repeat"}
        key = cell_key(cell)
        row = rows.setdefault(
            key,
            {**exp.shown_cell(cell), "models": " ↔ ".join(p.model for p in plan.spec.participants), "repeats": 0},
        )
        row["repeats"] += 1
    return list(rows.values())
