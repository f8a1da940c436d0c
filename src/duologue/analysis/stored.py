"""The analysis of a run of the store: computed with the run's own thresholds, its embeddings computed once
(those a live watcher computed, else those stored, else now), and kept with the run."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..records import Run
from ..store import DEFAULT_DB, Store


def analyze_run(run: Run, spec_detection: dict | None = None, vectors=None, themes: str | Path | None = None):
    """The analysis of a run's messages (loops, near loops, convergence, themes, metrics) with the
    run's own thresholds. `vectors`: the messages' embeddings when already known; `themes`: a theme
    file to use instead of the run's own (or the built-in set)."""
    from . import analyze
    from .params import detection_params

    detection = spec_detection if spec_detection is not None else run.spec.get("detection") or {}
    loop, convergence, attractor = detection_params(detection)
    if themes is not None:
        attractor = dataclasses.replace(attractor, themes=str(themes))
    return analyze(
        [m.speaker for m in run.messages],
        [m.content for m in run.messages],
        participants=run.participants,
        params=loop,
        end_marker=run.spec.get("end_marker", "[END]") or None,
        convergence=convergence,
        attractor=attractor,
        vectors=vectors,
    )


def run_vectors(store: Store, run: Run, watchers: Iterable[Any] = ()):
    """The embeddings of a run's messages, computed once: those a live watcher computed (one with a
    `vectors` mapping by message index, as detectors.semantic.SemanticRule has), else those stored with
    the messages, else computed now. Returns (vectors, embedder name)."""
    import numpy as np

    from .embeddings import get_embedder
    from .semantic import embed_messages

    embedder = get_embedder()
    indices = [m.index for m in run.messages]
    for w in watchers:
        live = getattr(w, "vectors", None)
        if isinstance(live, dict) and indices and all(i in live for i in indices):
            return np.stack([live[i] for i in indices]), embedder.name
    stored = store.load_vectors(run.id, embedder.name)
    if indices and all(i in stored for i in indices):
        return np.stack([stored[i] for i in indices]), embedder.name
    return embed_messages([m.content for m in run.messages], embedder), embedder.name


def store_analysis(store: Store, run: Run, watchers: Iterable[Any] = ()) -> None:
    """Analyse a run that has just ended (reusing its live watchers' embeddings) and keep the analysis."""
    vectors, embedder = run_vectors(store, run, watchers)
    store.save_analysis(run.id, analyze_run(run, vectors=vectors), vectors=vectors, embedder=embedder)


def analyze_stored_run(run: Run, *, db: str | Path = DEFAULT_DB, themes: str | Path | None = None):
    """Analyse a run of the store with its stored embeddings (computed and kept if missing) and keep
    the analysis with it; return the analysis."""
    with Store(db, create=False) as store:
        vectors, embedder = run_vectors(store, run)
        analysis = analyze_run(run, vectors=vectors, themes=themes)
        store.save_analysis(run.id, analysis, vectors=vectors, embedder=embedder)
    return analysis
