"""The semantic side of an analysis: embeddings, convergence, themes and the attractor.

`semantic_analysis` runs on a whole transcript; `SemanticWatcher` takes one
message at a time during a live run. Both embed each message alone (its
vector depends on it only), label it with `ThemeTracker` (causal: only earlier
messages count), and apply the convergence and attractor rules, so what the
watcher reports after k messages is what `semantic_analysis` finds in those k.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .convergence import Convergence, ConvergenceEvent, ConvergenceParams, ConvergenceWatcher, detect_convergence
from .embeddings import Embedder, get_embedder
from .entry import Attractor, AttractorEvent, AttractorWatcher, detect_attractor, end_state, topic_from_start
from .themes import AttractorParams, MessageThemes, ThemeScorer, ThemeSet, ThemeTracker, load_themes

_SCORERS: dict[tuple[str, str, AttractorParams], ThemeScorer] = {}


def scorer_for(
    params: AttractorParams, embedder: Embedder | None = None, themes: ThemeSet | None = None
) -> ThemeScorer:
    """A ThemeScorer for these settings; the phrase vectors are computed once per process."""
    embedder = embedder or get_embedder()
    themes = themes or load_themes(params.themes)
    key = (embedder.name, themes.source, params)
    scorer = _SCORERS.get(key)
    if scorer is None or scorer.themes != themes:
        scorer = _SCORERS[key] = ThemeScorer(themes, embedder, params)
    return scorer


def embed_messages(contents: Sequence[str], embedder: Embedder | None = None) -> np.ndarray:
    embedder = embedder or get_embedder()
    return embedder.embed(list(contents)) if contents else np.zeros((0, embedder.dim), dtype=np.float32)


@dataclass
class SemanticResult:
    vectors: np.ndarray
    convergence: Convergence | None
    attractor: Attractor | None
    end_state: str | None
    trajectory: list[MessageThemes]
    topics: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)  # theme (and family) id -> label
    topic_from_start: str | None = None  # the family the conversation began in and stayed in
    verbatim: str = "verbatim"  # the id of the theme set's verbatim-loop rule theme


def topic_shares(trajectory: Sequence[MessageThemes]) -> dict[str, float]:
    counts = Counter(m.topic for m in trajectory if m.topic is not None)
    n = len(trajectory) or 1
    return {t: round(c / n, 4) for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def semantic_analysis(
    speakers: Sequence[str],
    contents: Sequence[str],
    convergence: ConvergenceParams = ConvergenceParams(),
    attractor: AttractorParams = AttractorParams(),
    end_marker: str | None = "[END]",
    vectors: np.ndarray | None = None,
    embedder: Embedder | None = None,
) -> SemanticResult:
    scorer = scorer_for(attractor, embedder)
    if vectors is None:
        vectors = embed_messages(contents, embedder)
    tracker = ThemeTracker(scorer, end_marker)
    trajectory = [tracker.observe(s, c, v) for s, c, v in zip(speakers, contents, vectors, strict=True)]
    return SemanticResult(
        vectors=vectors,
        convergence=detect_convergence(vectors, convergence),
        attractor=detect_attractor(trajectory, scorer.themes, attractor),
        end_state=end_state(trajectory, attractor, scorer.themes),
        trajectory=trajectory,
        topics=topic_shares(trajectory),
        labels=theme_labels(scorer.themes),
        topic_from_start=topic_from_start(trajectory, scorer.themes, attractor),
        verbatim=next((t.id for t in scorer.themes.themes if t.rule == "verbatim"), "verbatim"),
    )


def theme_labels(themes: ThemeSet) -> dict[str, str]:
    """Theme id -> label, and family id -> label."""
    return {**{t.id: t.label for t in themes.themes}, **dict(themes.families)}


class SemanticWatcher:
    """The semantic detectors fed one message at a time (state bounded by their windows)."""

    def __init__(
        self,
        convergence: ConvergenceParams = ConvergenceParams(),
        attractor: AttractorParams = AttractorParams(),
        end_marker: str | None = "[END]",
        embedder: Embedder | None = None,
    ) -> None:
        self.embedder = embedder or get_embedder()
        self.scorer = scorer_for(attractor, self.embedder)
        self.tracker = ThemeTracker(self.scorer, end_marker)
        self.convergence = ConvergenceWatcher(convergence)
        self.attractor = AttractorWatcher(self.scorer.themes, attractor)

    def observe(
        self, speaker: str, content: str, vector: np.ndarray | None = None
    ) -> list[ConvergenceEvent | AttractorEvent]:
        if vector is None:
            vector = self.embedder.embed([content])[0]
        mt = self.tracker.observe(speaker, content, vector)
        events: list[ConvergenceEvent | AttractorEvent] = []
        events += self.convergence.observe(vector)
        events += self.attractor.observe(mt)
        return events
