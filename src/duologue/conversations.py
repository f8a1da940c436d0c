"""Starting, continuing and forking conversations: what `duologue run`, `resume` and `fork` do, and the API's
`arun_conversation`, `aresume_run`, `afork_run` (duologue.api re-exports them with their sync versions).

Each checks what can be checked before anything is written (model strings, files, keys), fills in what a
stored spec must hold to repeat the run (seeds), and hands the conversation to the runner (runner.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from .backends.registry import BackendFactory, check_participant
from .costs.limit import check_prices
from .engine import Interjector, RunListener, Watcher
from .errors import DuologueError
from .records import Run
from .runner import Fork, run_conversation_once
from .spec import ConversationSpec, spec_from_dict
from .spec_checks import entering_spec
from .stopping import check_resumable, format_limit, spent_cost
from .store import DEFAULT_DB, Store, held_elsewhere
from .sync import run_sync


def complete_seeds(spec: ConversationSpec) -> ConversationSpec:
    """Fill in any missing seed (fresh random ones) so the stored spec repeats the run exactly."""
    spec = spec.model_copy(deep=True)
    if spec.seed is None:
        spec.seed = random.SystemRandom().randrange(2**31)
    for i, p in enumerate(spec.participants):
        if p.seed is None:
            p.seed = spec.seed + i
    return spec


def check_spec(spec: ConversationSpec) -> None:
    """Everything checkable before a run starts (model strings, GGUF files, API keys)."""
    for p in spec.participants:
        check_participant(p)
    for ch in spec.changes:
        if ch.model is not None:
            check_participant(spec.participant(ch.participant).model_copy(update={"model": ch.model}))
    if spec.context.strategy == "summarize":
        s = spec.context.summarizer
        check_participant(s.model_copy(update={"model": s.model or spec.participants[0].model}))


def _check(spec: ConversationSpec, make_backend: BackendFactory | None) -> None:
    # A caller's own factory answers for its models; the registry checks its providers'.
    if make_backend is None:
        check_spec(spec)
    if spec.cost_limit is not None:  # whoever makes the backends, a limit needs the models' prices
        check_prices([spec])


async def arun_conversation(
    spec: ConversationSpec,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    experiment_id: str | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
) -> Run:
    """Run a conversation to its end. `make_backend` makes each participant's backend instead of the
    provider registry (which then checks nothing: the factory answers for its models)."""
    spec = entering_spec(spec)
    _check(spec, make_backend)
    with Store(db) as store:
        return await run_conversation_once(
            complete_seeds(spec),
            store,
            db,
            listeners=listeners,
            watchers=watchers,
            experiment_id=experiment_id,
            interjector=interjector,
            make_backend=make_backend,
        )


async def aresume_run(
    run_ref: str,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
    token_budget: int | None = None,
    time_limit: float | None = None,
    max_messages: int | None = None,
    cost_limit: float | None = None,
) -> Run:
    """Continue a run. `token_budget` / `time_limit` / `max_messages` / `cost_limit` replace the run's own
    (stored in its spec, with a `limits` event); a run that stopped at its budget, time or cost limit
    continues only given a new one, and a finished run of any other stop reason only given a larger
    `max_messages`."""
    with Store(db, create=False) as store:
        run = store.get_run(run_ref)
        if run.source:
            raise DuologueError(f"run {run.id} was imported from {run.source}; it has no spec to resume")
        check_resumable(run, token_budget, time_limit, max_messages, cost_limit)
        if run.status == "running" and held_elsewhere(store.run_pid(run.id)):
            raise DuologueError(f"run {run.id} is still running in process {store.run_pid(run.id)}")
        spec = entering_spec(spec_from_dict(run.spec, source=f"run {run.id}"), f"run {run.id}")
        given = {
            "token_budget": token_budget,
            "time_limit": time_limit,
            "max_messages": max_messages,
            "cost_limit": cost_limit,
        }
        if spec.cost_limit is not None or cost_limit is not None:
            unknown = spent_cost(run)[1]
            if unknown:
                raise DuologueError(
                    f"run {run.id} has {unknown} message{'s' if unknown != 1 else ''} of unknown cost, "
                    "so a cost limit cannot count what it spent"
                )
        if any(v is not None for v in given.values()):
            spec = _new_limits(store, run, spec, given)
        _check(spec, make_backend)
        return await run_conversation_once(
            spec,
            store,
            db,
            resume=run,
            listeners=listeners,
            watchers=watchers,
            interjector=interjector,
            make_backend=make_backend,
        )


def _new_limits(store: Store, run: Run, spec: ConversationSpec, given: dict[str, float | None]) -> ConversationSpec:
    """The run's spec with the new limits, stored (with an event saying what changed) before it goes on."""
    data = spec.model_dump(mode="json")
    changed = {k: {"from": data[k], "to": v} for k, v in given.items() if v is not None and v != data[k]}
    data.update({k: v for k, v in given.items() if v is not None})
    spec = spec_from_dict(data, source=f"resume of {run.id}")  # one line for a limit out of range
    if changed:
        new = spec.model_dump(mode="json")
        detail = ", ".join(
            f"{k.replace('_', ' ')} {format_limit(c['from'])} → {format_limit(new[k])}" for k, c in changed.items()
        )
        store.update_spec(run.id, new, kind="limits", detail=detail, data=changed)
        run.spec = new
    return spec


