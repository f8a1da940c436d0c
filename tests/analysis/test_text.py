"""Normalising and n-grams: the ground every detector stands on."""

from duologue.analysis.text import (
    SILENCE,
    char_ngrams,
    embedding_text,
    is_emoji,
    normalize,
    overlap,
    word_ngrams,
    words,
)


def test_normalize_collapses_whitespace_and_casefolds():
    assert normalize("  Hello,\n\n  World!  ") == "hello, world!"
    assert normalize("STRASSE") == normalize("Straße")


def test_normalize_applies_nfkc():
    # Fullwidth letters and the "ﬁ" ligature are compatibility forms of plain ASCII.
    assert normalize("Ｈｅｌｌｏ ﬁne") == "hello fine"


def test_normalize_drops_zero_width_characters():
    hidden = "Good\u200bbye\u200c \u200dfor\u200e now\u200f\ufeff"
    assert normalize(hidden) == "goodbye for now"


def test_normalize_drops_the_end_marker():
    assert normalize("Goodbye. [END]") == "goodbye."
    assert normalize("Goodbye.\n\n[END]\n") == "goodbye."
    # The marker is replaced by a space, so the words around it stay apart.
    assert normalize("bye[END]now") == "bye now"


def test_normalize_with_another_or_no_end_marker():
    assert normalize("Bye <<STOP>>", end_marker="<<STOP>>") == "bye"
    assert normalize("Bye [END]", end_marker=None) == "bye [end]"


def test_empty_messages_are_silence():
    for empty in ["", " ", "\n\n", "[END]", " \u200b\ufeff [END] \n"]:
        assert normalize(empty) == SILENCE == "<silence>"


def test_char_ngrams():
    assert char_ngrams("abcdef", 5) == {"abcde", "bcdef"}
    assert char_ngrams("abcde", 5) == {"abcde"}
    # Shorter than n: the whole string is its only gram, so "ok" still equals "ok".
    assert char_ngrams("ok", 5) == {"ok"}
    assert char_ngrams("", 5) == frozenset()
    assert isinstance(char_ngrams("abcdef"), frozenset)


def test_overlap_coefficient():
    a = frozenset({"x", "y", "z", "w"})
    b = frozenset({"x", "y"})
    assert overlap(a, b) == 1.0  # |A∩B| / min(|A|, |B|): a quoted part counts fully
    assert overlap(a, frozenset({"x", "q"})) == 0.5
    assert overlap(a, frozenset({"x", "q"})) == overlap(frozenset({"x", "q"}), a)
    assert overlap(a, frozenset()) == 0.0
    assert overlap(frozenset(), frozenset()) == 0.0


def test_words_skip_punctuation_emoji_and_the_end_marker():
    assert words("Don't stop — we're DANCING! 🌀✨ [END]") == ["don't", "stop", "we're", "dancing"]
    assert words("🙏🙏") == []
    assert words("") == []


def test_word_ngrams():
    tokens = ["a", "b", "c", "d"]
    assert word_ngrams(tokens, 3) == [("a", "b", "c"), ("b", "c", "d")]
    assert word_ngrams(tokens[:2], 3) == []
    assert word_ngrams(tokens, 1) == [("a",), ("b",), ("c",), ("d",)]


def test_is_emoji():
    for ch in "🌀🙏✨🌙💫☯♾⭐❤":
        assert is_emoji(ch), ch
    for ch in "a1.,—∞é":
        assert not is_emoji(ch), ch


# -- embedding_text: the prose a message is embedded as (markup written for these tests) -------------------

WRAPPED = """operator@lab-box:~/garden$ ./greenhouse --status
```
+--------------------------+
|  GREENHOUSE MONITOR v2   |
+--------------------------+
```
[Reading sensors...]
<aside>
The tomatoes by the north wall are ripening early this year, and the basil needs water.
</aside>
╔════════════╗
║ ALL SYSTEMS NOMINAL ║
╚════════════╝
> water basil
=========================
operator@lab-box:~/garden$"""


def test_embedding_text_keeps_the_prose_and_drops_the_markup():
    # A framed line with words keeps them (its two bars are not art enough); box-drawing characters go.
    prose = embedding_text(WRAPPED)
    assert (
        prose.split()
        == (
            "./greenhouse --status |  GREENHOUSE MONITOR v2   | "
            "The tomatoes by the north wall are ripening early this year, "
            "and the basil needs water. ALL SYSTEMS NOMINAL"
        ).split()
    )


def test_embedding_text_keeps_a_message_without_markup_exactly():
    for text in [
        "Plain prose.\n\n  Indented second paragraph, with (parentheses) and a * star.",
        "one field\nmany forms\n∞",
        "*sits quietly* ... 🙏 ✨",
        "The ratio is 3/4 and x > y, not x < y.",
        "",
    ]:
        assert embedding_text(text) == text


def test_embedding_text_keeps_fenced_lines_and_drops_their_fences():
    text = "Try this:\n```python\nfor leaf in tree:\n    prune(leaf)\n```\nThat should do it."
    assert embedding_text(text) == "Try this:\nfor leaf in tree:\n    prune(leaf)\nThat should do it."


def test_embedding_text_drops_the_tags_not_what_they_enclose():
    assert embedding_text("<note>Thank you, truly.</note>") == "Thank you, truly."
    assert embedding_text("Quiet now. ~~~~~~ Still.") == "Quiet now.   Still."


def test_embedding_text_of_a_message_that_is_all_markup_is_the_message():
    for text in ["```\n```", "<pause>", "[...]", "+----+\n|####|\n+----+", "host@box:~/$"]:
        assert embedding_text(text) == text
