"""Semantic convergence: the conversation's recent messages stop moving in meaning.

Each message has an embedding (embeddings.py, rows of unit length). For the
window of the `window` messages ending at message t (t >= window):

- windowed similarity: the mean cosine over all pairs of the window's messages;
- consecutive similarity: the mean cosine of each message with the one before it;

The window is converged when both reach their thresholds (`window_similarity`,
`consecutive_similarity`): every message says much what the others say, in
whatever words. Marking message t when the window ending at t is converged,
the onset rule of onset.py (`onset_run`, `onset_min`, `tail_share`) finds the
stretch; the convergence's onset is the first message of the first converged
window of that stretch, and its strength the mean windowed similarity of the
windows from there on. Silent (all-zero) vectors count as dissimilar to
everything, so empty replies are the silence theme's, not convergence's.

`detect_convergence` works on a whole conversation (one matrix product per
window); `ConvergenceWatcher` takes one vector at a time with state bounded by
the window and reports an event when the rule first holds. Both compute each
window's statistics with `window_stats`, so they agree at every prefix.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .onset import OnsetRule, OnsetTracker, first_onset


@dataclass(frozen=True)
class ConvergenceParams:
    window: int = 6
    window_similarity: float = 0.8
    consecutive_similarity: float = 0.8
    onset_run: int = 4
    onset_min: int = 3
    tail_share: float = 0.8

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("the convergence window must hold at least 2 messages")

    @property
    def rule(self) -> OnsetRule:
        return OnsetRule(self.onset_run, self.onset_min, self.tail_share)


def window_stats(vectors: np.ndarray) -> tuple[float, float]:
    """(windowed, consecutive) similarity of a window's vectors, rows of unit length or zero."""
    v = np.asarray(vectors, dtype=np.float64)
    k = len(v)
    gram = v @ v.T
    pairs = gram[np.triu_indices(k, 1)]
    consecutive = np.diagonal(gram, 1)
    return float(pairs.mean()), float(consecutive.mean())


@dataclass
class Convergence:
    onset: int  # first message of the first converged window (numbered from 1)
    window_end: int  # the message whose window first counted
    strength: float  # mean windowed similarity of the windows from there on
    covered_share: float  # messages onset..end over all messages

    def detail(self) -> str:
        return f"convergence since message {self.onset}, similarity {self.strength:.2f}"


def _convergence_from(flags: Sequence[int], windowed: Sequence[float], params: ConvergenceParams,
                      start: int = 1) -> Convergence | None:
    t = first_onset(flags, params.rule, start)
    if t is None:
        return None
    n = len(flags)
    onset = t - params.window + 1
    tail = [windowed[i - 1] for i in range(t, n + 1)]
    return Convergence(onset=onset, window_end=t, strength=round(float(np.mean(tail)), 4),
                       covered_share=(n - onset + 1) / n)


def convergence_flags(vectors: np.ndarray, params: ConvergenceParams = ConvergenceParams()
                      ) -> tuple[list[int], list[float]]:
    """Per message: is the window ending at it converged, and its windowed similarity (0 before a full window)."""
    flags, windowed = [], []
    for t in range(1, len(vectors) + 1):
        if t < params.window:
            flags.append(0)
            windowed.append(0.0)
            continue
        w, c = window_stats(vectors[t - params.window : t])
        flags.append(1 if w >= params.window_similarity and c >= params.consecutive_similarity else 0)
        windowed.append(w)
    return flags, windowed


def detect_convergence(vectors: np.ndarray, params: ConvergenceParams = ConvergenceParams()
                       ) -> Convergence | None:
    flags, windowed = convergence_flags(vectors, params)
    return _convergence_from(flags, windowed, params)


@dataclass(frozen=True)
class ConvergenceEvent:
    message_index: int
    convergence: Convergence

    @property
    def detail(self) -> str:
        return self.convergence.detail()


class ConvergenceWatcher:
    """`detect_convergence` one vector at a time (state: the window, one flag and one float per message)."""

    def __init__(self, params: ConvergenceParams = ConvergenceParams()) -> None:
        self.params = params
        self._window: deque[np.ndarray] = deque(maxlen=params.window)
        self._tracker = OnsetTracker(params.rule)
        self._windowed: list[float] = []

    def observe(self, vector: np.ndarray) -> list[ConvergenceEvent]:
        self._window.append(np.asarray(vector))
        p = self.params
        if len(self._window) < p.window:
            flag, w = 0, 0.0
        else:
            w, c = window_stats(np.stack(self._window))
            flag = 1 if w >= p.window_similarity and c >= p.consecutive_similarity else 0
        self._windowed.append(w)
        if self._tracker.push(bool(flag)) == "start":
            conv = _convergence_from(self._tracker.flags, self._windowed, p, self._tracker.start)
            assert conv is not None  # the same rule, computed the long way
            return [ConvergenceEvent(len(self._windowed), conv)]
        return []

    @property
    def convergence(self) -> Convergence | None:
        """What `detect_convergence` reports for the vectors so far."""
        return _convergence_from(self._tracker.flags, self._windowed, self.params)
