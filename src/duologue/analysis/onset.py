"""The onset rule shared by the detectors that watch a per-message flag.

A detector that marks each message (a near duplicate, a converged window, a
message in a theme) finds where a stretch of marked messages starts with one
rule: the onset is the first t >= start such that at least `onset_min` of the
`onset_run` messages t .. t+onset_run−1 are marked and at least `tail_share` of
all messages from t to the end are. `first_onset` applies it to a whole list
of flags; `OnsetTracker` applies it one flag at a time, with state bounded by
`onset_run`, and the two agree at every prefix (the tail test is done in
integers so rounding cannot make them disagree).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class OnsetRule:
    onset_run: int = 6  # a window of this many messages ...
    onset_min: int = 5  # ... of which at least this many are marked ...
    tail_share: float = 0.8  # ... and this share of everything from the onset on

    def __post_init__(self) -> None:
        if self.onset_run < 1 or not 1 <= self.onset_min <= self.onset_run:
            raise ValueError("need 1 <= onset_min <= onset_run")
        if not 0 < self.tail_share <= 1:
            raise ValueError("tail_share must be in (0, 1]")


def tail_fraction(share: float) -> tuple[int, int]:
    # The tail test "marked >= share * count" in integers (den·marked − num·count >= 0),
    # so 0.8 × 15 is exactly 12 and the batch and live rules cannot disagree through rounding.
    f = Fraction(share).limit_denominator(1000)
    return f.numerator, f.denominator


def first_onset(flags: Sequence[int], rule: OnsetRule, start: int = 1) -> int | None:
    """First t >= start (messages numbered from 1) where the onset rule holds for all of `flags`."""
    n = len(flags)
    num, den = tail_fraction(rule.tail_share)
    # suffix[t] = Σ_{i=t..n} (den·d_i − num) ≥ 0  ⇔  the tail from t has the share.
    suffix = [0] * (n + 2)
    for i in range(n, 0, -1):
        suffix[i] = suffix[i + 1] + (den if flags[i - 1] else 0) - num
    run = rule.onset_run
    for t in range(max(start, 1), n - run + 2):
        if suffix[t] >= 0 and sum(1 for f in flags[t - 1 : t - 1 + run] if f) >= rule.onset_min:
            return t
    return None


class OnsetTracker:
    """The onset rule one flag at a time, in episodes.

    `push` returns "start" when the rule first holds for the flags so far,
    "end" when it stops holding (the episode is over; a new one may only start
    after it), and None otherwise. `start` is the earliest onset the current
    episode may have, so `first_onset(flags, rule, tracker.start)` names the
    onset of the episode that just started.
    """

    def __init__(self, rule: OnsetRule) -> None:
        self.rule = rule
        self.flags = bytearray()
        self._window = 0  # marked among the last onset_run flags
        self._num, self._den = tail_fraction(rule.tail_share)
        # P(k) = Σ_{i<=k} (den·d_i − num); the tail from t has the share iff P(t−1) <= P(n).
        # Only P(n − onset_run) .. P(n) are ever needed.
        self._prefix: deque[int] = deque([0], maxlen=rule.onset_run + 1)
        self._lowest: int | None = None  # min P(w−1) over complete windows w >= start that qualify
        self.start = 1
        self.active = False

    def push(self, flag: bool) -> str | None:
        rule = self.rule
        self.flags.append(1 if flag else 0)
        t = len(self.flags)
        self._prefix.append(self._prefix[-1] + (self._den if flag else 0) - self._num)
        self._window += 1 if flag else 0
        if t > rule.onset_run:
            self._window -= self.flags[t - rule.onset_run - 1]
        # The window that starts at w = t − onset_run + 1 has just become complete.
        w = t - rule.onset_run + 1
        if w >= self.start and self._window >= rule.onset_min:
            before = self._prefix[0]  # P(w − 1)
            self._lowest = before if self._lowest is None else min(self._lowest, before)
        holds = self._lowest is not None and self._lowest <= self._prefix[-1]
        if holds and not self.active:
            self.active = True
            return "start"
        if not holds and self.active:
            self.active = False
            self.start = t + 1
            self._lowest = None
            return "end"
        return None
