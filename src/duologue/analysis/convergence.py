"""Semantic convergence: the conversation's recent messages stop moving in meaning.

Each message has an embedding (embeddings.py, rows of unit length). For the
window of the `window` messages ending at message t (t >= window):

- windowed similarity: the mean cosine over all pairs of the window's messages;
- consecutive similarity: the mean cosine of each message with the one before it;
  (both also at a step of two messages, see `window_stats`);

The window is converged when both reach their thresholds (`window_similarity`,
`consecutive_similarity`): every message says much what the others say, in
whatever words. Marking message t when the window ending at t is converged,
the onset rule of onset.py (`onset_run`, `onset_min`, `tail_share`) finds the
stretch; the convergence's onset is the first message of the first converged
window of that stretch (leaving out its leading messages that stand apart from
the rest of the window, see `window_stats`), and its strength the mean windowed similarity of the
windows from there on. Silent (all-zero) vectors count as dissimilar to
everything, so empty replies are the silence theme's, not convergence's.

`detect_convergence` works on a whole conversation (one matrix product per
window); `ConvergenceWatcher` takes one vector at a time with state bounded by
the window and reports an event when the rule first holds. Both compute each
window's statistics with `window_stats`, so they agree at every prefix.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .onset import OnsetRule, OnsetTracker, first_onset


@dataclass(frozen=True)
class ConvergenceParams:
    __pydantic_config__ = {"extra": "forbid"}  # unknown keys in [detection.*] are errors
    window: int = 6
    window_similarity: float = 0.75
    consecutive_similarity: float = 0.75
    onset_run: int = 4
    onset_min: int = 3
    tail_share: float = 0.8

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("the convergence window must hold at least 2 messages")

    @property
    def rule(self) -> OnsetRule:
        return OnsetRule(self.onset_run, self.onset_min, self.tail_share)


@functools.cache
def _pairs(k: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i < j) of a window of k messages that are a multiple of `step` apart, row by row."""
    i, j = np.triu_indices(k, 1)
    keep = (j - i) % step == 0
    i, j = i[keep], j[keep]
    i.setflags(write=False)  # shared by every call
    j.setflags(write=False)
    return i, j


def window_stats(vectors: np.ndarray, window_similarity: float = 1.0) -> tuple[float, float, int]:
    """(windowed, consecutive) similarity of a window's vectors (rows of unit length or zero), and
    how many of its first messages stand apart.

    Computed at step 1 (every message against every other, and against the one
    before it) and at step 2 (pairs an even number of messages apart, and each
    message against the one two before it: in a conversation of two, the same
    speaker's), keeping the step whose smaller figure is larger, so a period-2
    loop converges as much as a conversation whose two sides say one thing. The
    leading messages that stand apart are those whose mean cosine with the
    later messages of the window at that step is below `window_similarity`
    (at most all but two).
    """
    v = np.asarray(vectors, dtype=np.float64)
    k = len(v)
    gram = v @ v.T
    best: tuple[float, float, int] | None = None
    for step in (1, 2):
        if k <= step:
            continue
        i, j = _pairs(k, step)
        windowed = float(gram[i, j].mean())
        consecutive = float(np.diagonal(gram, step).mean())
        if best is None or min(windowed, consecutive) > min(best[0], best[1]):
            lead = 0
            while lead < k - 1 - step and float(gram[lead, lead + step :: step].mean()) < window_similarity:
                lead += 1
            best = (windowed, consecutive, lead)
    assert best is not None, "a window holds at least two messages"
    return best


@dataclass
class Convergence:
    onset: int  # first message of the first converged window (numbered from 1)
    window_end: int  # the message whose window first counted
    strength: float  # mean windowed similarity of the windows from there on
    covered_share: float  # messages onset..end over all messages

    def detail(self) -> str:
        return f"convergence since message {self.onset}, similarity {self.strength:.2f}"


def _convergence_from(
    flags: Sequence[int], windowed: Sequence[float], leads: Sequence[int], params: ConvergenceParams, start: int = 1
) -> Convergence | None:
    t = first_onset(flags, params.rule, start)
    if t is None:
        return None
    n = len(flags)
    while not flags[t - 1]:  # the first converged window of the stretch
        t += 1
    onset = t - params.window + 1 + leads[t - 1]
    tail = [windowed[i - 1] for i in range(t, n + 1)]
    return Convergence(
        onset=onset, window_end=t, strength=round(float(np.mean(tail)), 4), covered_share=(n - onset + 1) / n
    )


def _window_flag(vectors: np.ndarray, params: ConvergenceParams) -> tuple[int, float, int]:
    w, c, lead = window_stats(vectors, params.window_similarity)
    return (1 if w >= params.window_similarity and c >= params.consecutive_similarity else 0), w, lead


def convergence_flags(
    vectors: np.ndarray, params: ConvergenceParams = ConvergenceParams()
) -> tuple[list[int], list[float], list[int]]:
    """Per message: is the window ending at it converged, its windowed similarity (0 before a full
    window) and how many of its leading messages stand apart (see `window_stats`)."""
    flags, windowed, leads = [], [], []
    for t in range(1, len(vectors) + 1):
        flag, w, lead = (0, 0.0, 0) if t < params.window else _window_flag(vectors[t - params.window : t], params)
        flags.append(flag)
        windowed.append(w)
        leads.append(lead)
    return flags, windowed, leads


def detect_convergence(vectors: np.ndarray, params: ConvergenceParams = ConvergenceParams()) -> Convergence | None:
    flags, windowed, leads = convergence_flags(vectors, params)
    return _convergence_from(flags, windowed, leads, params)


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
        self._leads = bytearray()

    def observe(self, vector: np.ndarray) -> list[ConvergenceEvent]:
        self._window.append(np.asarray(vector))
        p = self.params
        flag, w, lead = (0, 0.0, 0) if len(self._window) < p.window else _window_flag(np.stack(self._window), p)
        self._windowed.append(w)
        self._leads.append(lead)
        if self._tracker.push(bool(flag)) == "start":
            conv = _convergence_from(self._tracker.flags, self._windowed, self._leads, p, self._tracker.start)
            assert conv is not None  # the same rule, computed the long way
            return [ConvergenceEvent(len(self._windowed), conv)]
        return []

    @property
    def convergence(self) -> Convergence | None:
        """What `detect_convergence` reports for the vectors so far."""
        return _convergence_from(self._tracker.flags, self._windowed, self._leads, self.params)