def fork_base(parent: Run, at: int) -> dict:
    """The parent's spec as it stood after message `at`, for a fork's changed settings to go on top of.

    Changes already in effect by then are folded into the participants, so that
    what the fork is given overrides them instead of being overridden by them;
    later changes stay scheduled.
    """
    spec = spec_from_dict(parent.spec, source=f"run {parent.id}: its stored spec")  # as `run` builds a file's spec
    data = spec.model_dump(mode="json")
    data["participants"] = [p.model_dump(mode="json") for p in spec.participants_at(at)]
    data["changes"] = [ch.model_dump(mode="json") for ch in spec.changes if ch.at > at]
    return data


async def afork_run(
    run_ref: str,
    at: int,
    spec: ConversationSpec | None = None,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
) -> Run:
    """A new run whose first `at` messages are those of `run_ref`, continued with `spec`.

    `spec` defaults to the parent's own (see fork_base); give one with another
    model, system prompt, sampling, seed or message limit to see what changes.
    The new run records its parent and the fork point.
    """
    with Store(db, create=False) as store:
        parent = store.get_run(run_ref)
        count = len(parent.messages)
        if not 1 <= at <= count:
            raise DuologueError(f"run {parent.id} has {count} messages; fork at one of 1..{count}")
        if spec is None:
            spec = spec_from_dict(fork_base(parent, at), source=f"fork of {parent.id}")
        imported = [p.name for p in spec.participants if p.model == "imported"]
        if imported:
            raise DuologueError(
                f"run {parent.id} was imported, so no model is known for {', '.join(imported)}: "
                "give the models to go on with (--a/--b or --participant)"
            )
        kept = parent.messages[:at]
        # The kept messages must still be the participants' own, or the fork would hear them as strangers.
        lost = sorted({m.speaker for m in kept if m.speaker in parent.participants} - set(spec.names))
        if lost:
            raise DuologueError(f"a fork keeps the participants of the messages it keeps; missing: {', '.join(lost)}")
        spec = entering_spec(spec)
        _check(spec, make_backend)
        return await run_conversation_once(
            complete_seeds(spec),
            store,
            db,
            fork=Fork(parent, at),
            listeners=listeners,
            watchers=watchers,
            interjector=interjector,
            make_backend=make_backend,
        )


def run_conversation(
    spec: ConversationSpec,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    experiment_id: str | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
) -> Run:
    """Run a conversation to its end and return it (messages included); works inside a running loop.
    The arguments are arun_conversation's."""
    return run_sync(
        arun_conversation(
            spec,
            db=db,
            listeners=listeners,
            watchers=watchers,
            experiment_id=experiment_id,
            interjector=interjector,
            make_backend=make_backend,
        )
    )


def resume_run(
    run_ref: str,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
    token_budget: int | None = None,
    time_limit: float | None = None,
    max_messages: int | None = None,
    cost_limit: float | None = None,
) -> Run:
    """Continue an interrupted, failed or killed run from the store with its own spec (or one stopped
    by its token budget, time or cost limit, given a new one: `token_budget=`, `time_limit=`,
    `cost_limit=`; or any finished run, given a larger `max_messages=`). The arguments are aresume_run's."""
    return run_sync(
        aresume_run(
            run_ref,
            db=db,
            listeners=listeners,
            watchers=watchers,
            interjector=interjector,
            make_backend=make_backend,
            token_budget=token_budget,
            time_limit=time_limit,
            max_messages=max_messages,
            cost_limit=cost_limit,
        )
    )


def fork_run(
    run_ref: str,
    at: int,
    spec: ConversationSpec | None = None,
    *,
    db: str | Path = DEFAULT_DB,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
) -> Run:
    """Start a new run from the first `at` messages of another, with its own (changed) spec. The arguments
    are afork_run's."""
    return run_sync(
        afork_run(
            run_ref,
            at,
            spec,
            db=db,
            listeners=listeners,
            watchers=watchers,
            interjector=interjector,
            make_backend=make_backend,
        )
    )
