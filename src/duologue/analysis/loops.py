"""Loops and attractors: exact loops, near loops, and a watcher for live runs.

The rules are those of docs/detectors.md. Messages are numbered from 1 (the
opener is message 1), as everywhere else in duologue.

Exact loop. E_p(t) holds when message t normalises to the same text as message
t − p. A maximal run of E_p over messages a..b is a loop when it spans
(b − a + 1 + p) / p ≥ min_cycles cycles; its onset is a − p (the first message
of the first cycle), its first repeat is a.

Which loop is reported when a transcript holds several: the one that ends
latest; among those ending on the same message, the one with the earliest
onset; then the smallest period. The latest loop is the one the conversation
is in (or was in last) — an early loop the models broke out of is history,
the absorbing one is the finding. The earliest onset keeps a short repeat
inside a longer cycle (three identical lines within a period-8 loop) from
standing in for the cycle. The smallest period is the fundamental one: a
period-1 loop is also a period-2 loop with the same onset, and so on.

Near loop. A message is a near duplicate when the overlap coefficient of its
character n-gram set with one of the `near_window` messages before it reaches
`near_threshold`, counting only pairs whose two n-gram sets are of comparable
size (the smaller at least `near_size_ratio` of the larger). Without that guard
a one-line message quoted at the top of a long reply has an overlap of 1.0 with
it, and an exchange of short commands echoed by a simulator reads as a loop
from its first message although it never repeats itself. The onset is the first t such that `onset_min` of the
`onset_run` messages t.. are near duplicates and at least `tail_share` of the
messages from t to the end are.

`LoopWatcher` applies the same rules one message at a time, with a cost per
message bounded by the windows (max_period, near_window, onset_run), not by the
length of the run.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .onset import OnsetRule, OnsetTracker, first_onset
from .text import char_ngrams, normalize, overlap


@dataclass(frozen=True)
class LoopParams:
    """Every threshold of the loop detectors, with their defaults (docs/detectors.md)."""

    max_period: int = 8  # longest exact period looked for
    min_cycles: int = 3  # cycles (the first one included) that make an exact loop
    near_window: int = 6  # W: how many earlier messages a near duplicate may match
    near_threshold: float = 0.5  # overlap coefficient that makes a near duplicate
    ngram: int = 5  # character n-gram length for the similarity
    onset_run: int = 6  # near-loop onset: a window of this many messages ...
    onset_min: int = 5  # ... of which at least this many are near duplicates ...
    tail_share: float = 0.8  # ... and this share of everything from the onset on
    near_size_ratio: float = 0.5  # a pair counts only when the smaller n-gram set is >= this share of the larger

    def __post_init__(self) -> None:
        problems = []
        if self.max_period < 1:
            problems.append("max_period must be at least 1")
        if self.min_cycles < 2:
            problems.append("min_cycles must be at least 2 (one cycle is not a repeat)")
        if self.near_window < 1:
            problems.append("near_window must be at least 1")
        if not 0 < self.near_threshold <= 1:
            problems.append("near_threshold must be in (0, 1]")
        if self.ngram < 1:
            problems.append("ngram must be at least 1")
        if self.onset_run < 1 or not 1 <= self.onset_min <= self.onset_run:
            problems.append("need 1 <= onset_min <= onset_run")
        if not 0 < self.tail_share <= 1:
            problems.append("tail_share must be in (0, 1]")
        if not 0 <= self.near_size_ratio <= 1:
            problems.append("near_size_ratio must be in [0, 1]")
        if problems:
            raise ValueError("; ".join(problems))

    def min_run(self, period: int) -> int:
        """Length of an E_period run that completes min_cycles cycles."""
        return math.ceil((self.min_cycles - 1) * period)


def loop_kind(period: int, n_speakers: int) -> str:
    """What a period means for who repeats whom, assuming speakers take turns.

    When the period is a multiple of the number of speakers, every message
    repeats one by the same speaker ("self-repetition": with two speakers, an
    even period). Otherwise each message repeats what another speaker said
    ("mirroring": with two speakers, an odd period — they say the same thing).
    """
    if n_speakers <= 1 or period % n_speakers == 0:
        return "self-repetition"
    return "mirroring"


def _cycles_text(cycles: float) -> str:
    # 3.0 -> "3", 3.5 -> "3.5", 13.333 -> "13.3": enough for a person to read.
    return f"{cycles:.1f}".rstrip("0").rstrip(".")


@dataclass
class ExactLoop:
    """A run of exact repeats with a fixed period (messages numbered from 1)."""

    period: int
    onset: int  # first message of the first cycle (first_repeat − period)
    first_repeat: int  # first message equal to the one `period` before it
    last: int  # last message of the run
    cycles: float  # (last − first_repeat + 1 + period) / period
    covered_share: float  # messages onset..last over all messages
    absorbing: bool  # the run lasts to the last message
    kind: str  # "mirroring" or "self-repetition", see loop_kind

    def detail(self) -> str:
        return f"period {self.period} since message {self.onset}, {_cycles_text(self.cycles)} cycles"


def _exact_loop(period: int, first_repeat: int, last: int, total: int, n_speakers: int) -> ExactLoop:
    onset = first_repeat - period
    return ExactLoop(
        period=period,
        onset=onset,
        first_repeat=first_repeat,
        last=last,
        cycles=(last - first_repeat + 1 + period) / period,
        covered_share=(last - onset + 1) / total,
        absorbing=last == total,
        kind=loop_kind(period, n_speakers),
    )


def exact_loop_runs(norms: Sequence[str], params: LoopParams = LoopParams()) -> list[tuple[int, int, int]]:
    """Every maximal run of E_p long enough to be a loop, as (period, first_repeat, last).

    `norms` are normalised messages; the numbers returned count from 1.
    """
    found = []
    n = len(norms)
    for p in range(1, params.max_period + 1):
        need = params.min_run(p)
        run = 0
        for t in range(p + 1, n + 1):
            if norms[t - 1] == norms[t - 1 - p]:
                run += 1
                run_ends = t == n or norms[t] != norms[t - p]
                if run_ends and run >= need:
                    found.append((p, t - run + 1, t))
            else:
                run = 0
    return found


def detect_exact_loop(
    contents: Sequence[str],
    n_speakers: int = 2,
    params: LoopParams = LoopParams(),
    end_marker: str | None = "[END]",
) -> ExactLoop | None:
    """The exact loop of a transcript: latest end, then earliest onset, then smallest period."""
    norms = [normalize(c, end_marker) for c in contents]
    runs = exact_loop_runs(norms, params)
    if not runs:
        return None
    # (period, first_repeat, last): onset is first_repeat − period.
    period, first_repeat, last = max(runs, key=lambda r: (r[2], -(r[1] - r[0]), -r[0]))
    return _exact_loop(period, first_repeat, last, len(norms), n_speakers)


@dataclass
class NearLoop:
    """A stretch where nearly every message is a near duplicate of a recent one."""

    onset: int  # first message of the stretch (numbered from 1)
    covered_share: float  # messages onset..end over all messages
    dominant_lag: int  # lag of the best match, most often (1 echo, 2 self, more: template)
    near_duplicates: list[bool]  # per message, index 0 is message 1
    duplicate_share: float  # share of near duplicates among messages onset..end

    def detail(self) -> str:
        return (
            f"near loop since message {self.onset}, {self.duplicate_share:.0%} near duplicates "
            f"since, mostly at lag {self.dominant_lag}"
        )


def comparable(a: frozenset[str], b: frozenset[str], size_ratio: float) -> bool:
    """Whether two n-gram sets are of comparable size: the smaller >= size_ratio × the larger."""
    small, large = sorted((len(a), len(b)))
    return small >= size_ratio * large


def _best_match(grams: frozenset[str], earlier: Sequence[frozenset[str]], size_ratio: float = 0.0) -> tuple[float, int]:
    """Highest similarity to the earlier messages (newest last) and its lag; smallest lag on ties.

    Pairs of n-gram sets that are not of comparable size (see `comparable`) count as 0.
    """
    best, best_lag = 0.0, 0
    for lag in range(1, len(earlier) + 1):
        other = earlier[-lag]
        if not comparable(grams, other, size_ratio):
            continue
        similarity = overlap(grams, other)
        if similarity > best:
            best, best_lag = similarity, lag
    return best, best_lag


def _near_onset(flags: Sequence[int], params: LoopParams, start: int = 1) -> int | None:
    """First t >= start where the near-loop onset rule holds for all of `flags`."""
    return first_onset(flags, _onset_rule(params), start)


def _onset_rule(params: LoopParams) -> OnsetRule:
    return OnsetRule(params.onset_run, params.onset_min, params.tail_share)


def _near_loop_from(flags: Sequence[int], lags: Sequence[int], params: LoopParams, start: int = 1) -> NearLoop | None:
    onset = _near_onset(flags, params, start)
    if onset is None:
        return None
    n = len(flags)
    tail = range(onset, n + 1)
    lag_counts = Counter(lags[i - 1] for i in tail if flags[i - 1])
    dominant = min(lag_counts, key=lambda lag: (-lag_counts[lag], lag))
    return NearLoop(
        onset=onset,
        covered_share=(n - onset + 1) / n,
        dominant_lag=dominant,
        near_duplicates=[bool(f) for f in flags],
        duplicate_share=sum(lag_counts.values()) / len(tail),
    )


def near_duplicates(
    contents: Sequence[str],
    params: LoopParams = LoopParams(),
    end_marker: str | None = "[END]",
    *,
    grams: Sequence[frozenset[str]] | None = None,
) -> tuple[list[bool], list[int]]:
    """Per message: is it a near duplicate, and at which lag was its best match (0 if none).

    `grams`: the messages' character n-gram sets (of `params.ngram`) when already known."""
    earlier: deque[frozenset[str]] = deque(maxlen=params.near_window)
    flags, lags = [], []
    if grams is None:
        grams = [char_ngrams(normalize(content, end_marker), params.ngram) for content in contents]
    for g in grams:
        best, lag = _best_match(g, earlier, params.near_size_ratio)
        earlier.append(g)
        is_dup = best >= params.near_threshold
        flags.append(is_dup)
        lags.append(lag if is_dup else 0)
    return flags, lags


