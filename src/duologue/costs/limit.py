"""A spending limit: a run's own (`cost_limit`, `--cost-limit`) and an experiment's (a total across its
conversations), both watching each message's recorded cost.

`CostLimit` is a watcher (engine.Watcher) the runner adds to a run with a limit: it adds up what the
run's own generated messages cost and stops the run (stop reason `cost_limit`) once a limit is reached.
An experiment's conversations share one `SharedBudget`, started from what the store says they spent
before, so the experiment stops as a whole. A message whose cost is unknown cannot be counted: the run
ends with an error saying so (a limit never passes silently), and `check_prices` refuses before the run
starts when a model has no known price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import BackendError, DuologueError
from ..records import Message
from ..spec import ConversationSpec
from ..stopping import StopReason, WatchEvent, format_usd, unknown_cost_reason
from .prices import model_prices


class CostUnknownError(BackendError):
    """A message's cost is unknown while a cost limit watches the run: the run ends with an error."""


@dataclass
class SharedBudget:
    """An experiment's limit: what its conversations have spent, across all of them (and earlier batches)."""

    experiment: str
    limit: float
    spent: float = 0.0

    @property
    def reached(self) -> bool:
        return self.spent >= self.limit


class CostLimit:
    """Watches one run. `start`: messages up to this index are not the run's own (a fork's kept ones);
    `replayed`: those up to this index were stored before (a resume), already in the shared budget."""

    def __init__(self, limit: float | None, *, start: int = 0, replayed: int = 0, shared: SharedBudget | None = None):
        self.limit = limit
        self.start = start
        self.replayed = replayed
        self.shared = shared
        self.spent = 0.0

    def observe(self, message: Message) -> list[WatchEvent]:
        if message.injected or message.index <= self.start:
            return []
        if message.cost is None:
            if message.index <= self.replayed:  # stored before; check_prices said why it may go on
                return []
            raise CostUnknownError(
                f"the cost of message {message.index} ({message.model}) is unknown "
                f"({unknown_cost_reason(message)}), so the cost "
                "limit cannot be kept"
            )
        self.spent += message.cost
        if self.shared is not None and message.index > self.replayed:
            self.shared.spent += message.cost
        if self.limit is not None and self.spent >= self.limit:
            detail = f"{format_usd(self.spent)} reached the cost limit of {format_usd(self.limit)}"
            return [self._stop(message, detail, {"spent": self.spent, "limit": self.limit})]
        if self.shared is not None and self.shared.reached:
            s = self.shared
            detail = (
                f"experiment {s.experiment}'s conversations spent {format_usd(s.spent)}, reaching its cost limit "
                f"of {format_usd(s.limit)}"
            )
            return [self._stop(message, detail, {"spent": s.spent, "limit": s.limit, "experiment": s.experiment})]
        return []

    @staticmethod
    def _stop(message: Message, detail: str, data: dict) -> WatchEvent:
        return WatchEvent(
            kind="cost_limit", detail=detail, message_index=message.index, stop=StopReason.COST_LIMIT, data=data
        )


def unpriced_models(specs: Iterable[ConversationSpec]) -> dict[str, str]:
    """{model string: why it has no price} for every model these conversations may use whose replies
    would have no known cost (OpenRouter reports its own, so its models always have one)."""
    unknown: dict[str, str] = {}
    for spec in specs:
        base_urls = {p.model: p.base_url for p in spec.participants}
        for model in sorted(spec.models()):
            if model in unknown or model.startswith("openrouter/"):
                continue
            prices = model_prices(model, base_urls.get(model))
            if isinstance(prices, str):
                unknown[model] = prices.removeprefix("unknown: ")
    return unknown


def check_prices(specs: Iterable[ConversationSpec], what: str = "--cost-limit") -> None:
    """A cost limit needs every model's price: one line naming the first that has none."""
    unknown = unpriced_models(specs)
    if unknown:
        model, why = next(iter(unknown.items()))
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise DuologueError(f"{what} needs known prices, but {model} has none: {why}{more}")
