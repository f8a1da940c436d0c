"""Attractor themes: what each message is about, and the theme a conversation enters and stays in.

A theme set (themes.toml beside this file, or a user's copy) describes each
theme by a few phrases and a lexicon, or by a rule on the message's form.

Per message, `ThemeTracker` gives every phrase theme a score: the cosine of
the message's embedding with the nearest of the theme's phrases, plus
`lexicon_weight` × min(1, lexicon hits / 3). Its end-state label is the first
of these that holds:

1. silence — nothing, or at most 16 characters of whitespace and punctuation
   (not message 1: the customary blank opener is no theme);
2. emoji — it has at most two words, and emoji make more than `emoji_share`
   of its emoji and words together (a loop of emoji is an emoji collapse);
3. verbatim — it normalises to the same text as one of the `max_period`
   messages before it;
4. role_collapse — another speaker's message right before it says the same
   thing: cosine ≥ `role_collapse_similarity` and the two share at least
   `role_collapse_words` of their words (Jaccard);
5. the end-state phrase theme with the highest score, when that score is at
   least `theme_threshold` and leads its rival by `margin`: the rival is the
   best "neutral" theme (on-task talk that looks like an end state), or the
   cosine with the conversation's opening × `on_task_weight` when higher;
6. on_task — cosine with the conversation's opening (the first two messages
   with three or more words) at least `on_task_similarity`;
7. none.

End states may share a family (the faces of spiritual bliss); the label is the
theme, entry is per family (entry.py). The topic label is the phrase theme of
kind "topic" with the highest score when it reaches `theme_threshold`. Labels
depend only on the message and the ones before it, so a live run and the
analysis of its transcript label every message alike.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DuologueError
from .embeddings import embed_cached
from .onset import OnsetRule
from .text import SILENCE, count_emoji, is_emoji, normalize, words

RULES = ("verbatim", "silence", "emoji", "role_collapse", "on_task")
KINDS = ("end_state", "topic", "neutral")
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class ThemeSetError(DuologueError):
    """A theme file that cannot be used."""


@dataclass(frozen=True)
class Theme:
    id: str
    label: str
    kind: str  # "end_state" or "topic"
    description: str = ""
    phrases: tuple[str, ...] = ()
    lexicon: tuple[str, ...] = ()
    rule: str | None = None
    family: str | None = None  # the family this end state is a face of; None: its own
    # Whether an opener can ask for this end state so that it is the conversation's topic (a meditation, a game of
    # compliments); false for one whose register every open-ended opener speaks (the meta-loop: "what shall we
    # talk about?").
    askable: bool = True

    @property
    def family_id(self) -> str:
        return self.family or self.id


@dataclass(frozen=True)
class ThemeSet:
    themes: tuple[Theme, ...]
    source: str  # "built-in" or the file's path
    families: tuple[tuple[str, str], ...] = ()  # (family id, label) from the file's [families] table
    # Words by which an opener invites the other to do something with it ("let's", "together"): a family entered
    # later is the topic only when the opener asked for it in one of them (entry.is_topic). Empty: not needed.
    invitation: tuple[str, ...] = ()

    @property
    def invitation_pattern(self) -> re.Pattern[str] | None:
        return _lexicon_pattern(self.invitation)

    def family_of(self, theme_id: str | None) -> str | None:
        """The family of a theme (its own id without one); an unknown id is its own family."""
        if theme_id is None:
            return None
        for t in self.themes:
            if t.id == theme_id:
                return t.family_id
        return theme_id

    def members(self, family: str) -> list[Theme]:
        return [t for t in self.themes if t.kind == "end_state" and t.family_id == family]

    def phrase_members(self, family: str) -> list[Theme]:
        """The family's end states scored by meaning (phrases), not recognised by a rule; empty for a rule family."""
        return [t for t in self.members(family) if t.rule is None]

    def get(self, theme_id: str) -> Theme:
        for t in self.themes:
            if t.id == theme_id:
                return t
        raise KeyError(theme_id)

    def label(self, theme_id: str | None) -> str:
        if theme_id is None:
            return "none"
        for fid, label in self.families:
            if fid == theme_id:
                return label
        try:
            return self.get(theme_id).label
        except KeyError:
            return theme_id

    @property
    def end_states(self) -> list[Theme]:
        return [t for t in self.themes if t.kind == "end_state"]

    @property
    def topics(self) -> list[Theme]:
        return [t for t in self.themes if t.kind == "topic"]

    @property
    def family_ids(self) -> list[str]:
        """The end states' families, in the file's order (a rule theme is a family of its own)."""
        return list(dict.fromkeys(t.family_id for t in self.end_states))


