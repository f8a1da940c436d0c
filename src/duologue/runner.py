"""The one way a conversation runs: `run`, `resume`, `fork`, every conversation of a `batch`, and the API.

`run_conversation_once` takes a spec and the store and does, in order:

1. the providers' workload scope (backends/lifecycle.py; the embedded pool of
   engines), unless the caller opened one for many conversations (a batch);
2. each participant as its provider will run it (`prepare`: the weights `auto`
   means), for a new run or a fork; a resumed run keeps its stored spec;
3. the watchers (detectors.watchers_for) and the listeners, the transcript
   file first (transcript_writer.TranscriptWriter);
4. the run's record: new, the resumed one, or a fork's (its parent's first
   messages);
5. each provider's scope around the conversation (the embedded pool keeps its
   participants on one shard), and the turn loop (engine.Conversation) to the
   end, its backends priced (costs/priced.py: each reply's cost in its usage),
   the price data's version recorded with the run, and a spending limit
   watched when the run or its experiment has one (costs/limit.py);
6. the analysis of the whole run, stored with it (analysis/stored.py).

A full disk is named with the run and `duologue resume`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .analysis.stored import store_analysis
from .backends import lifecycle
from .backends.registry import BackendFactory
from .costs.limit import CostLimit, SharedBudget
from .costs.priced import priced_factory
from .costs.prices import price_data_version
from .detectors import watchers_for
from .engine import Conversation, Interjector, RunListener, Watcher, new_run_id
from .records import Run, utcnow
from .spec import ConversationSpec
from .store import Store, StoreFullError
from .transcript_writer import TranscriptWriter
from .version import __version__


class CurrentRun(RunListener):
    """Pass one among the listeners to learn which run a call works on (`id`), as soon as the run is in
    the store: a new run, the resumed one, or the fork. The CLI names it when Ctrl-C stops the call."""

    def __init__(self) -> None:
        self.id: str | None = None

    def run_started(self, run: Run, resumed: bool) -> None:
        self.id = run.id


@dataclass(frozen=True)
class Fork:
    """A fork's origin: the parent run and how many of its messages the fork keeps."""

    parent: Run
    at: int


async def run_conversation_once(
    spec: ConversationSpec,
    store: Store,
    db: str | Path,
    *,
    resume: Run | None = None,
    fork: Fork | None = None,
    listeners: Iterable[RunListener] = (),
    watchers: Iterable[Watcher] | None = None,
    experiment_id: str | None = None,
    experiment_cell: dict | None = None,
    interjector: Interjector | None = None,
    make_backend: BackendFactory | None = None,
    transcript_interval: float = 0.0,
    in_workload: bool = False,
    budget: SharedBudget | None = None,
) -> Run:
    """Run one conversation (new, `resume`d or a `fork`) to its end, with its transcript and stored analysis.
    `in_workload`: the caller holds the providers' workload scope for many conversations (a batch);
    `budget`: the spending limit it shares with other conversations (an experiment's cost_limit)."""
    scope = contextlib.nullcontext() if in_workload else lifecycle.workload([spec])
    async with scope:
        if resume is None:
            spec = lifecycle.prepare(spec)
        run = resume
        if fork is not None:
            run = _fork_record(spec, fork)
            store.create_run(run)
        listeners = list(listeners)
        watchers = watchers_for(spec) if watchers is None else list(watchers)
        if spec.cost_limit is not None or budget is not None:
            start = (run.fork_at or 0) if run is not None else 0
            replayed = len(run.messages) if run is not None else 0
            watchers.append(CostLimit(spec.cost_limit, start=start, replayed=replayed, shared=budget))
        conv = Conversation(
            spec,
            store,
            run=run,
            listeners=[TranscriptWriter(db, min_interval=transcript_interval), *listeners],
            watchers=watchers,
            experiment_id=experiment_id,
            experiment_cell=experiment_cell,
            interjector=interjector,
            make_backend=priced_factory(spec, make_backend),
        )
        store.set_price_data(conv.run.id, price_data_version())
        for listener in listeners:
            if isinstance(listener, CurrentRun):
                listener.id = conv.run.id
        try:
            with lifecycle.conversation(spec, conv.run.id):
                run = await conv.run_to_end()
        except StoreFullError as err:
            rid = conv.run.id
            raise StoreFullError(f"run {rid} stopped: {err}, then continue it with `duologue resume {rid}`") from None
    store_analysis(store, run, watchers)
    return run


def _fork_record(spec: ConversationSpec, fork: Fork) -> Run:
    """The fork's run: the parent's first `at` messages, its spec, the parent and fork point recorded."""
    return Run(
        id=new_run_id(),
        spec=spec.model_dump(mode="json"),
        participants=spec.names,
        started_at=utcnow(),
        duologue_version=__version__,
        parent_run_id=fork.parent.id,
        fork_at=fork.at,
        messages=[dataclasses.replace(m) for m in fork.parent.messages[: fork.at]],
    )
