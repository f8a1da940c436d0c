"""Per-message metrics worth plotting (docs/detectors.md, "Metrics").

`MetricsTracker` computes them one message at a time, for live views;
`compute_metrics` runs a tracker over a finished transcript, so both give the
same numbers by construction.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .text import char_ngrams, char_shares, clean, normalize, overlap, word_ngrams, words

# Words and emoji of the "spiritual bliss attractor" and its relatives.
DEFAULT_LEXICON: tuple[str, ...] = (
    "consciousness",
    "eternal",
    "eternity",
    "infinite",
    "dance",
    "love",
    "unity",
    "oneness",
    "silence",
    "gratitude",
    "namaste",
    "bliss",
    "sacred",
    "cosmic",
    "🌀",
    "🙏",
    "✨",
    "💫",
    "🌌",
    "🕉",
    "☯",
    "♾",
    "∞",
)


@dataclass
class MessageMetrics:
    """Numbers describing one message in the context of the run so far."""

    index: int  # 1-based, the opener is message 1
    speaker: str
    words: int  # words as `text.words` counts them: emoji and punctuation are not words
    chars: int  # characters of the content as produced
    novelty: float | None  # share of its word n-grams never seen earlier; None if too short
    lag1_similarity: float | None  # char n-gram overlap with the previous message
    lag2_similarity: float | None  # ... with the message two before
    compression_ratio: float  # raw / zlib-compressed bytes of the recent conversation text
    non_alnum_share: float  # share of non-space characters that are not letters or digits
    emoji_share: float  # share of non-space characters that are emoji
    lexicon_hits: dict[str, int] = field(default_factory=dict)  # only terms that occur


class Lexicon:
    """Counts the terms of a lexicon in a message.

    Word terms match whole words only ("love" not in "lovely"); other terms
    (emoji, symbols) match anywhere. Matching is casefolded, after NFKC.
    """

    def __init__(self, terms: Iterable[str]) -> None:
        # Terms are compared in the same form as the text (NFKC, casefolded).
        self.terms = tuple(dict.fromkeys(unicodedata.normalize("NFKC", t).casefold() for t in terms if t))
        self._patterns = [
            (term, re.compile(rf"(?<!\w){re.escape(term)}(?!\w)") if _is_wordlike(term) else None)
            for term in self.terms
        ]

    def count(self, cleaned: str) -> dict[str, int]:
        """Hits per term in a text already passed through `text.clean`."""
        hits = {}
        for term, pattern in self._patterns:
            if term not in cleaned:  # a substring test first: most terms are in no message
                continue
            n = len(pattern.findall(cleaned)) if pattern else cleaned.count(term)
            if n:
                hits[term] = n
        return hits


def _is_wordlike(term: str) -> bool:
    return term[0].isalnum() or term[-1].isalnum()


class MetricsTracker:
    """Computes `MessageMetrics` incrementally, one `observe` call per message.

    Memory per call is bounded by the windows (two earlier n-gram sets, the
    last `compression_window` bytes of text), except for the set of word
    n-grams seen so far, which novelty needs by definition.
    """

    def __init__(
        self,
        lexicon: Iterable[str] = DEFAULT_LEXICON,
        end_marker: str | None = "[END]",
        char_ngram: int = 5,
        word_ngram: int = 3,
        compression_window: int = 2048,
    ) -> None:
        self.lexicon = Lexicon(lexicon)
        self.end_marker = end_marker
        self.char_ngram = char_ngram
        self.word_ngram = word_ngram
        self.compression_window = compression_window
        self._count = 0
        self._seen_ngrams: set[tuple[str, ...]] = set()
        self._previous_grams: deque[frozenset[str]] = deque(maxlen=2)
        self._recent_text = b""

    def observe(self, speaker: str, content: str, grams: frozenset[str] | None = None) -> MessageMetrics:
        """The metrics of the next message. `grams`: its character n-gram set when already known
        (`char_ngrams(normalize(content, end_marker), char_ngram)`), else computed here."""
        self._count += 1
        cleaned = clean(content, self.end_marker)

        tokens = words(content, self.end_marker)
        ngrams = set(word_ngrams(tokens, self.word_ngram))
        novelty = len(ngrams - self._seen_ngrams) / len(ngrams) if ngrams else None
        self._seen_ngrams |= ngrams

        if grams is None:
            grams = char_ngrams(normalize(content, self.end_marker), self.char_ngram)
        previous = self._previous_grams
        lag1 = overlap(grams, previous[-1]) if len(previous) >= 1 else None
        lag2 = overlap(grams, previous[-2]) if len(previous) >= 2 else None
        previous.append(grams)

        # The conversation as one text, messages separated by newlines; only the
        # tail matters, so a loop shows up as soon as it fills the window.
        joined = self._recent_text + (b"\n" if self._count > 1 else b"") + content.encode("utf-8")
        self._recent_text = joined[-self.compression_window :]
        compression = len(self._recent_text) / len(zlib.compress(self._recent_text, 9))

        # Characters other than whitespace and U+FE0F; of those, not letters or digits; emoji.
        visible, non_alnum, emoji = char_shares(cleaned)

        return MessageMetrics(
            index=self._count,
            speaker=speaker,
            words=len(tokens),
            chars=len(content),
            novelty=novelty,
            lag1_similarity=lag1,
            lag2_similarity=lag2,
            compression_ratio=compression,
            non_alnum_share=non_alnum / visible if visible else 0.0,
            emoji_share=emoji / visible if visible else 0.0,
            lexicon_hits=self.lexicon.count(cleaned),
        )


def compute_metrics(
    messages: Sequence[tuple[str, str]],
    lexicon: Iterable[str] = DEFAULT_LEXICON,
    end_marker: str | None = "[END]",
    char_ngram: int = 5,
    word_ngram: int = 3,
    compression_window: int = 2048,
    *,
    grams: Sequence[frozenset[str]] | None = None,
) -> list[MessageMetrics]:
    """Metrics for every (speaker, content) message of a transcript, in order. `grams`: the
    messages' character n-gram sets when already known (see `MetricsTracker.observe`)."""
    tracker = MetricsTracker(lexicon, end_marker, char_ngram, word_ngram, compression_window)
    if grams is None:
        return [tracker.observe(speaker, content) for speaker, content in messages]
    return [tracker.observe(s, c, g) for (s, c), g in zip(messages, grams, strict=True)]