def _theme_from(raw: object, where: str) -> Theme:
    if not isinstance(raw, dict):
        raise ThemeSetError(f"{where}: each [[theme]] must be a table")
    unknown = set(raw) - {"id", "label", "kind", "description", "phrases", "lexicon", "rule", "family", "askable"}
    if unknown:
        raise ThemeSetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    theme_id = raw.get("id")
    if not isinstance(theme_id, str) or not _ID.match(theme_id):
        raise ThemeSetError(f"{where}: id must be letters, digits, _ or - (got {theme_id!r})")
    kind = raw.get("kind", "end_state")
    if kind not in KINDS:
        raise ThemeSetError(f"{where} ({theme_id}): kind must be one of {', '.join(KINDS)}")
    rule = raw.get("rule")
    if rule is not None and rule not in RULES:
        raise ThemeSetError(f"{where} ({theme_id}): rule must be one of {', '.join(RULES)}")
    phrases, lexicon = raw.get("phrases", []), raw.get("lexicon", [])
    for name, value in (("phrases", phrases), ("lexicon", lexicon)):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ThemeSetError(f"{where} ({theme_id}): {name} must be a list of non-empty strings")
    if rule is None and not phrases:
        raise ThemeSetError(f"{where} ({theme_id}): give phrases (or a rule)")
    if rule is not None and kind != "end_state":
        raise ThemeSetError(f"{where} ({theme_id}): a rule theme must be an end_state")
    family = raw.get("family")
    if family is not None:
        if not isinstance(family, str) or not _ID.match(family):
            raise ThemeSetError(f"{where} ({theme_id}): family must be letters, digits, _ or - (got {family!r})")
        if kind != "end_state" or rule is not None:
            raise ThemeSetError(f"{where} ({theme_id}): only an end state with phrases has a family")
    askable = raw.get("askable", True)
    if not isinstance(askable, bool):
        raise ThemeSetError(f"{where} ({theme_id}): askable must be true or false")
    label = raw.get("label", theme_id)
    return Theme(
        id=theme_id,
        label=str(label),
        kind=kind,
        description=str(raw.get("description", "")),
        phrases=tuple(phrases),
        lexicon=tuple(lexicon),
        rule=rule,
        family=family,
        askable=askable,
    )


def parse_themes(text: str, source: str) -> ThemeSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ThemeSetError(f"{source}: not valid TOML ({e})") from None
    raw = data.get("theme")
    if not isinstance(raw, list) or not raw:
        raise ThemeSetError(f"{source}: no [[theme]] tables")
    unknown = set(data) - {"theme", "families", "invitation"}
    if unknown:
        raise ThemeSetError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))} (expected [[theme]], [families], invitation)"
        )
    invitation = data.get("invitation", [])
    if not isinstance(invitation, list) or not all(isinstance(v, str) and v.strip() for v in invitation):
        raise ThemeSetError(f"{source}: invitation must be a list of non-empty strings")
    themes = tuple(_theme_from(r, f"{source}, theme {i}") for i, r in enumerate(raw, start=1))
    ids = [t.id for t in themes]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ThemeSetError(f"{source}: theme id(s) used twice: {', '.join(dup)}")
    families = data.get("families", {})
    if not isinstance(families, dict) or not all(isinstance(v, str) for v in families.values()):
        raise ThemeSetError(f'{source}: [families] maps a family id to its label (family = "label")')
    clash = sorted(f for f in families if f in ids and themes[ids.index(f)].family_id != f)
    if clash:
        raise ThemeSetError(f"{source}: family id(s) {', '.join(clash)} name a theme of another family")
    return ThemeSet(themes, source, tuple(families.items()), tuple(invitation))


