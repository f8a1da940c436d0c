"""Attractor entry: the family a conversation drifts into and stays in, its topic, and its end state.

Messages carry end-state labels (themes.ThemeTracker). A family is a set of end
states (the faces of spiritual bliss: gratitude, unity, stillness, wordless
companionship), or a rule theme alone. Per family, a message is marked when its
label is one of the family's themes, or, once the family has had
COLLAPSE_AFTER messages, when a collapse rule labels it (the same words again,
emoji, nothing: how a family's stretch often ends). The onset rule of onset.py
(`onset_run`, `onset_min`, `tail_share`) finds where the conversation entered
the family and stayed, the onset moved to the first marked message of its
window. A family entered (or holding a window of the rule) by message
`topic_messages`, or asked for by the opener (`is_topic`), is the
conversation's topic, not a drift. `AttractorWatcher` reports the same one
message at a time, with state bounded by the windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .onset import OnsetTracker, first_onset

if TYPE_CHECKING:
    from .themes import AttractorParams, MessageThemes, ThemeSet

# Staying on task is an end state (the attractor map counts it) but not an attractor.
NOT_ATTRACTOR_RULES = ("on_task",)


def _not_attractors(themes: ThemeSet) -> set[str | None]:
    return {None, *(t.id for t in themes.themes if t.rule in NOT_ATTRACTOR_RULES)}


# The rules a family's stretch may end in (its collapse: the same words again, symbols, nothing): once a
# family has had COLLAPSE_AFTER messages, messages these rules label count towards it, so bliss fading into
# "🙏" and "..." stays bliss (the end state says how it ended); a chat that turns to emoji after a line or
# two of cheer is an emoji collapse.
COLLAPSE_RULES = ("verbatim", "silence", "emoji")
COLLAPSE_AFTER = 3


@dataclass
class Attractor:
    theme: str  # the family's id (a theme's own id when it has no family)
    label: str
    onset: int  # message where the conversation entered the family (numbered from 1)
    share: float  # share of the messages onset..end in the family
    strength: float  # mean score of the family's best theme over onset..end (1.0 for rule themes)

    def detail(self) -> str:
        return f"entered {self.label} at message {self.onset} and stayed ({self.share:.0%} of messages since)"


class FamilyMarks:
    """One family's mark per message, one message at a time: the message's label is one of the family's
    themes, or, once the family has had COLLAPSE_AFTER messages, a collapse rule's (COLLAPSE_RULES)."""

    def __init__(self, themes: ThemeSet, family: str) -> None:
        self.family = family
        self._members = {t.id for t in themes.members(family)}
        self._semantic = bool(themes.phrase_members(family))
        self._collapse = {t.id for t in themes.themes if t.rule in COLLAPSE_RULES} if self._semantic else set()
        self._own = 0

    def push(self, label: str | None) -> bool:
        if label in self._members:
            self._own += 1
            return True
        return self._own >= COLLAPSE_AFTER and label in self._collapse


def _params(params: AttractorParams | None) -> AttractorParams:
    from .themes import AttractorParams

    return params if params is not None else AttractorParams()


def family_flags(trajectory: Sequence[MessageThemes], themes: ThemeSet, family: str) -> list[int]:
    marks = FamilyMarks(themes, family)
    return [1 if marks.push(m.label) else 0 for m in trajectory]


def _attractor_for(
    family: str, flags: Sequence[int], onset: int, themes: ThemeSet, trajectory: Sequence[MessageThemes]
) -> Attractor:
    n = len(flags)
    while not flags[onset - 1]:  # the window where the rule holds starts with unmarked messages
        onset += 1
    tail = range(onset, n + 1)
    share = sum(flags[i - 1] for i in tail) / len(tail)
    ids = [t.id for t in themes.phrase_members(family)]
    values = [max(trajectory[i - 1].scores.get(t, 0.0) for t in ids) for i in tail if ids]
    strength = float(np.mean(values)) if values else 1.0
    return Attractor(family, themes.label(family), onset, share, round(strength, 4))


