"""Why a run ended: the StopReason vocabulary, the end-marker, message-limit, token-budget and
time-limit rules; what a run has spent (tokens, and the cost its messages recorded).

The detectors that watch a run as it goes (loops, semantic convergence,
attractors, and any a plugin adds) live in duologue.detectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .backends.base import chars_to_tokens
from .errors import DuologueError
from .records import Message, Run


class StopReason(str, Enum):  # noqa: UP042  (a StrEnum would change what str() of a member gives)
    MAX_MESSAGES = "max_messages"
    END_MARKER = "end_marker"
    LOOP = "loop"
    NEAR_LOOP = "near_loop"
    CONVERGENCE = "convergence"
    ATTRACTOR = "attractor"
    TOKEN_BUDGET = "token_budget"
    TIME_LIMIT = "time_limit"
    COST_LIMIT = "cost_limit"
    CONTEXT_FULL = "context_full"
    ERROR = "error"
    INTERRUPTED = "interrupted"

    @property
    def resumable(self) -> bool:
        return self in (StopReason.ERROR, StopReason.INTERRUPTED)


@dataclass(frozen=True)
class Stop:
    reason: StopReason | str
    detail: str

    @property
    def value(self) -> str:
        """The stop reason as stored."""
        return self.reason.value if isinstance(self.reason, StopReason) else str(self.reason)


@dataclass(frozen=True)
class WatchEvent:
    """Something a watcher noticed after a message; `stop` set when it ends the run (a StopReason,
    or for a plugin detector its own name)."""

    kind: str
    detail: str
    message_index: int
    stop: StopReason | str | None = None
    data: dict | None = None


def end_marker_stop(messages: Sequence[Message], participants: Sequence[str], marker: str, end_on: str) -> Stop | None:
    """`any`: the latest message carries the marker. `both`: every participant's latest does."""
    if end_on == "never" or not marker or not messages:
        return None
    last = messages[-1]
    if end_on == "any":
        if marker in last.content:
            return Stop(StopReason.END_MARKER, f"{last.speaker} wrote {marker} in message {last.index}")
        return None
    latest: dict[str, Message] = {}
    for m in messages:
        latest[m.speaker] = m
    if all(name in latest and marker in latest[name].content for name in participants):
        return Stop(StopReason.END_MARKER, f"every participant's latest message has {marker}")
    return None


def max_messages_stop(messages: Sequence[Message], limit: int) -> Stop | None:
    if len(messages) >= limit:
        return Stop(StopReason.MAX_MESSAGES, f"reached {limit} messages")
    return None


def message_tokens(message: Message) -> int:
    """What a generated message costs a token budget: its completion tokens (reasoning included, as the
    providers count them); when the backend did not say, an estimate of characters / 3.5 (rounded up)."""
    if message.completion_tokens is not None:
        return message.completion_tokens
    chars = len(message.content) + len(message.reasoning or "")
    return chars_to_tokens(chars)


def spent_tokens(messages: Sequence[Message]) -> int:
    """The tokens a run's generated messages cost (injected ones, the opener included, cost nothing)."""
    return sum(message_tokens(m) for m in messages if not m.injected)


def token_budget_stop(messages: Sequence[Message], budget: int | None) -> Stop | None:
    if budget is None:
        return None
    spent = spent_tokens(messages)
    if spent >= budget:
        return Stop(StopReason.TOKEN_BUDGET, f"{spent} completion tokens reached the budget of {budget}")
    return None


def own_messages(run: Run) -> list[Message]:
    """A run's own generated messages: not injected, and not a fork's kept ones (its parent's)."""
    start = run.fork_at or 0
    return [m for m in run.messages if not m.injected and m.index > start]


def unknown_cost_reason(message: Message) -> str:
    """Why a message's cost is unknown, as its cost_source says ("unknown: why"); "not recorded" when it
    says nothing (a message stored before costs were)."""
    return (message.cost_source or "unknown: not recorded").removeprefix("unknown: ")


def spent_cost(run: Run) -> tuple[float, int]:
    """What a run's own generated messages cost (USD, as recorded with each) and how many of them have no
    known cost. A fork's kept messages were its parent's spending; injected messages cost nothing."""
    own = own_messages(run)
    return sum(m.cost or 0.0 for m in own), sum(1 for m in own if m.cost is None)


def format_usd(usd: float) -> str:
    """A cost for people: $0, <$0.0001, $0.0123, $1.23."""
    if usd == 0:
        return "$0"
    if usd < 0.0001:
        return "<$0.0001"
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


def time_limit_stop(elapsed: float, limit: float | None) -> Stop | None:
    """`elapsed`: wall-clock seconds since the run (or its latest resume) started."""
    if limit is None or elapsed < limit:
        return None
    return Stop(StopReason.TIME_LIMIT, f"{elapsed:.1f} s reached the time limit of {limit:g} s")


def check_resumable(
    run: Run,
    token_budget: int | None,
    time_limit: float | None,
    max_messages: int | None = None,
    cost_limit: float | None = None,
) -> None:
    """A finished run continues when it stopped at a limit and a new limit is given, or, whatever stopped
    it, when given a larger message limit (`max_messages`)."""
    spent = spent_tokens(run.messages)
    if token_budget is not None and token_budget <= spent:
        raise DuologueError(f"run {run.id} has spent {spent} completion tokens; give a --token-budget above that")
    if cost_limit is not None:
        usd, _ = spent_cost(run)
        if cost_limit <= usd:
            raise DuologueError(f"run {run.id} has spent {format_usd(usd)}; give a --cost-limit above that")
    if max_messages is not None and max_messages <= len(run.messages):
        raise DuologueError(f"run {run.id} already has {len(run.messages)} messages; give a --max-messages above that")
    if run.status != "finished":
        return
    if run.stop_reason == "token_budget" and token_budget is None:
        raise DuologueError(
            f"run {run.id} stopped at its token budget ({spent} tokens spent); "
            f"continue it with a larger one: `duologue resume {run.id} --token-budget N`"
        )
    if run.stop_reason == "time_limit" and time_limit is None:
        raise DuologueError(
            f"run {run.id} stopped at its time limit; continue it with `duologue resume {run.id} --time-limit "
            "SECONDS` (the clock starts again at the resume)"
        )
    if run.stop_reason == "cost_limit" and cost_limit is None:
        raise DuologueError(
            f"run {run.id} stopped at its cost limit ({format_usd(spent_cost(run)[0])} spent); "
            f"continue it with a larger one: `duologue resume {run.id} --cost-limit USD`"
        )
    if run.stop_reason not in ("token_budget", "time_limit", "cost_limit") and max_messages is None:
        raise DuologueError(
            f"run {run.id} already finished ({run.stop_reason}); extend it with "
            f"`duologue resume {run.id} --max-messages N`"
        )


def format_limit(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"
