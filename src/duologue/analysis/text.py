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


# -- what a message's embedding is made of ------------------------------------------------------------
# Simulator-style logs (a shell the other model "runs") wrap their prose in markup that carries no meaning
# for a theme but weighs on a mean-pooled vector: prompts, fences, tags, drawn boxes. `embedding_text` drops it.

_FENCE = re.compile(r"^\s*(?:```|~~~)")  # a code fence line (its language too); the lines inside are kept
_PROMPT = re.compile(r"[\w.-]+@[\w.-]+:[^\s$#]*\s?[$#>]")  # a shell prompt: user@host:~/path$
_TAG = re.compile(r"</?[A-Za-z_][\w:.-]{0,40}(?:\s[^<>]{0,80})?/?>")  # <tag>, </tag>, <tag attr=…/>: the tag only
_BRACKET_LINE = re.compile(r"^\s*\[[^\[\]]*\]\s*$")  # a line that is one [status] and nothing else
_COMMAND_LINE = re.compile(r"^\s*>\s*\S+(?:\s+\S+){0,3}\s*$")  # "> look around": a typed command of 1-4 words
_BOX = re.compile("[\u2500-\u259f]")  # box drawing and block elements
_ART = re.compile(r"[\u2500-\u259f|/\\_=+#~^<>\[\]{}()*-]")  # what ASCII art and drawn frames are made of
_RUN = re.compile(r"([^\w\s])\1{3,}")  # four or more of one punctuation mark: ==== ---- ....
_LETTER = re.compile(r"[^\W\d_]")


def embedding_text(text: str) -> str:
    """The prose of a message, what its embedding is computed from: the message without code-fence lines
    (the lines between them stay), shell prompts (`user@host:~/$`), XML-style tags (`<OOC>`, `</cmd>`:
    the tags, not what they enclose), lines that are one `[bracketed status]` or a `> typed command` of up
    to four words, lines of ASCII art or drawn boxes (at least three of ``|/\\_=+#~^<>[]{}()*-`` or
    box-drawing characters, and no more letters than those), box-drawing characters elsewhere, and runs of
    four or more of one punctuation mark. A line nothing is taken from is kept exactly as it is, so a
    message without markup is embedded unchanged; a message that is all markup is embedded whole.

    The rule detectors (silence, emoji, verbatim loops) and the lexicons still see the message itself."""
    kept: list[str] = []
    changed = False
    for line in text.splitlines():
        if _FENCE.match(line):
            changed = True
            continue
        new = _TAG.sub(" ", _PROMPT.sub(" ", line)) if ("@" in line or "<" in line) else line
        if _BRACKET_LINE.match(new) or _COMMAND_LINE.match(new):
            changed = True
            continue
        art = len(_ART.findall(new))
        if art >= 3 and art >= len(_LETTER.findall(new)):
            changed = True
            continue
        new = _RUN.sub(" ", _BOX.sub(" ", new))
        if new != line:
            changed = True
            new = new.strip()
            if not new:
                continue
        kept.append(new)
    if not changed:
        return text
    prose = "\n".join(kept)
    return prose if prose.strip() else text
