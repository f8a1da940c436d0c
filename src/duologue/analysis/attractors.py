"""The attractor map of an experiment: where its conversations end up, how soon, and by turn.

Works from each run's stored analysis (its per-message theme labels, its
attractor and end state) and the text of its last messages; no model runs.

- End state of a run: the theme of its final window (themes.end_state), or,
  when no known theme holds there, an unknown end state. Unknown end states are
  clustered by the embeddings of their final windows (average linkage on
  cosine similarity, merging while the groups' mean similarity is at least
  CLUSTER_SIMILARITY) and each cluster is named by its most distinctive words
  (frequent in the cluster, rare in the experiment's other final windows), so
  an attractor nobody described surfaces as "other: word word word" instead of
  hiding in one "unresolved" bucket. A cluster of one run stays "unresolved".
- Time to attractor entry: Kaplan–Meier over runs, an event at the run's
  attractor onset (any theme but "on task"), censored at its last message.
- Share by turn: at message k, the share of runs in each state: the end state
  the run's messages up to k give (the same rule as its end state, on the window
  ending at k), its end state at its last message and after it (it stayed
  there). So the last column of the by-turn view is the end-state view.
- Plots: one figure per plot and per setting the runs are split by (the pairing
  and each varied path), legends below the axes, shares scaled to the data
  (plotting.py).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..verdict import UNRESOLVED, Verdict
from .entry import window_majority

CLUSTER_SIMILARITY = 0.35
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_STOP = frozenset(
    """the and you your for that this with are was have not but what all can our just its it's
i'm i've we're they them their there here from into about would could should will been being more very
than then also some any each which while when where who whom how why yes indeed truly really""".split()
)


@dataclass
class RunEnd:
    run_id: str
    cell: dict[str, Any]
    messages: int
    end_state: str | None  # theme id, or None when no known theme holds at the end
    attractor: str | None  # theme id of the attractor (entered and stayed), None without one
    entry: int | None  # the attractor's onset
    labels: list[str | None] = field(default_factory=list)  # per message, end-state theme ids
    topics: dict[str, float] = field(default_factory=dict)
    final_text: str = ""  # the final window's messages, for clustering unknown end states
    cluster: str | None = None  # "other: …" for a clustered unknown end state
    verdict: Verdict | None = None  # the run's verdict (verdict.py), which end_state and attractor are from
    window: int = 6  # the final window of its end state (AttractorParams.final_window)

    @property
    def pairing(self) -> str:
        return str(self.cell.get("pairing", ""))

    @property
    def shown_end(self) -> str:
        return self.end_state or self.cluster or UNRESOLVED


def run_end(
    run_id: str,
    cell: dict[str, Any],
    end_state: str | None,
    attractor: str | None,
    entry: int | None,
    labels: Sequence[str | None],
    topics: Sequence[str | None],
    final_texts: Sequence[str] = (),
) -> RunEnd:
    """One run's place on the map, from its stored analysis: its end state and attractor, and per
    message its theme and topic labels (`labels`, `topics`, message 1 first)."""
    n = len(labels)
    counts = Counter(t for t in topics if t is not None)
    return RunEnd(
        run_id=run_id,
        cell=cell,
        messages=n,
        end_state=end_state,
        attractor=attractor,
        entry=entry,
        labels=list(labels),
        topics={t: round(c / n, 4) for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))} if n else {},
        final_text="\n".join(final_texts),
    )


def _word_set(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)} - _STOP


def _distinctive_words(
    texts: Sequence[str], others: Sequence[str], k: int = 3, *, outside: Counter[str] | None = None
) -> list[str]:
    """The words the texts share most, against the `others` (`outside`: their word counts, when the
    caller has them already)."""
    inside = Counter(w for t in texts for w in _word_set(t))
    if outside is None:
        outside = Counter(w for t in others for w in _word_set(t))
    n_in, n_out = max(len(texts), 1), max(len(others), 1)
    scored = sorted(inside, key=lambda w: (-(inside[w] / n_in - outside[w] / n_out), -inside[w], w))
    return scored[:k]


def _average_linkage(sims: np.ndarray, similarity: float) -> list[list[int]]:
    """Agglomerative clustering, average linkage: merge the two clusters of highest mean pairwise
    similarity while it is at least `similarity`. Keeps the summed similarities between clusters,
    so each merge costs one pass over the matrix."""
    n = len(sims)
    total = np.array(sims, dtype=np.float64)
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    members: list[list[int]] = [[i] for i in range(n)]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    while alive.sum() > 1:
        mean = total / np.outer(size, size)
        mean[~(upper & alive[:, None] & alive[None, :])] = -np.inf
        i, j = divmod(int(np.argmax(mean)), n)
        if mean[i, j] < similarity:
            break
        total[i, :] += total[j, :]
        total[:, i] += total[:, j]
        size[i] += size[j]
        alive[j] = False
        members[i] += members[j]
        members[j] = []
    return [m for m in members if m]


def cluster_unknown(runs: Sequence[RunEnd], embedder=None, similarity: float = CLUSTER_SIMILARITY) -> None:
    """Name the unknown end states: sets `cluster` on runs whose end state is None (see the docstring)."""
    unknown = [r for r in runs if r.end_state is None and r.final_text.strip()]
    if len(unknown) < 2:
        return
    from .embeddings import get_embedder

    embedder = embedder or get_embedder()
    vectors = embedder.embed([r.final_text for r in unknown]).astype(np.float64)
    clusters = _average_linkage(vectors @ vectors.T, similarity)
    others_all = [r.final_text for r in runs]
    outside = Counter(w for t in others_all for w in _word_set(t))  # once, not once per cluster
    for members in clusters:
        if len(members) < 2:
            continue
        texts = [unknown[i].final_text for i in members]
        words = _distinctive_words(texts, others_all, outside=outside)
        name = "other: " + " ".join(words) if texts else UNRESOLVED
        for i in members:
            unknown[i].cluster = name


def entry_survival(runs: Sequence[RunEnd], horizon: int | None = None) -> list[tuple[int, float]]:
    """Kaplan–Meier: [(message t, share of runs not yet in an attractor at t)], t = 0..horizon."""
    horizon = horizon or max((r.messages for r in runs), default=0)
    s = 1.0
    curve = [(0, 1.0)]
    for t in range(1, horizon + 1):
        at_risk = sum(
            1
            for r in runs
            if (r.entry if r.entry is not None else r.messages + 1) >= t
            and r.messages >= t
            or (r.entry is not None and r.entry >= t)
        )
        events = sum(1 for r in runs if r.entry == t)
        if at_risk:
            s *= 1 - events / at_risk
        curve.append((t, round(s, 6)))
    return curve


def states_by_turn(r: RunEnd, family_of: Mapping[str, str] | None = None) -> list[str]:
    """Where a run was at each of its messages: at message k < its last, the end state its messages up to k
    give (the rule of its end state: the family most of the final window's messages share, else
    unresolved); at its last message, its end state (shown_end). So the by-turn view ends where the
    end-state view is, by construction."""
    family_of = family_of or {}
    families = [family_of.get(label, label) if label else None for label in r.labels]
    states = [window_majority(families[max(0, k - r.window) : k]) or UNRESOLVED for k in range(1, r.messages)]
    return [*states, r.shown_end] if r.messages else []


def share_by_turn(
    runs: Sequence[RunEnd], horizon: int | None = None, family_of: Mapping[str, str] | None = None
) -> dict[str, list[float]]:
    """{state: [share of runs at message 1..horizon]} (states_by_turn; a run past its end stays in its end
    state). At the last message of the longest run the shares are the end states' shares."""
    horizon = horizon or max((r.messages for r in runs), default=0)
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * horizon)
    n = len(runs) or 1
    for r in runs:
        states = states_by_turn(r, family_of)
        for k in range(horizon):
            out[states[k] if k < len(states) else r.shown_end][k] += 1 / n
    return {k: [round(v, 4) for v in vals] for k, vals in sorted(out.items())}


