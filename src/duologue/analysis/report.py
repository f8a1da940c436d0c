"""One transcript's analysis: loops, metrics, a summary for people, and plots.

Plots are PNG files of fixed pixel size, so reports and the viewer can lay
them out without measuring: the three series plots (words, novelty, lag
similarity) are SERIES_SIZE_PX = 800 × 400 pixels, the similarity heatmap is
HEATMAP_SIZE_PX = 700 × 600 pixels (width × height, at PLOT_DPI = 100).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..verdict import Verdict, end_state_with_loop, verdict_of
from .convergence import Convergence, ConvergenceParams
from .entry import Attractor
from .loops import ExactLoop, LoopParams, NearLoop, detect_exact_loop, detect_near_loop
from .metrics import DEFAULT_LEXICON, MessageMetrics, compute_metrics
from .semantic import SemanticResult, semantic_analysis
from .similarity import gram_sets, heatmap_matrix, overlap_matrix
from .themes import AttractorParams, MessageThemes

PLOT_DPI = 100
# zlib level 1: a plot of flat colours compresses nearly as well, and its PNG is written several times faster
PNG_OPTIONS = {"compress_level": 1}
SERIES_FIGSIZE = (8.0, 4.0)  # inches
HEATMAP_FIGSIZE = (7.0, 6.0)  # inches; wider than tall to leave room for the colour bar
SERIES_SIZE_PX = (800, 400)  # width, height
HEATMAP_SIZE_PX = (700, 600)


@dataclass
class Analysis:
    """What `analyze` finds in one transcript.

    The message × message similarity matrix is not kept: it grows with the
    square of the run and only the heatmap needs it (see `similarity_matrix`).
    """

    participants: list[str]
    messages: int
    words_per_speaker: dict[str, int]
    exact_loop: ExactLoop | None
    near_loop: NearLoop | None
    loop_share: float  # share of the messages inside the exact loop, 0 without one
    top_lexicon: list[tuple[str, int]]  # most frequent lexicon terms, most frequent first
    metrics: list[MessageMetrics]
    # Semantic findings (embeddings): see convergence.py and themes.py.
    convergence: Convergence | None = None
    attractor: Attractor | None = None
    end_state: str | None = None  # theme id of the final window, None: unresolved
    themes: list[MessageThemes] | None = None
    topics: dict[str, float] | None = None  # share of messages per topic, largest first
    theme_labels: dict[str, str] | None = None  # theme id -> label, for people
    topic_from_start: str | None = None  # the family the conversation began in (its topic, not a drift)


def analyze(
    speakers: Sequence[str],
    contents: Sequence[str],
    participants: Sequence[str] | None = None,
    params: LoopParams = LoopParams(),
    lexicon: Iterable[str] = DEFAULT_LEXICON,
    end_marker: str | None = "[END]",
    top_terms: int = 10,
    *,
    convergence: ConvergenceParams = ConvergenceParams(),
    attractor: AttractorParams = AttractorParams(),
    vectors: np.ndarray | None = None,
    semantic: bool = True,
) -> Analysis:
    """Analyse a transcript given as parallel lists of speakers and contents.

    `participants` defaults to the speakers in order of first appearance; their
    number decides whether a loop's period means mirroring or self-repetition.
    """
    if len(speakers) != len(contents):
        raise ValueError(f"{len(speakers)} speakers for {len(contents)} messages")
    if participants is None:
        participants = list(dict.fromkeys(speakers))
    participants = list(participants)

    exact = detect_exact_loop(contents, max(len(participants), 1), params, end_marker)
    grams = gram_sets(contents, params.ngram, end_marker)  # once, for the near loops and the metrics
    near = detect_near_loop(contents, params, end_marker, grams=grams)
    metrics = compute_metrics(
        list(zip(speakers, contents, strict=True)), lexicon, end_marker, char_ngram=params.ngram, grams=grams
    )

    words_per_speaker = dict.fromkeys(participants, 0)
    lexicon_totals: Counter[str] = Counter()
    for m in metrics:
        words_per_speaker[m.speaker] = words_per_speaker.get(m.speaker, 0) + m.words
        lexicon_totals.update(m.lexicon_hits)
    # Most frequent first; ties in alphabetical order so the output is stable.
    top = sorted(lexicon_totals.items(), key=lambda kv: (-kv[1], kv[0]))[:top_terms]

    sem: SemanticResult | None = None
    if semantic:
        sem = semantic_analysis(speakers, contents, convergence, attractor, end_marker, vectors)
    return Analysis(
        participants=participants,
        messages=len(contents),
        words_per_speaker=words_per_speaker,
        exact_loop=exact,
        near_loop=near,
        loop_share=exact.covered_share if exact else 0.0,
        top_lexicon=top,
        metrics=metrics,
        convergence=sem.convergence if sem else None,
        attractor=sem.attractor if sem else None,
        # A run that ends in an exact loop ends in the verbatim loop, whatever its final window's themes.
        end_state=end_state_with_loop(sem.end_state, bool(exact and exact.absorbing), sem.verbatim) if sem else None,
        themes=sem.trajectory if sem else None,
        topics=sem.topics if sem else None,
        theme_labels=sem.labels if sem else None,
        topic_from_start=sem.topic_from_start if sem else None,
    )


def exact_loop_to_dict(loop: ExactLoop) -> dict[str, Any]:
    return {
        "period": loop.period,
        "onset_message": loop.onset,
        "first_repeat_message": loop.first_repeat,
        "last_message": loop.last,
        "cycles": loop.cycles,
        "covered_share": loop.covered_share,
        "absorbing": loop.absorbing,
        "kind": loop.kind,
        "detail": loop.detail(),
    }


def near_loop_to_dict(loop: NearLoop) -> dict[str, Any]:
    return {
        "onset_message": loop.onset,
        "covered_share": loop.covered_share,
        "dominant_lag": loop.dominant_lag,
        "duplicate_share": loop.duplicate_share,
        # Message numbers rather than one boolean per message: shorter, and readable.
        "near_duplicate_messages": [i for i, dup in enumerate(loop.near_duplicates, start=1) if dup],
        "detail": loop.detail(),
    }


def convergence_to_dict(c: Convergence) -> dict[str, Any]:
    return {
        "onset_message": c.onset,
        "window_end_message": c.window_end,
        "strength": c.strength,
        "covered_share": c.covered_share,
        "detail": c.detail(),
    }


def attractor_to_dict(at: Attractor) -> dict[str, Any]:
    return {
        "theme": at.theme,
        "label": at.label,
        "onset_message": at.onset,
        "share": at.share,
        "strength": at.strength,
        "detail": at.detail(),
    }


_METRIC_FIELDS = tuple(f.name for f in fields(MessageMetrics))


def metrics_to_dict(m: MessageMetrics) -> dict[str, Any]:
    """`dataclasses.asdict(m)`, without its generic deep copy (ten times faster, and a long run has
    a row per message)."""
    out = {name: getattr(m, name) for name in _METRIC_FIELDS}
    out["lexicon_hits"] = dict(m.lexicon_hits)
    return out


def analysis_verdict(a: Analysis) -> Verdict:
    """The analysis's verdict (loop, attractor, end state), as the store's columns give it (verdict.py)."""
    at = a.attractor
    loops = SimpleNamespace(exact=a.exact_loop, near=a.near_loop)
    semantic = SimpleNamespace(
        end_state=a.end_state, attractor=at.theme if at else None, attractor_onset=at and at.onset
    )
    return verdict_of(loops, semantic)


# The version of the rules an analysis is made by (loops, message labels, attractor entry), kept with a stored
# analysis as "rules". It is raised when a change can give a run another verdict: `show` then says that a run's
# stored analysis is older than `analyze` would make it now. 2: an attractor of phrase themes needs
# `attractor_messages` of its messages (2026-12-04); analyses stored before say no version (1).
RULES = 2


def analysis_to_dict(a: Analysis) -> dict[str, Any]:
    """A JSON-safe dict (keys of "exact_loop" match the examples' .expected.json)."""
    return {
        "rules": RULES,
        "verdict": analysis_verdict(a).as_dict(),
        "convergence": convergence_to_dict(a.convergence) if a.convergence else None,
        "attractor": attractor_to_dict(a.attractor) if a.attractor else None,
        "end_state": a.end_state,
        "topic_from_start": a.topic_from_start,
        "topics": dict(a.topics) if a.topics is not None else None,
        "themes": [{"message": m.index, "theme": m.label, "topic": m.topic, "scores": m.scores} for m in a.themes]
        if a.themes is not None
        else None,
        "participants": list(a.participants),
        "messages": a.messages,
        "words_per_speaker": dict(a.words_per_speaker),
        "exact_loop": exact_loop_to_dict(a.exact_loop) if a.exact_loop else None,
        "near_loop": near_loop_to_dict(a.near_loop) if a.near_loop else None,
        "loop_share": a.loop_share,
        "top_lexicon": [{"term": term, "count": count} for term, count in a.top_lexicon],
        "metrics": [metrics_to_dict(m) for m in a.metrics],
    }


def format_summary(a: Analysis, strip_width: int | None = 60) -> str:
    """A few plain-text lines for a terminal or a log; the theme strip's last `strip_width` messages
    (None: all of them)."""
    words = ", ".join(f"{name} {n}" for name, n in a.words_per_speaker.items()) or "none"
    if a.exact_loop:
        loop = a.exact_loop
        exact = f"{loop.detail()} ({loop.kind}{', absorbing' if loop.absorbing else ''})"
    else:
        exact = "none"
    if a.near_loop:
        near = a.near_loop
        near_text = (
            f"since message {near.onset}, {near.duplicate_share:.0%} near duplicates since, "
            f"mostly at lag {near.dominant_lag}"
        )
    else:
        near_text = "none"
    lexicon = ", ".join(f"{term} {count}" for term, count in a.top_lexicon) or "none"
    labels = a.theme_labels or {}
    conv = a.convergence.detail().removeprefix("convergence ") if a.convergence else "none"
    attr = "none"
    if a.attractor:
        at = a.attractor
        attr = f"{at.label} since message {at.onset} ({at.share:.0%} of messages since, score {at.strength:.2f})"
    if a.topic_from_start and not a.attractor:
        attr = f"none (the conversation began in {labels.get(a.topic_from_start, a.topic_from_start)}: its topic)"
    end = labels.get(a.end_state, a.end_state) if a.end_state else "unresolved"
    topics = ", ".join(f"{labels.get(t, t)} {share:.0%}" for t, share in (a.topics or {}).items()) or "none"
    lines = [
        f"participants: {' ↔ '.join(a.participants)}",
        f"messages: {a.messages}",
        f"words: {words}",
        f"exact loop: {exact}",
        f"near loop: {near_text}",
        f"share in loop: {a.loop_share:.0%}",
    ]
    if a.themes is not None:
        lines += [
            f"convergence: {conv}",
            f"attractor: {attr}",
            f"end state: {end}",
            f"theme strip: {theme_strip(a, strip_width)}",
            f"topics: {topics}",
        ]
    lines.append(f"lexicon: {lexicon}")
    return "\n".join(lines)


STRIP_MARKS = {
    None: "·",
    "on_task": "-",
    "verbatim": "=",
    "silence": "_",
    "emoji": "e",
    "role_collapse": "r",
    "gratitude": "G",
    "unity": "U",
    "stillness": "S",
    "wordless": "W",
    "bliss": "B",
    "farewell": "F",
    "praise": "P",
    "meta_loop": "M",
}


def theme_strip(a: Analysis, width: int | None = 60) -> str:
    """One character per message (the last `width`; None: every one): each message's end-state theme."""
    if not a.themes:
        return "(no messages)"
    marks = [STRIP_MARKS.get(m.label, (m.label or "?")[0].upper()) for m in a.themes]
    width = width or len(marks)
    cut = len(marks) > width
    strip = "".join(marks[-width:])
    used = dict.fromkeys(m.label for m in a.themes[-width:])
    labels = a.theme_labels or {}
    legend = ", ".join(f"{STRIP_MARKS.get(k, (k or '?')[0].upper())} {labels.get(k, k) if k else 'none'}" for k in used)
    return f"{'…' if cut else ''}{strip}  ({legend})"


def similarity_matrix(contents: Sequence[str], ngram: int = 5, end_marker: str | None = "[END]") -> np.ndarray:
    """Message × message overlap of character n-gram sets (symmetric, n × n; see similarity.py)."""
    return overlap_matrix(gram_sets(contents, ngram, end_marker))


def write_plots(a: Analysis, contents: Sequence[str], folder: Path, stem: str) -> list[Path]:
    """Write the four PNG plots of an analysis into `folder`; return their paths.

    `<stem>-words.png`, `<stem>-novelty.png`, `<stem>-lag-similarity.png`
    (SERIES_SIZE_PX each) and `<stem>-similarity.png` (HEATMAP_SIZE_PX), each
    with the loop onset marked when there is one. `contents` must be the
    messages `a` was computed from; they are needed only for the heatmap.
    """
    import matplotlib

    # No display and no pyplot state: plots are written from worker threads too.
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    indices = np.array([m.index for m in a.metrics], dtype=float)

    def new_figure(size: tuple[float, float], left: float = 0.08) -> Figure:
        # Fixed margins for the fixed pixel sizes: a constrained layout costs a third of the drawing.
        fig = Figure(figsize=size, dpi=PLOT_DPI)
        fig.subplots_adjust(left=left, right=0.98, bottom=0.12 if size == SERIES_FIGSIZE else 0.08, top=0.92)
        FigureCanvasAgg(fig)
        return fig

    def mark_onsets(ax: Any, offset: float = 0.0) -> None:
        if a.exact_loop:
            ax.axvline(
                a.exact_loop.onset + offset,
                color="crimson",
                linestyle="--",
                label=f"loop onset (period {a.exact_loop.period})",
            )
        if a.near_loop and (not a.exact_loop or a.near_loop.onset != a.exact_loop.onset):
            ax.axvline(a.near_loop.onset + offset, color="darkorange", linestyle=":", label="near-loop onset")

    def series(values: Iterable[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    def finish(fig: Figure, ax: Any, name: str, title: str, ylabel: str) -> Path:
        ax.set_title(title)
        ax.set_xlabel("message")
        ax.set_ylabel(ylabel)
        if not a.metrics:
            ax.text(0.5, 0.5, "no messages", ha="center", va="center", transform=ax.transAxes)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
        path = folder / f"{stem}-{name}.png"
        fig.savefig(path, dpi=PLOT_DPI, pil_kwargs=PNG_OPTIONS)
        return path

    paths = []

    fig = new_figure(SERIES_FIGSIZE)
    ax = fig.add_subplot()
    for speaker in dict.fromkeys([*a.participants, *(m.speaker for m in a.metrics)]):
        own = [m for m in a.metrics if m.speaker == speaker]
        if own:
            ax.plot([m.index for m in own], [m.words for m in own], marker=".", label=speaker)
    mark_onsets(ax)
    paths.append(finish(fig, ax, "words", "Message length per speaker", "words"))

    fig = new_figure(HEATMAP_FIGSIZE, left=0.1)
    ax = fig.add_subplot()
    # A long run keeps every step-th message (at most HEATMAP_CELLS a side: more than the pixels).
    matrix, step = heatmap_matrix(contents, ngram=5)
    n = len(contents)
    if n:
        image = ax.imshow(
            matrix,
            origin="lower",
            extent=(0.5, step * len(matrix) + 0.5, 0.5, step * len(matrix) + 0.5),
            vmin=0.0,
            vmax=1.0,
            cmap="viridis",
            interpolation="nearest",
        )
        fig.colorbar(image, ax=ax, label="char 5-gram overlap")
    # Cells are centred on message numbers, so the onset is the edge before its cell.
    mark_onsets(ax, offset=-0.5)
    if a.exact_loop:
        ax.axhline(a.exact_loop.onset - 0.5, color="crimson", linestyle="--")
    ax.set_ylabel("message")
    if step > 1:  # the last cell may reach past the last message
        ax.set_xlim(0.5, n + 0.5)
        ax.set_ylim(0.5, n + 0.5)
    title = "Message × message similarity" + (f" (one message in {step})" if step > 1 else "")
    paths.append(finish(fig, ax, "similarity", title, "message"))

    fig = new_figure(SERIES_FIGSIZE)
    ax = fig.add_subplot()
    ax.plot(indices, series(m.novelty for m in a.metrics), marker=".", label="novelty")
    ax.set_ylim(-0.05, 1.05)
    mark_onsets(ax)
    paths.append(finish(fig, ax, "novelty", "Novelty (share of unseen word 3-grams)", "novelty"))

    fig = new_figure(SERIES_FIGSIZE)
    ax = fig.add_subplot()
    ax.plot(indices, series(m.lag1_similarity for m in a.metrics), marker=".", label="lag 1")
    ax.plot(indices, series(m.lag2_similarity for m in a.metrics), marker=".", label="lag 2")
    ax.set_ylim(-0.05, 1.05)
    mark_onsets(ax)
    paths.append(finish(fig, ax, "lag-similarity", "Similarity to the previous messages", "similarity"))

    if a.themes is not None:
        paths.append(_theme_strip_plot(a, new_figure, folder, stem))
    return paths


def _theme_strip_plot(a: Analysis, new_figure: Any, folder: Path, stem: str) -> Path:
    """`<stem>-themes.png` (SERIES_SIZE_PX): a cell per message coloured by its end-state theme, a row
    of topics under it, the attractor's entry and the convergence onset marked."""
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    labels = a.theme_labels or {}
    themes = a.themes or []
    fig = new_figure(SERIES_FIGSIZE, left=0.17)  # room for "end-state theme"
    ax = fig.add_subplot()
    keys = list(dict.fromkeys([*(m.label for m in themes), *(m.topic for m in themes)]))
    cmap = matplotlib.colormaps["tab20"]
    colour = {k: ((0.92, 0.92, 0.92, 1.0) if k is None else cmap(i % 20)) for i, k in enumerate(keys)}
    n = len(themes)
    if n:
        # Two rows of cells, one per message (cell i spans i ± 0.5): one image each, not 2n patches.
        cmap_rows = ListedColormap([colour[k] for k in keys])
        code = {k: i for i, k in enumerate(keys)}
        for y, row in ((1.0, [code[m.label] for m in themes]), (0.0, [code[m.topic] for m in themes])):
            ax.imshow(
                np.array([row]),
                cmap=cmap_rows,
                vmin=-0.5,
                vmax=len(keys) - 0.5,
                extent=(themes[0].index - 0.5, themes[-1].index + 0.5, y, y + 0.9),
                aspect="auto",
                interpolation="nearest",
                origin="lower",
            )
    ax.set_xlim(0.5, max(n, 1) + 0.5)
    ax.set_ylim(-0.1, 2.6)
    ax.set_yticks([0.45, 1.45], ["topic", "end-state theme"])
    if a.attractor:
        ax.axvline(
            a.attractor.onset - 0.5,
            color="crimson",
            linestyle="--",
            label=f"entered {a.attractor.label} (message {a.attractor.onset})",
        )
    if a.convergence:
        ax.axvline(
            a.convergence.onset - 0.5,
            color="darkorange",
            linestyle=":",
            label=f"convergence (message {a.convergence.onset})",
        )
    handles = [Patch(color=colour[k], label=labels.get(k, k) if k else "none") for k in keys]
    lines, names = ax.get_legend_handles_labels()
    ax.legend(
        handles + lines,
        [h.get_label() for h in handles] + names,
        loc="upper center",
        ncol=4,
        fontsize="x-small",
        frameon=False,
    )
    ax.set_title("Themes along the conversation")
    ax.set_xlabel("message")
    path = folder / f"{stem}-themes.png"
    fig.savefig(path, dpi=PLOT_DPI, pil_kwargs=PNG_OPTIONS)
    return path