def is_topic(
    a: Attractor,
    themes: ThemeSet,
    trajectory: Sequence[MessageThemes],
    flags: Sequence[int],
    params: AttractorParams,
) -> bool:
    """Whether a family the conversation entered is its topic rather than a drift (`flags`: the family's marks
    of the messages so far): entered by message `topic_messages`, or holding a window of the onset rule that
    starts by then (`_held_from_start`); or,
    unless `topic_register` is None, a family of phrase themes the opener asked for (its `askable` themes):
    the opener (the opening's first message) invites the other (it holds one of the theme file's
    `invitation` words, when the file has them: "let's", "together") and scores at least `topic_register`
    for one of those themes (it asks for a meditation, a gratitude letter, a game of compliments), and the
    family's own messages from the onset on keep to the opening's subject (their mean cosine with the opening
    reaches `topic_similarity`: the conversation gave what was asked, maybe after a while). A drift leaves the
    opening's subject behind; a simulator's seed ("./dreamsim.exe 'a quiet garden'") invites no one."""
    if a.onset <= params.topic_messages or _held_from_start(flags, params):
        return True
    own = [t.id for t in themes.phrase_members(a.theme) if t.askable]
    if params.topic_register is None or not own:
        return False
    opener = next((m for m in trajectory if m.opens), None)  # what asked: the first message of the opening
    if opener is None or (themes.invitation and not opener.invites):
        return False
    register = max((opener.scores.get(t, 0.0) for t in own), default=0.0)
    if register < params.topic_register:
        return False
    sims = [m.opening for m in trajectory[a.onset - 1 :] if m.label in own]
    return bool(sims) and sum(sims) / len(sims) >= params.topic_similarity


def _held_from_start(flags: Sequence[int], params: AttractorParams) -> bool:
    """Whether a family's marks hold a window of the onset rule (`onset_min` of `onset_run` messages) starting
    by message `topic_messages`: the conversation began in it, even if the rest of the rule (the share to the
    end) only holds from a later message (a game of compliments whose moves are half of them labelled on task)."""
    rule = params.rule
    return any(
        sum(flags[t - 1 : t - 1 + rule.onset_run]) >= rule.onset_min
        for t in range(1, params.topic_messages + 1)
        if len(flags) >= t - 1 + rule.onset_run
    )


def _stayed(a: Attractor, themes: ThemeSet, flags: Sequence[int], params: AttractorParams) -> bool:
    """Whether the family holds `attractor_messages` messages from the attractor's onset on: three goodbyes
    that close a task are a closing round, not a place the conversation stayed. A rule family (silence, emoji)
    needs no more than its rule: three empty messages at the end are where the conversation went."""
    return not themes.phrase_members(a.theme) or sum(flags[a.onset - 1 :]) >= params.attractor_messages


def _attractor_families(themes: ThemeSet) -> list[str]:
    not_attractors = _not_attractors(themes)
    return [f for f in themes.family_ids if f not in not_attractors]


def _entries(
    trajectory: Sequence[MessageThemes], themes: ThemeSet, params: AttractorParams
) -> list[tuple[Attractor, bool]]:
    """Each family whose onset rule holds: its attractor, and whether it is the topic (`is_topic`)."""
    present = {themes.family_of(m.label) for m in trajectory if m.label is not None}
    out = []
    for family in _attractor_families(themes):
        if family not in present:
            continue
        flags = family_flags(trajectory, themes, family)
        onset = first_onset(flags, params.rule)
        if onset is None:
            continue
        a = _attractor_for(family, flags, onset, themes, trajectory)
        if not _stayed(a, themes, flags, params):
            continue
        out.append((a, is_topic(a, themes, trajectory, flags, params)))
    return out