_BUILTIN: ThemeSet | None = None


def builtin_themes() -> ThemeSet:
    global _BUILTIN
    if _BUILTIN is None:
        text = resources.files(__package__).joinpath("themes.toml").read_text(encoding="utf-8")
        _BUILTIN = parse_themes(text, "built-in")
    return _BUILTIN


def load_themes(path: str | Path | None = None) -> ThemeSet:
    """The built-in theme set, or the one in `path`."""
    if path is None:
        return builtin_themes()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ThemeSetError(f"cannot read theme file {p}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ThemeSetError(f"{p}: not a UTF-8 text file") from None
    return parse_themes(text, str(p))


@dataclass(frozen=True)
class AttractorParams:
    __pydantic_config__ = {"extra": "forbid"}  # unknown keys in [detection.*] are errors
    """Thresholds of the theme labels and the attractor rule (see the module docstring)."""

    theme_threshold: float = 0.2
    margin: float = 0.06
    on_task_weight: float = 0.7
    lexicon_weight: float = 0.15
    emoji_share: float = 0.5
    role_collapse_similarity: float = 0.85
    role_collapse_words: float = 0.5
    on_task_similarity: float = 0.3
    max_period: int = 8
    onset_run: int = 4
    onset_min: int = 3
    tail_share: float = 0.5
    # An attractor holds at least this many of its family's messages from its onset on: a task closed with
    # "thanks!", "bye!", "take care!" is a closing round, not a farewell spiral (nor any family's stay).
    attractor_messages: int = 4
    # A family entered in the first exchange (by message 3), or holding a window of the onset rule starting by
    # then, is the topic, not a drift ...
    topic_messages: int = 3
    # ... and so is one the opener asked for: the opener (the opening's first message) holds one of the theme
    # file's invitation words and scores at least `topic_register` for one of the family's askable themes, and
    # the family's messages keep to the opening's subject (their mean cosine with the opening reaches
    # `topic_similarity`). None turns this second rule off (docs/detectors.md has what it finds and costs on
    # the blind set and the real logs).
    topic_register: float | None = 0.28
    topic_similarity: float = 0.21
    final_window: int = 6  # the messages whose labels name a conversation's end state
    themes: str | None = None  # a theme file; None: the built-in set

    def __post_init__(self) -> None:
        OnsetRule(self.onset_run, self.onset_min, self.tail_share)  # raises on a bad window
        if self.final_window < 1 or self.max_period < 1:
            raise ValueError("final_window and max_period must be at least 1")
        if self.attractor_messages < 1:
            raise ValueError("attractor_messages must be at least 1")
        if self.topic_messages < 0:
            raise ValueError("topic_messages must be at least 0")

    @property
    def rule(self) -> OnsetRule:
        return OnsetRule(self.onset_run, self.onset_min, self.tail_share)


@dataclass
class MessageThemes:
    index: int  # numbered from 1
    label: str | None  # end-state theme id
    topic: str | None  # topic theme id
    scores: dict[str, float] = field(default_factory=dict)  # phrase themes' scores, rounded
    opening: float = 0.0  # cosine with the conversation's opening (the on-task similarity); 0 before there is one
    opens: bool = False  # one of the messages that make up the opening (the first two with three words or more)
    invites: bool = False  # an opening message holding one of the theme file's invitation words


def _lexicon_term(term: str) -> str:
    t = term.casefold()
    if t[:1].isalnum() and t[-1:].isalnum():
        return r"(?<!\w)" + re.escape(t) + r"(?!\w)"
    return re.escape(t)


def _lexicon_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """One pattern for a theme's whole lexicon (longest terms first, so "thank you" wins over "thank")."""
    if not terms:
        return None
    return re.compile("|".join(_ordered_terms(terms)))


def _ordered_terms(terms: Sequence[str]) -> list[str]:
    """The terms' patterns, longest first (ties alphabetically)."""
    return [_lexicon_term(t) for t in sorted(dict.fromkeys(terms), key=lambda t: (-len(t), t))]


class ThemeScorer:
    """Scores of one message against every phrase theme (end states and topics)."""

    def __init__(self, themes: ThemeSet, embedder, params: AttractorParams = AttractorParams()) -> None:
        self.themes = themes
        self.params = params
        self.phrase_themes = [t for t in themes.themes if t.rule is None]
        phrases = [p for t in self.phrase_themes for p in t.phrases]
        bounds = np.cumsum([0] + [len(t.phrases) for t in self.phrase_themes])
        self._starts = np.asarray(bounds[:-1], dtype=np.intp)
        # The phrases' vectors are kept in the cache folder: an analysis of stored vectors loads no model.
        self._phrases = embed_cached(phrases, embedder).astype(np.float32) if phrases else np.zeros((0, embedder.dim))
        # Each lexicon's terms as plain substrings (and as written): a text that holds none of them has no
        # hit, and testing that is far cheaper than the pattern's word-boundary search.
        self._terms = [
            (term.casefold(), term, i) for i, t in enumerate(self.phrase_themes) for term in dict.fromkeys(t.lexicon)
        ]
        # The pattern of the terms a text holds, per theme: the whole lexicon's pattern tries every term at
        # every position of the text (most of the analysis of long messages); one of the few terms present
        # finds the same matches, since a term the text does not hold matches nowhere in it.
        self._present_patterns: dict[tuple[int, tuple[str, ...]], re.Pattern[str]] = {}

    def scores(self, content: str, vector: np.ndarray) -> np.ndarray:
        """One score per phrase theme (in `phrase_themes` order)."""
        n = len(self.phrase_themes)
        out = np.zeros(n, dtype=np.float64)
        if not len(self._phrases) or not np.any(vector):
            return out
        sims = self._phrases @ vector.astype(np.float32)
        out[:] = np.maximum.reduceat(sims, self._starts)  # each theme's best phrase (every theme has one)
        text = content.casefold()
        w = self.params.lexicon_weight
        present: dict[int, list[str]] = {}
        for folded, term, i in self._terms:
            if folded in text:
                present.setdefault(i, []).append(term)
        for i, terms in present.items():
            key = (i, tuple(terms))
            pattern = self._present_patterns.get(key)
            if pattern is None:
                pattern = self._present_patterns[key] = re.compile("|".join(_ordered_terms(terms)))
            hits = len(list(itertools.islice(pattern.finditer(text), 3)))  # 3 hits score in full
            out[i] += w * min(1.0, hits / 3)
        return out


def _word_jaccard(a: str, b: str) -> float:
    wa, wb = set(words(a)), set(words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


class ThemeTracker:
    """Labels messages one at a time (causally: only the message and those before it count)."""

    def __init__(self, scorer: ThemeScorer, end_marker: str | None = "[END]") -> None:
        self.scorer = scorer
        self.params = scorer.params
        self.end_marker = end_marker
        self._recent: list[str] = []  # last max_period normalised messages
        self._previous: tuple[str, str, np.ndarray] | None = None  # speaker, content, vector
        self._opening: list[np.ndarray] = []
        self._count = 0
        phrase = scorer.phrase_themes
        self._end_idx = [i for i, t in enumerate(phrase) if t.kind == "end_state"]
        self._topic_idx = [i for i, t in enumerate(phrase) if t.kind == "topic"]
        self._neutral_idx = [i for i, t in enumerate(phrase) if t.kind == "neutral"]
        # A rule theme's label is its id (a user's file may call the silence rule "quiet").
        self._rules = {t.rule: t.id for t in scorer.themes.themes if t.rule}
        self._invitation = scorer.themes.invitation_pattern

    def observe(self, speaker: str, content: str, vector: np.ndarray) -> MessageThemes:
        p = self.params
        self._count += 1
        norm = normalize(content, self.end_marker)
        scores = self.scorer.scores(content, vector)
        phrase = self.scorer.phrase_themes
        label: str | None = None
        rules = self._rules
        on_task = 0.0  # cosine with the opening
        if self._opening:
            centroid = np.mean(self._opening, axis=0)
            norm_c = float(np.linalg.norm(centroid))
            on_task = float(vector @ centroid) / norm_c if norm_c > 0 else 0.0
        # Silence: nothing, or a few marks ("...", "—"); a long block of symbols (ASCII art) is not silence.
        blank = norm == SILENCE or (len(norm) <= 16 and not any(c.isalnum() or is_emoji(c) for c in norm))
        if blank and self._count == 1:
            label = None  # the customary blank opener (a single space) is no one's silence
        elif "silence" in rules and blank:
            label = rules["silence"]
        elif "emoji" in rules and self._emoji_collapse(content):
            label = rules["emoji"]
        elif "verbatim" in rules and norm in self._recent[-p.max_period :]:
            label = rules["verbatim"]
        elif "role_collapse" in rules and self._role_collapse(speaker, content, vector):
            label = rules["role_collapse"]
        else:
            label = self._end_state_theme(scores, on_task)
            if label is None and "on_task" in rules and on_task >= p.on_task_similarity:
                label = rules["on_task"]
        topic = self._best(scores, self._topic_idx, margin=0.0)
        opens = len(self._opening) < 2 and len(words(content, self.end_marker)) >= 3 and bool(np.any(vector))
        invites = False
        if opens:
            self._opening.append(vector.astype(np.float64))
            invites = self._invitation is not None and self._invitation.search(content.casefold()) is not None

        self._recent.append(norm)
        if len(self._recent) > p.max_period:
            del self._recent[0]
        self._previous = (speaker, content, vector)
        return MessageThemes(
            index=self._count,
            label=label,
            topic=topic,
            scores={phrase[i].id: round(float(s), 4) for i, s in enumerate(scores)},
            opening=round(on_task, 4),
            opens=opens,
            invites=invites,
        )

    def _end_state_theme(self, scores: np.ndarray, on_task: float) -> str | None:
        """The best end-state phrase theme, when it reaches `theme_threshold` and leads its rival by `margin`:
        the rival is the best neutral theme, or the opening (its cosine × `on_task_weight`) when higher."""
        if not self._end_idx:
            return None
        p = self.params
        top = max(self._end_idx, key=lambda i: scores[i])  # the first of equal scores
        rival = max([p.on_task_weight * on_task, *(scores[i] for i in self._neutral_idx)])
        if scores[top] < p.theme_threshold or scores[top] - rival < p.margin:
            return None
        return self.scorer.phrase_themes[top].id

    def _best(self, scores: np.ndarray, idx: list[int], margin: float | None = None) -> str | None:
        if not idx:
            return None
        margin = self.params.margin if margin is None else margin
        ranked = sorted(idx, key=lambda i: -scores[i])
        top = ranked[0]
        if scores[top] < self.params.theme_threshold:
            return None
        if len(ranked) > 1 and scores[top] - scores[ranked[1]] < margin:
            return None
        return self.scorer.phrase_themes[top].id

    def _emoji_collapse(self, content: str) -> bool:
        emoji = count_emoji(content)
        n_words = len(words(content, self.end_marker))
        if not emoji or n_words > 2:
            return False
        return emoji / (emoji + n_words) > self.params.emoji_share

    def _role_collapse(self, speaker: str, content: str, vector: np.ndarray) -> bool:
        if self._previous is None:
            return False
        prev_speaker, prev_content, prev_vector = self._previous
        if prev_speaker == speaker or not np.any(vector) or not np.any(prev_vector):
            return False
        if float(vector @ prev_vector) < self.params.role_collapse_similarity:
            return False
        return _word_jaccard(content, prev_content) >= self.params.role_collapse_words


__all__ = [
    "AttractorParams",
    "MessageThemes",
    "Theme",
    "ThemeScorer",
    "ThemeSet",
    "ThemeSetError",
    "ThemeTracker",
    "builtin_themes",
    "load_themes",
    "parse_themes",
]