@dataclass
class AttractorGroup:
    group: str
    runs: int
    end_states: dict[str, float]  # shown end state -> share of runs, largest first
    entered: int  # runs that entered an attractor
    median_entry: dict[str, float]  # attractor theme -> median onset
    topics: dict[str, float]  # topic -> mean share of messages


def attractor_group(name: str, runs: Sequence[RunEnd]) -> AttractorGroup:
    n = len(runs) or 1
    ends = Counter(r.shown_end for r in runs)
    entries: dict[str, list[int]] = defaultdict(list)
    for r in runs:
        if r.attractor and r.entry is not None:
            entries[r.attractor].append(r.entry)
    topics: Counter[str] = Counter()
    for r in runs:
        topics.update(r.topics)
    return AttractorGroup(
        group=name,
        runs=len(runs),
        end_states={k: round(v / n, 4) for k, v in sorted(ends.items(), key=lambda kv: (-kv[1], kv[0]))},
        entered=sum(1 for r in runs if r.attractor),
        median_entry={k: float(statistics.median(v)) for k, v in sorted(entries.items())},
        topics={k: round(v / n, 4) for k, v in sorted(topics.items(), key=lambda kv: (-kv[1], kv[0]))},
    )


def grouped_ends(runs: Iterable[RunEnd], setting: str) -> dict[str, list[RunEnd]]:
    groups: dict[str, list[RunEnd]] = defaultdict(list)
    for r in runs:
        groups[str(r.cell.get(setting))].append(r)
    return dict(sorted(groups.items()))


def write_attractor_plots(
    by_group: dict[str, list[RunEnd]],
    labels: dict[str, str],
    folder: Path,
    stem: str,
    setting: str = "pairing",
    family_of: Mapping[str, str] | None = None,
    labeller: str = "built-in",
) -> dict[str, Path]:
    """The runs split by `setting` (the pairing, or a varied path; see plotting.plot_path):
    `<stem>-attractors….png` (stacked share of runs in each state by turn, a panel per group),
    `<stem>-attractor-entry….png` (Kaplan–Meier: runs not yet in an attractor) and
    `<stem>-end-states….png` (topics and end states per group, as bars). The by-turn panels end, at the
    longest run's last message, on the end-state bars' shares (states_by_turn). Each names the `labeller`
    whose message labels it shows (the built-in analysis, or a judge's model string). Returns {plot kind
    ("attractors", "attractor-entry", "end-states"): its path}."""
    from matplotlib.ticker import MaxNLocator

    from .plotting import group_label, legend_below, new_figure, plot_path, save

    folder.mkdir(parents=True, exist_ok=True)
    by = "" if setting == "pairing" else f" by {setting}"
    paths = {}
    panels = max(len(by_group), 1)
    fig = new_figure(9, 2.4 * panels + 0.9)
    shares_of = {name: share_by_turn(runs, family_of=family_of) for name, runs in by_group.items()}
    all_labels = sorted({k for shares in shares_of.values() for k in shares}, key=lambda k: (k == UNRESOLVED, k))
    palette = iter(_palette(len(all_labels)))
    colours = {k: ((0.75, 0.75, 0.75, 1.0) if k == UNRESOLVED else next(palette)) for k in all_labels}
    for i, (name, runs) in enumerate(by_group.items(), start=1):
        ax = fig.add_subplot(panels, 1, i)
        shares = shares_of[name]
        bottom = None
        for k in all_labels:
            if k not in shares:
                continue
            ys = np.array(shares[k])
            # One area per label, stepped like bars of width 1 (bars would be a patch per message: a corpus
            # of long runs made tens of thousands of them, and most of the report's time).
            edges = np.arange(0.5, len(ys) + 1)
            low = np.zeros(len(ys)) if bottom is None else bottom
            ax.stairs(low + ys, edges, baseline=low, fill=True, color=colours[k], label=labels.get(k, k), linewidth=0)
            bottom = low + ys
        ax.set_xlim(0.5, max(2, max((r.messages for r in runs), default=2)) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # messages are whole
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of runs")
        ax.set_title(group_label(name, len(runs)), fontsize="medium", loc="left")
        if i == panels:
            ax.set_xlabel("message")
    handles, names = [], []
    for ax in fig.axes:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.suptitle(
        f"Where conversations are, by turn{by} (the last message: the run's end state; labels: {labeller})",
        fontsize="medium",
    )
    bottom = legend_below(fig, handles, names)
    paths["attractors"] = save(fig, plot_path(folder, stem, "attractors", setting), bottom)

    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    for name, runs in by_group.items():
        curve = entry_survival(runs)
        ax.step([t for t, _ in curve], [s for _, s in curve], where="post", label=group_label(name, len(runs)))
    ax.set_xlabel("message")
    ax.set_ylabel("share of runs not yet in an attractor")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Time to attractor entry (Kaplan–Meier; labels: {labeller}){by}")
    ax.grid(alpha=0.3)
    bottom = legend_below(fig, *ax.get_legend_handles_labels(), title=setting)
    paths["attractor-entry"] = save(fig, plot_path(folder, stem, "attractor-entry", setting), bottom)

    paths["end-states"] = _shares_plot(
        by_group, labels, plot_path(folder, stem, "end-states", setting), setting, labeller
    )
    return paths


def _shares_plot(
    by_group: dict[str, list[RunEnd]], labels: dict[str, str], path: Path, setting: str, labeller: str
) -> Path:
    """Two panels of horizontal bars per group, as the model cards show them: the topics (mean share of
    messages) and the end states (share of runs); each axis scaled to its data, the legend below."""
    from .plotting import group_label, legend_below, new_figure, save, share_limit

    groups = {name: attractor_group(name, runs) for name, runs in by_group.items()}
    topics = sorted({t for g in groups.values() for t in g.topics})
    ends = sorted({e for g in groups.values() for e in g.end_states}, key=lambda e: (e == UNRESOLVED, e))
    fig = new_figure(10, 0.45 * max(len(topics), len(ends), 3) * max(len(groups), 1) + 1.2)
    width = 0.8 / max(len(groups), 1)
    for col, (title, keys, values) in enumerate(
        (
            ("Topics (share of messages)", topics, lambda g, k: g.topics.get(k, 0.0)),
            (f"End states (share of runs; labels: {labeller})", ends, lambda g, k: g.end_states.get(k, 0.0)),
        ),
        start=1,
    ):
        ax = fig.add_subplot(1, 2, col)
        ys = np.arange(len(keys))
        for i, (name, g) in enumerate(groups.items()):
            ax.barh(ys + i * width, [values(g, k) for k in keys], height=width, label=group_label(name, g.runs))
        ax.set_yticks(ys + width * (len(groups) - 1) / 2, [labels.get(k, k) for k in keys])
        ax.invert_yaxis()
        ax.set_xlim(0, share_limit(values(g, k) for g in groups.values() for k in keys))
        ax.set_title(title, fontsize="medium")
        ax.grid(axis="x", alpha=0.3)
        if not keys:
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    bottom = legend_below(fig, *fig.axes[-1].get_legend_handles_labels(), title=setting) if groups else 0.0
    return save(fig, path, bottom)


def _palette(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]