def detect_attractor(
    trajectory: Sequence[MessageThemes], themes: ThemeSet, params: AttractorParams | None = None
) -> Attractor | None:
    """The family the conversation drifted into and stayed in, or None.

    Among the families whose onset rule holds, those the conversation began in or was asked for are its
    topic (`is_topic`, `topic_from_start`), not a drift; of the rest the earliest onset wins
    (then the larger share): a family holding most messages from there to the end has been where the
    conversation is for longest, and a collapse inside it (bliss fading into emoji) counts towards it.
    """
    drifts = [a for a, topic in _entries(trajectory, themes, _params(params)) if not topic]
    return min(drifts, key=lambda a: (a.onset, -a.share)) if drifts else None


def topic_from_start(
    trajectory: Sequence[MessageThemes], themes: ThemeSet, params: AttractorParams | None = None
) -> str | None:
    """The family the conversation started in or was asked for by its opening, and stayed in (an opener that
    asks for a meditation), or None."""
    topics = [a for a, topic in _entries(trajectory, themes, _params(params)) if topic]
    return min(topics, key=lambda a: (a.onset, -a.share)).theme if topics else None


def end_state(
    trajectory: Sequence[MessageThemes],
    params: AttractorParams | None = None,
    themes: ThemeSet | None = None,
) -> str | None:
    """The end state: the family (or rule theme) most of the final window's messages share, else None
    (unresolved). Without `themes`, each label is its own family."""
    window = [m.label for m in trajectory[-_params(params).final_window :]]
    if themes is not None:
        window = [themes.family_of(label) for label in window]
    return window_majority(window)


def window_majority(window: Sequence[str | None]) -> str | None:
    """The label more than half of a window's messages share, else None (the end state's rule)."""
    if not window:
        return None
    counts: dict[str | None, int] = {}
    for label in window:
        counts[label] = counts.get(label, 0) + 1
    label, count = max(counts.items(), key=lambda kv: (kv[1], kv[0] is not None))
    return label if label is not None and count * 2 > len(window) else None


@dataclass(frozen=True)
class AttractorEvent:
    message_index: int
    attractor: Attractor

    @property
    def detail(self) -> str:
        return self.attractor.detail()


class AttractorWatcher:
    """`detect_attractor` one message at a time: an event when a family's rule first holds (per episode),
    unless the family is then the conversation's topic (`is_topic` on the messages so far), not a drift."""

    def __init__(self, themes: ThemeSet, params: AttractorParams | None = None) -> None:
        self.themes = themes
        self.params = params = _params(params)
        self.trajectory: list[MessageThemes] = []
        self._families = {f: (FamilyMarks(themes, f), OnsetTracker(params.rule)) for f in _attractor_families(themes)}
        self._waiting: set[str] = set()  # families whose rule holds with fewer than attractor_messages messages

    def observe(self, mt: MessageThemes) -> list[AttractorEvent]:
        self.trajectory.append(mt)
        events = []
        for family, (marks, tracker) in self._families.items():
            step = tracker.push(marks.push(mt.label))
            if step == "end":
                self._waiting.discard(family)
            if step != "start" and family not in self._waiting:
                continue
            # The rule holds (now, or since an earlier message while the family had too few messages to stay).
            flags = tracker.flags
            onset = first_onset(flags, self.params.rule, tracker.start)
            assert onset is not None  # the same rule, computed the long way
            a = _attractor_for(family, flags, onset, self.themes, self.trajectory)
            if not _stayed(a, self.themes, flags, self.params):
                self._waiting.add(family)
                continue
            self._waiting.discard(family)
            if not is_topic(a, self.themes, self.trajectory, flags, self.params):
                events.append(AttractorEvent(mt.index, a))
        return events

    @property
    def attractor(self) -> Attractor | None:
        """What `detect_attractor` reports for the messages so far."""
        return detect_attractor(self.trajectory, self.themes, self.params)
