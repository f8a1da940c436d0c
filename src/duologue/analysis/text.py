"""Normalising messages and cutting them into n-grams.

Every detector compares messages through `normalize`, so two messages that
differ only in what a reader would not notice (Unicode compatibility forms,
zero-width characters, the end marker, spacing, case) count as the same.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

SILENCE = "<silence>"

# U+200B..U+200F (zero-width space, non-joiner, joiner, LRM, RLM) and U+FEFF (BOM):
# invisible, and models sprinkle them in, which would otherwise hide a loop.
_ZERO_WIDTH = re.compile("[\u200b-\u200f\ufeff]")

# A word is a run of letters/digits, with inner apostrophes kept ("don't").
_WORD = re.compile(r"\w+(?:['’]\w+)*")


def clean(text: str, end_marker: str | None = "[END]") -> str:
    """NFKC, without zero-width characters or the end marker, casefolded.

    Whitespace is left alone; `normalize` collapses it.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    if end_marker:
        # A space, not nothing, so "bye[END]now" does not glue two words together.
        text = text.replace(end_marker, " ")
    return text.casefold()


def normalize(text: str, end_marker: str | None = "[END]") -> str:
    """The form in which messages are compared (docs/detectors.md, "Normalising").

    NFKC, zero-width characters and the end marker dropped, whitespace collapsed
    to single spaces, stripped, casefolded; an empty result is ``"<silence>"``
    so that a run of empty replies is a loop like any other.
    """
    collapsed = " ".join(clean(text, end_marker).split())
    return collapsed or SILENCE


def char_ngrams(norm: str, n: int = 5) -> frozenset[str]:
    """The set of character n-grams of an already normalised string.

    A string shorter than n gives the string itself as its only gram, so short
    messages ("ok", "🙏") still compare equal to themselves; "" gives no grams.
    """
    if not norm:
        return frozenset()
    if len(norm) < n:
        return frozenset((norm,))
    return frozenset(norm[i : i + n] for i in range(len(norm) - n + 1))


def overlap(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    """Overlap coefficient |A∩B| / min(|A|, |B|); 0 when either set is empty.

    The minimum, not the union (Jaccard), so a short reply that quotes part of a
    longer one still counts as a repeat.
    """
    if not a or not b:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    return len(a & b) / len(a)


def words(text: str, end_marker: str | None = "[END]") -> list[str]:
    """The words of a message, casefolded; punctuation and emoji are not words."""
    return _WORD.findall(clean(text, end_marker))


def word_ngrams(tokens: Sequence[str], n: int = 3) -> list[tuple[str, ...]]:
    """The word n-grams of a token list, in order (empty when fewer than n words)."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# The characters `is_emoji` counts, as one class, so a whole text is counted in one regex pass.
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff]")
# What `str.isspace` calls whitespace (regex \s in a str pattern is the same test) and the
# emoji variation selector U+FE0F; and a letter or digit (str.isalnum: \w without the underscore).
_INVISIBLE = re.compile("[\\s\ufe0f]")
_ALNUM = re.compile(r"[^\W_]")


def count_emoji(text: str) -> int:
    """How many characters of `text` are emoji (`is_emoji`), in one pass."""
    return len(_EMOJI.findall(text))


def char_shares(text: str) -> tuple[int, int, int]:
    """(visible, not letter or digit, emoji): counts over the characters of `text` that are not
    whitespace and not the variation selector U+FE0F (the same as testing each with `str.isspace`,
    `str.isalnum` and `is_emoji`, in three regex passes)."""
    visible = len(text) - len(_INVISIBLE.findall(text))
    return visible, visible - len(_ALNUM.findall(text)), count_emoji(text)


def is_emoji(ch: str) -> bool:
    """Whether a character is an emoji (by code block; no emoji database needed).

    Covers the pictograph planes (U+1F000..U+1FAFF, flags and skin tones
    included), miscellaneous symbols and dingbats (☯ ♾ ✨ ❤, U+2600..U+27BF)
    and the star/arrow symbols of U+2B00..U+2BFF (⭐). Variation selectors are
    not counted: they only choose how the previous character is drawn.
    """
    cp = ord(ch)
    return 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF
