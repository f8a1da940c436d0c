"""Statistics across the runs of an experiment: loop rates, onsets, survival, tokens and money spent.

Works from the store's rows (each run's stored analysis and its messages), so a
report never re-runs a model. The survival curve is the Kaplan–Meier estimate of
the share of runs not yet looped at each message index: a run that loops is an
event at its loop onset; a run that ends without looping (message limit, error,
interruption) is censored at its last message.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..vocabulary import WORDS


@dataclass
class RunStats:
    run_id: str
    cell: dict[str, Any]
    status: str
    stop_reason: str | None
    messages: int
    max_messages: int
    prompt_tokens: int
    completion_tokens: int
    conversation_seconds: float  # its messages' generation time, summed
    looped_at: int | None  # onset of the exact loop or of the near loop, whichever is earlier, else None
    loop_kind: str | None  # "loop" (an exact loop) or "near_loop" (a near loop only)
    tokens_in_loop: int  # completion tokens of the repeating part (first repeat onwards)
    tokens_saved: float  # estimated tokens early stopping did not spend (message limit − messages)
    words_by_index: list[int] = field(default_factory=list)
    generated: int = 0  # messages a model wrote (not injected)
    cost: float = 0.0  # USD: the known costs of its generated messages
    cost_unknown: int = 0  # generated messages whose cost is unknown

    @property
    def pairing(self) -> str:
        return self.cell.get("pairing", "")


def run_stats(run_row: dict[str, Any], messages: Sequence[dict[str, Any]], loops: Any) -> RunStats:
    """One run's numbers. `messages` are dicts with idx, completion_tokens, prompt_tokens, latency, words;
    `loops` the run's store.LoopSummary (None: not analysed)."""
    exact = loops.exact if loops else None
    near = loops.near if loops else None
    looped_at, kind, repeat_from = None, None, None
    if exact:
        looped_at, kind, repeat_from = exact.onset, "loop", exact.first_repeat
    if near and (looped_at is None or near.onset < looped_at):
        looped_at, kind = near.onset, ("loop" if exact else "near_loop")
        repeat_from = repeat_from or near.onset
    in_loop = [m for m in messages if repeat_from is not None and m["idx"] >= repeat_from]
    tokens_in_loop = sum(m.get("completion_tokens") or 0 for m in in_loop)
    max_messages = int(run_row.get("max_messages") or len(messages))
    saved = 0.0
    if run_row.get("stop_reason") in ("loop", "near_loop", "convergence") and in_loop:
        per_message = tokens_in_loop / len(in_loop)
        saved = max(0, max_messages - len(messages)) * per_message
    return RunStats(
        run_id=run_row["id"],
        cell=run_row.get("cell") or {},
        status=run_row["status"],
        stop_reason=run_row.get("stop_reason"),
        messages=len(messages),
        max_messages=max_messages,
        prompt_tokens=sum(m.get("prompt_tokens") or 0 for m in messages),
        completion_tokens=sum(m.get("completion_tokens") or 0 for m in messages),
        conversation_seconds=sum(m.get("latency") or 0.0 for m in messages),
        looped_at=looped_at,
        loop_kind=kind,
        tokens_in_loop=tokens_in_loop,
        tokens_saved=saved,
        words_by_index=[m.get("words", 0) for m in sorted(messages, key=lambda m: m["idx"])],
        generated=sum(1 for m in messages if not m.get("injected")),
        cost=float(run_row.get("cost") or 0.0),
        cost_unknown=int(run_row.get("cost_unknown") or 0),
    )


def survival_curve(runs: Sequence[RunStats], horizon: int | None = None) -> list[tuple[int, float]]:
    """Kaplan–Meier: [(message index t, share of runs not yet looped at t)], t = 0..horizon."""
    horizon = horizon or max((r.max_messages for r in runs), default=0)
    s = 1.0
    curve = [(0, 1.0)]
    for t in range(1, horizon + 1):
        at_risk = sum(1 for r in runs if (r.looped_at if r.looped_at is not None else r.messages) >= t)
        events = sum(1 for r in runs if r.looped_at == t)
        if at_risk:
            s *= 1 - events / at_risk
        curve.append((t, s))
    return curve


def quartiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(Q1, median, Q3) by the inclusive method; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        v = float(values[0])
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class GroupStats:
    group: str
    runs: int
    looped: int
    loop_share: float
    onset_quartiles: tuple[float, float, float] | None
    stop_reasons: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    # The sum over the group's runs of their messages' generation time: runs that ran at once count each.
    conversation_seconds: float
    tokens_in_loops: int
    tokens_saved: float
    mean_words_by_index: list[float]
    # Money: the known costs (USD), in all, per conversation and per generated message of known cost
    # (None: no known cost), and how many generated messages have none.
    cost_usd: float = 0.0
    cost_per_conversation: float | None = None
    cost_per_message: float | None = None
    cost_unknown_messages: int = 0


