"""What conversations cost: each message's price, the run's and the experiment's totals, a spending limit, and
an estimate before a batch spends anything.

- `prices.py`: genai-prices' bundled data (never fetched): a model string's rates, a reply's cost.
- `priced.py`: the run's backends wrapped so each reply carries its cost (the engine never prices).
- `limit.py`: `cost_limit` for a run or an experiment (a watcher), and the check that prices are known.
- `estimate.py`: tokens and cost of a plan's conversations before they run, as a range.

This module itself is light (the CLI imports it for `ls` and the summary line): it formats what the store
recorded, and imports no price data.
"""

from __future__ import annotations

from collections import Counter

from ..records import Run
from ..stopping import format_usd, own_messages, spent_cost, unknown_cost_reason

__all__ = ["cost_cell", "describe_cost", "format_usd"]


def _source(text: str) -> str:
    return "embedded model" if text.startswith("free") else text


def describe_cost(run: Run) -> str:
    """A run's cost in one phrase: "$0.0123 (genai-prices 0.2.3)", "$0.02 + 3 messages of unknown cost
    (self-hosted endpoint)", "unknown (model not in the price data …)"; a fork's kept messages not counted."""
    own = own_messages(run)
    if not own:
        return "$0 (no generated messages)"
    why = Counter(unknown_cost_reason(m) for m in own if m.cost is None)
    reasons = "; ".join(why)
    usd, unknown = spent_cost(run)
    if unknown == len(own):
        return f"unknown ({reasons})"
    sources = ", ".join(dict.fromkeys(_source(m.cost_source or "") for m in own if m.cost is not None))
    text = format_usd(usd)
    if unknown:
        text += f" + {unknown} message{'s' if unknown != 1 else ''} of unknown cost ({reasons})"
    return f"{text} ({sources})" if sources else text


def cost_cell(usd: float, unknown: int, generated: int | None = None) -> str:
    """A run's (or a group's) cost in a table cell: "$0.0123", "≥$0.0123" when some messages' cost is
    unknown, "?" when every one's is, "" for no generated message."""
    if generated == 0:
        return ""
    if unknown and (usd == 0 or (generated is not None and unknown >= generated)):
        return "?"
    return ("≥" if unknown else "") + format_usd(usd)