def detect_near_loop(
    contents: Sequence[str],
    params: LoopParams = LoopParams(),
    end_marker: str | None = "[END]",
    *,
    grams: Sequence[frozenset[str]] | None = None,
) -> NearLoop | None:
    """The near loop of a transcript, or None (see the module docstring for the rule)."""
    flags, lags = near_duplicates(contents, params, end_marker, grams=grams)
    return _near_loop_from(flags, lags, params)


@dataclass(frozen=True)
class LoopEvent:
    """What the watcher reports after a message: a loop or a near loop was reached."""

    kind: Literal["loop", "near_loop"]
    message_index: int  # the message that completed the loop (numbered from 1)
    detail: str  # one line for a person, also used as the run's stop detail
    loop: ExactLoop | NearLoop  # as seen at that message


class LoopWatcher:
    """The loop detectors, fed one message at a time during a live run.

    `observe` costs O(max_period + near_window · message length), whatever the
    length of the run. It keeps, per period p, the length of the current run of
    E_p; the last max_period normalised messages; the last near_window n-gram
    sets; and for the near-loop rule the few prefix sums it needs. It also
    appends one flag and one lag per message (a few bytes) so that a
    convergence can report its onset and dominant lag exactly as
    `detect_near_loop` would.

    Events:
    - "loop" once per loop run, at the message that completes min_cycles
      cycles (the E_p run reaches (min_cycles − 1)·p messages). The loop it
      carries is the one `detect_exact_loop` finds in the messages so far; a
      run that qualifies while an already reported loop with an earlier onset
      is still going (a short repeat inside a longer cycle, or the period-2
      shadow of a period-1 loop) is part of that loop and is not reported,
      unless it outlasts that loop: then it is reported when the loop breaks.
    - "near_loop" when the near-loop onset rule first holds for the messages
      seen so far, with the near loop `detect_near_loop` finds in them. If the
      rule stops holding later the episode is over, and a new one may be
      reported, with an onset after the end of the previous one (where
      `detect_near_loop`, which knows no episodes, may still name the first).
    The two kinds are independent: an exact loop is also a near loop, so a run
    of identical messages produces a "loop" event and, a few messages later, a
    "near_loop" event; the stop rules decide which one ends the run.

    `exact_loop` and `near_loop` give what the batch detectors would report
    for the messages seen so far.
    """

    def __init__(
        self,
        n_speakers: int = 2,
        params: LoopParams = LoopParams(),
        end_marker: str | None = "[END]",
    ) -> None:
        self.n_speakers = n_speakers
        self.params = params
        self.end_marker = end_marker
        self._count = 0
        # Exact loops.
        self._recent: deque[str] = deque(maxlen=params.max_period)
        self._need = [0] + [params.min_run(p) for p in range(1, params.max_period + 1)]
        self._run = [0] * (params.max_period + 1)  # index p: current run length of E_p
        self._reported = [False] * (params.max_period + 1)  # the current E_p run was reported
        self._best: tuple[int, int, int] | None = None  # (period, first_repeat, last) so far
        # Near loops.
        self._grams: deque[frozenset[str]] = deque(maxlen=params.near_window)
        self._near = OnsetTracker(_onset_rule(params))
        self._lags = array("I")

    @property
    def message_count(self) -> int:
        return self._count

    @property
    def exact_loop(self) -> ExactLoop | None:
        """The exact loop of the messages so far, as `detect_exact_loop` would report it."""
        if self._best is None:
            return None
        period, first_repeat, last = self._best
        return _exact_loop(period, first_repeat, last, self._count, self.n_speakers)

    @property
    def near_loop(self) -> NearLoop | None:
        """The near loop of the messages so far, as `detect_near_loop` would report it.

        Computed when asked, in time linear in the run's length.
        """
        return _near_loop_from(self._near.flags, self._lags, self.params)

    def observe(self, content: str) -> list[LoopEvent]:
        """Take the next message; return the events it triggers (usually none)."""
        self._count += 1
        norm = normalize(content, self.end_marker)
        events = [self._observe_exact(norm), self._observe_near(norm)]
        return [e for e in events if e is not None]

    def _observe_exact(self, norm: str) -> LoopEvent | None:
        t = self._count
        candidate = None  # (onset, period) of the loop the batch rule would pick now
        for p in range(1, self.params.max_period + 1):
            if p <= len(self._recent) and norm == self._recent[-p]:
                self._run[p] += 1
            else:
                self._run[p] = 0
                self._reported[p] = False
            if self._run[p] >= self._need[p]:
                onset = t - self._run[p] + 1 - p
                if candidate is None or onset < candidate[0]:
                    candidate = (onset, p)
        self._recent.append(norm)
        if candidate is None:
            return None
        # Every run that qualifies now ends at t, the latest possible end, so the
        # batch rule picks among them: earliest onset, then smallest period.
        period = candidate[1]
        self._best = (period, t - self._run[period] + 1, t)
        if self._reported[period]:
            return None
        self._reported[period] = True
        loop = self.exact_loop
        assert loop is not None
        return LoopEvent("loop", t, loop.detail(), loop)

    def _observe_near(self, norm: str) -> LoopEvent | None:
        t = self._count
        params = self.params
        grams = char_ngrams(norm, params.ngram)
        best, lag = _best_match(grams, self._grams, params.near_size_ratio)
        self._grams.append(grams)
        is_dup = best >= params.near_threshold
        self._lags.append(lag if is_dup else 0)
        change = self._near.push(is_dup)
        if change == "start":
            near = _near_loop_from(self._near.flags, self._lags, params, self._near.start)
            assert near is not None  # the same rule, computed the long way
            return LoopEvent("near_loop", t, near.detail(), near)
        return None
