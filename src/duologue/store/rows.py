"""What the store's queries return: typed records, never sqlite rows or loose dicts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..verdict import Verdict, verdict_of

if TYPE_CHECKING:
    from ..analysis.report import Analysis

PER_PAGE = 50


@dataclass(frozen=True)
class ExactLoopRecord:
    """The exact loop of a run's stored analysis, as the store's loop columns keep it."""

    period: int
    onset: int  # first message of the first cycle
    first_repeat: int
    last: int
    kind: str | None = None
    absorbing: bool | None = None
    detail: str | None = None


@dataclass(frozen=True)
class NearLoopRecord:
    onset: int
    dominant_lag: int | None = None


@dataclass(frozen=True)
class LoopSummary:
    """The loops found by a run's analysis: what the viewer, the reports and the tables read."""

    exact: ExactLoopRecord | None = None
    near: NearLoopRecord | None = None

    @classmethod
    def of(cls, analysis: Analysis) -> LoopSummary:
        """From the typed analysis (duologue.analysis.analyze), field by field."""
        e, n = analysis.exact_loop, analysis.near_loop
        exact = (
            ExactLoopRecord(e.period, e.onset, e.first_repeat, e.last, e.kind, e.absorbing, e.detail())
            if e is not None
            else None
        )
        near = NearLoopRecord(n.onset, n.dominant_lag) if n is not None else None
        return cls(exact, near)


@dataclass(frozen=True)
class SemanticSummary:
    """The semantic findings of a run's analysis, as the store's columns keep them."""

    end_state: str | None = None  # theme id of the final window; None: unresolved (or not analysed)
    attractor: str | None = None  # theme id the run entered and stayed in
    attractor_onset: int | None = None
    convergence_onset: int | None = None
    convergence_strength: float | None = None

    @classmethod
    def of(cls, analysis: Analysis) -> SemanticSummary:
        at, conv = analysis.attractor, analysis.convergence
        return cls(
            end_state=analysis.end_state,
            attractor=at.theme if at else None,
            attractor_onset=at.onset if at else None,
            convergence_onset=conv.onset if conv else None,
            convergence_strength=conv.strength if conv else None,
        )


@dataclass(frozen=True)
class MessageTheme:
    """One message's labels from a run's stored analysis (theme ids; None: no theme)."""

    index: int
    theme: str | None
    topic: str | None


@dataclass
class RunRow:
    """One run in a list (no messages): the columns of `ls` and the viewer's runs table."""

    id: str
    title: str
    participants: list[str]
    models: list[str | None]
    started_at: datetime | None
    ended_at: datetime | None
    status: str  # as shown: "killed" for a running run whose process is gone
    stop_reason: str | None
    stop_detail: str | None
    parent_run_id: str | None
    fork_at: int | None
    experiment_id: str | None
    message_count: int
    cost: float = 0.0  # USD: its own generated messages' known costs
    cost_unknown: int = 0  # its own generated messages whose cost is unknown
    loops: LoopSummary | None = None  # the stored analysis's loops and semantic findings; None: not analysed
    semantic: SemanticSummary | None = None

    @property
    def loop_period(self) -> int | None:
        """The stored analysis's exact loop's period; None without one."""
        exact = self.loops.exact if self.loops else None
        return exact.period if exact else None

    @property
    def loop_onset(self) -> int | None:
        """Where the stored analysis's exact loop starts; None without one."""
        exact = self.loops.exact if self.loops else None
        return exact.onset if exact else None

    @property
    def verdict(self) -> Verdict:
        """Its loop, attractor and end state, as every surface says them (verdict.py)."""
        return verdict_of(self.loops, self.semantic)

    def as_dict(self) -> dict[str, Any]:
        """The dict `duologue.list_runs` has always returned (times as ISO text, `messages` the count)."""
        return {
            "id": self.id,
            "title": self.title,
            "participants": self.participants,
            "models": self.models,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "stop_detail": self.stop_detail,
            "parent_run_id": self.parent_run_id,
            "fork_at": self.fork_at,
            "experiment_id": self.experiment_id,
            "messages": self.message_count,
            "cost_usd": self.cost,
            "cost_unknown_messages": self.cost_unknown,
            "verdict": self.verdict.as_dict(),
        }


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


@dataclass
class FilterChoices:
    participants: list[str]
    models: list[str]
    stop_reasons: list[str]
    experiments: dict[str, str]  # id -> name


@dataclass(frozen=True)
class RunProgress:
    """How far a (possibly live) run has got: its shown status and how many messages it has."""

    status: str
    message_count: int


@dataclass
class ExperimentRow:
    id: str
    name: str
    created_at: datetime | None
    spec: dict[str, Any]
    runs: int = 0


@dataclass(frozen=True)
class CellRun:
    """The run of one cell of an experiment's matrix, as a batch needs it to decide what to do."""

    run_id: str
    status: str  # as stored (a batch decides itself whether a running run's process is alive)
    pid: int | None
    stop_reason: str | None = None


@dataclass
class ExperimentRun:
    """A run of an experiment, for its report and its tables (times as the store keeps them: ISO text)."""

    id: str
    title: str
    participants: list[str]
    models: list[str | None]
    started_at: str | None
    ended_at: str | None
    status: str  # as stored
    stop_reason: str | None
    stop_detail: str | None
    spec: dict[str, Any]
    cell: dict[str, Any] | None
    loops: LoopSummary
    semantic: SemanticSummary = SemanticSummary()
    cost: float = 0.0  # USD: its own generated messages' known costs (runs.cost)
    cost_unknown: int = 0  # its own generated messages whose cost is unknown
    analysed: bool = True  # False: no analysis stored (loops and semantic are then empty)

    @property
    def verdict(self) -> Verdict:
        """Its loop, attractor and end state, as every surface says them (verdict.py)."""
        return verdict_of(self.loops, self.semantic) if self.analysed else verdict_of(None, None)


@dataclass
class MessageRow:
    """A stored message as the experiment tables export it (times as ISO text, `injected` 0 or 1)."""

    run_id: str
    message_index: int
    speaker: str
    model: str | None
    content: str
    reasoning: str | None
    started_at: str | None
    ended_at: str | None
    ttft: float | None
    latency: float | None
    prompt_tokens: int | None
    cached_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    attempts: int
    injected: int
    theme: str | None = None  # the message's end-state theme label (stored analysis), None: none
    topic: str | None = None
    cache_write_tokens: int | None = None
    cost: float | None = None  # USD; None: unknown (cost_source says why) or not recorded
    cost_source: str | None = None