def group_stats(name: str, runs: Sequence[RunStats]) -> GroupStats:
    looped = [r for r in runs if r.looped_at is not None]
    longest = max((len(r.words_by_index) for r in runs), default=0)
    mean_words = []
    for i in range(longest):
        values = [r.words_by_index[i] for r in runs if len(r.words_by_index) > i]
        mean_words.append(sum(values) / len(values))
    return GroupStats(
        group=name,
        runs=len(runs),
        looped=len(looped),
        loop_share=len(looped) / len(runs) if runs else 0.0,
        onset_quartiles=quartiles([r.looped_at for r in looped if r.looped_at is not None]),
        stop_reasons=dict(Counter(r.stop_reason or r.status for r in runs)),
        prompt_tokens=sum(r.prompt_tokens for r in runs),
        completion_tokens=sum(r.completion_tokens for r in runs),
        conversation_seconds=sum(r.conversation_seconds for r in runs),
        tokens_in_loops=sum(r.tokens_in_loop for r in runs),
        tokens_saved=sum(r.tokens_saved for r in runs),
        mean_words_by_index=mean_words,
        **_costs(runs),
    )


def _costs(runs: Sequence[RunStats]) -> dict[str, Any]:
    cost = sum(r.cost for r in runs)
    unknown = sum(r.cost_unknown for r in runs)
    known_messages = sum(r.generated for r in runs) - unknown
    priced = [r for r in runs if r.generated > r.cost_unknown]
    return {
        "cost_usd": cost,
        "cost_per_conversation": cost / len(priced) if priced else None,
        "cost_per_message": cost / known_messages if known_messages > 0 else None,
        "cost_unknown_messages": unknown,
    }


def wall_seconds(spans: Iterable[tuple[str | None, str | None]]) -> float:
    """The experiment's wall time: the time some run of it was going, from the runs' (start, end) times
    (ISO text), overlaps counted once and the gaps between sittings (a batch resumed later) left out."""
    from datetime import datetime

    intervals = sorted(
        (datetime.fromisoformat(a).timestamp(), datetime.fromisoformat(b).timestamp()) for a, b in spans if a and b
    )
    total, start, end = 0.0, None, None
    for a, b in intervals:
        if end is None or a > end:
            if end is not None and start is not None:
                total += end - start
            start, end = a, b
        else:
            end = max(end, b)
    if start is not None and end is not None:
        total += end - start
    return round(total, 3)


def grouped(runs: Iterable[RunStats], setting: str) -> dict[str, list[RunStats]]:
    """Runs by one setting of their cell ("pairing", "opener", "system", "temperature")."""
    groups: dict[str, list[RunStats]] = defaultdict(list)
    for r in runs:
        groups[str(r.cell.get(setting))].append(r)
    return dict(sorted(groups.items()))


def write_experiment_plots(
    by_group: dict[str, list[RunStats]], folder: Path, stem: str, setting: str = "pairing"
) -> dict[str, Path]:
    """The runs split by `setting` (the pairing, or a varied path): `<stem>-survival….png` (runs not yet
    looped vs message index) and `<stem>-lengths….png` (mean words by message index); see plotting.plot_path.
    Returns {plot kind ("survival", "lengths"): its path}."""
    from .plotting import group_label, legend_below, new_figure, plot_path, save

    folder.mkdir(parents=True, exist_ok=True)
    by = "" if setting == "pairing" else f" by {setting}"
    paths = {}
    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    for name, runs in by_group.items():
        curve = survival_curve(runs)
        ax.step([t for t, _ in curve], [s for _, s in curve], where="post", label=group_label(name, len(runs)))
    ax.set_xlabel("message index")
    ax.set_ylabel(f"share of runs in no {WORDS['looped']} yet")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Survival: runs not yet in a {WORDS['looped']}{by}")
    ax.grid(alpha=0.3)
    bottom = legend_below(fig, *ax.get_legend_handles_labels(), title=setting)
    paths["survival"] = save(fig, plot_path(folder, stem, "survival", setting), bottom)

    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    for name, runs in by_group.items():
        words = group_stats(name, runs).mean_words_by_index
        ax.plot(range(1, len(words) + 1), words, marker=".", label=group_label(name, len(runs)))
    ax.set_xlabel("message index")
    ax.set_ylabel("mean words per message")
    ax.set_title(f"Message length by turn{by}")
    ax.grid(alpha=0.3)
    bottom = legend_below(fig, *ax.get_legend_handles_labels(), title=setting)
    paths["lengths"] = save(fig, plot_path(folder, stem, "lengths", setting), bottom)
    return paths
