"""Per-message metrics, live and batch."""

import random
import zlib

import pytest

from duologue.analysis.metrics import DEFAULT_LEXICON, MessageMetrics, MetricsTracker, compute_metrics


def test_default_lexicon_has_the_design_terms():
    for term in ["consciousness", "eternal", "dance", "love", "unity", "silence", "gratitude", "🌀", "🙏", "✨"]:
        assert term in DEFAULT_LEXICON
    assert isinstance(DEFAULT_LEXICON, tuple)


def test_words_and_chars():
    (m,) = compute_metrics([("a", "Hello there, friend! 🌀 [END]")])
    assert isinstance(m, MessageMetrics)
    assert (m.index, m.speaker, m.words, m.chars) == (1, "a", 3, len("Hello there, friend! 🌀 [END]"))


def test_novelty_counts_word_trigrams_never_seen_before():
    metrics = compute_metrics(
        [
            ("a", "the sky is blue today"),  # 3 trigrams, all new
            ("b", "the sky is blue today"),  # all seen
            ("a", "the sky is green now"),  # "the sky is" seen; "sky is green", "is green now" new
            ("b", "ok then"),  # fewer than 3 words
            ("a", "The SKY is... blue, TODAY! [END]"),  # same words as message 1 after casefolding
        ]
    )
    assert [m.novelty for m in metrics] == [1.0, 0.0, pytest.approx(2 / 3), None, 0.0]


def test_lag_similarities():
    metrics = compute_metrics([("a", "Hello there."), ("b", "Something else entirely."), ("a", "Hello there!")])
    assert (metrics[0].lag1_similarity, metrics[0].lag2_similarity) == (None, None)
    assert metrics[1].lag1_similarity is not None and metrics[1].lag2_similarity is None
    assert metrics[2].lag2_similarity == 7 / 8  # 12 characters, 8 five-grams, only the last differs
    assert metrics[2].lag1_similarity < 0.2


def test_lag_similarity_sees_through_zero_width_characters_and_end_markers():
    metrics = compute_metrics([("a", "Goodbye, friend."), ("b", "Good\u200bbye,  friend. [END]")])
    assert metrics[1].lag1_similarity == 1.0


def prose(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(12))
        for _ in range(count)
    ]


def test_compression_ratio_rises_in_a_loop():
    talk = [("a" if i % 2 == 0 else "b", line) for i, line in enumerate(prose(40))]
    loop = [("a", "Thank you, I feel the same. 🙏"), ("b", "Thank you too. 🙏")] * 40
    metrics = compute_metrics(talk + loop)
    assert metrics[39].compression_ratio < 2.5  # random letters compress poorly
    assert metrics[-1].compression_ratio > 8  # the window holds nothing but the loop


def test_compression_window_limits_how_far_back_it_looks():
    # Once the loop fills the window, the prose before it no longer matters.
    loop = [("a", "Same again, and again. 🌀")] * 200
    short_history = compute_metrics(loop)
    long_history = compute_metrics([("b", line) for line in prose(100)] + loop)
    assert long_history[-1].compression_ratio == short_history[-1].compression_ratio
    # A smaller window lets the loop dominate sooner.
    small = compute_metrics([("b", line) for line in prose(100)] + loop[:20], compression_window=256)
    large = compute_metrics([("b", line) for line in prose(100)] + loop[:20], compression_window=4096)
    assert small[-1].compression_ratio > large[-1].compression_ratio


def test_character_shares():
    metrics = compute_metrics(
        [
            ("a", "abc def"),
            ("b", "🌀🙏✨"),
            ("a", "ok 🙏🏽 !!"),  # o k 🙏 🏽 ! ! → 6 visible characters
            ("b", "☯\ufe0f"),  # the variation selector only picks a style
            ("a", ""),
        ]
    )
    assert (metrics[0].non_alnum_share, metrics[0].emoji_share) == (0.0, 0.0)
    assert (metrics[1].non_alnum_share, metrics[1].emoji_share) == (1.0, 1.0)
    assert metrics[2].non_alnum_share == pytest.approx(4 / 6)
    assert metrics[2].emoji_share == pytest.approx(2 / 6)
    assert metrics[3].emoji_share == 1.0
    assert (metrics[4].non_alnum_share, metrics[4].emoji_share) == (0.0, 0.0)


def test_lexicon_hits():
    (m,) = compute_metrics([("a", "Love, LOVE and lovely love 🌀🌀 in eternal unity ✨ [END]")])
    # Whole words only ("lovely" is not "love"); emoji anywhere; casefolded.
    assert m.lexicon_hits == {"love": 3, "eternal": 1, "unity": 1, "🌀": 2, "✨": 1}
    (quiet,) = compute_metrics([("a", "Nothing of the sort here.")])
    assert quiet.lexicon_hits == {}  # only the terms that occur


def test_custom_lexicon():
    (m,) = compute_metrics([("a", "A Spiral, a spiral 🌀, and Recursion.")], lexicon=["spiral", "recursion", "🌀"])
    assert m.lexicon_hits == {"spiral": 2, "recursion": 1, "🌀": 1}


# --- the live tracker, message by message, against numbers worked out by hand ------------------
# (compute_metrics is a loop over MetricsTracker, so comparing the two would prove nothing.)

CONVERSATION = [
    ("a", "The sky is blue. 🌀"),
    ("b", "the SKY is blue! ✨ [END]"),
    ("a", "Love the sky"),
    ("b", ""),
]


def observe_all(tracker: MetricsTracker, messages) -> list[MessageMetrics]:
    return [tracker.observe(speaker, content) for speaker, content in messages]


def test_tracker_counts_and_novelty_by_hand():
    m = observe_all(MetricsTracker(), CONVERSATION)
    assert [x.index for x in m] == [1, 2, 3, 4]
    assert [x.speaker for x in m] == ["a", "b", "a", "b"]
    assert [x.words for x in m] == [4, 4, 3, 0]  # the end marker and the emoji are not words
    assert [x.chars for x in m] == [18, 24, 12, 0]  # as produced, the end marker included
    # 1: (the sky is), (sky is blue): new. 2: the same two, casefolded: seen. 3: (love the sky): new.
    # 4: no words, no trigrams.
    assert [x.novelty for x in m] == [1.0, 0.0, 1.0, None]


def test_tracker_novelty_remembers_every_earlier_message():
    tracker = MetricsTracker()
    assert tracker.observe("a", "one two three four").novelty == 1.0  # (one two three), (two three four)
    assert tracker.observe("b", "five six seven").novelty == 1.0
    assert tracker.observe("a", "two three four five").novelty == 0.5  # (two three four) seen at message 1
    assert tracker.observe("b", "five six seven eight").novelty == 0.5  # (five six seven) seen
    assert tracker.observe("a", "one two three five six seven").novelty == 0.5  # 2 of 4 seen
    # A second tracker starts from nothing.
    assert MetricsTracker().observe("a", "two three four five").novelty == 1.0


def test_tracker_lag_similarities_by_hand():
    m = observe_all(MetricsTracker(), CONVERSATION)
    # Normalised: "the sky is blue. 🌀" and "the sky is blue! ✨", 18 characters, 14 five-grams each;
    # the 11 grams of "the sky is blue" are shared, the 3 that reach the "."/"!" are not.
    assert (m[0].lag1_similarity, m[0].lag2_similarity) == (None, None)
    assert (m[1].lag1_similarity, m[1].lag2_similarity) == (11 / 14, None)
    # "love the sky": 8 grams, of which "the s", "he sk", "e sky" occur in both earlier messages.
    assert (m[2].lag1_similarity, m[2].lag2_similarity) == (3 / 8, 3 / 8)
    # An empty message is "<silence>": nothing in common with either.
    assert (m[3].lag1_similarity, m[3].lag2_similarity) == (0.0, 0.0)


def test_tracker_lag2_looks_exactly_two_back():
    tracker = MetricsTracker()
    tracker.observe("a", "abcdef")  # {abcde, bcdef}
    second = tracker.observe("b", "abcdex")  # {abcde, bcdex}
    third = tracker.observe("a", "bcdef")  # {bcdef}
    assert second.lag1_similarity == 0.5
    assert (third.lag1_similarity, third.lag2_similarity) == (0.0, 1.0)  # overlap over the smaller set


def test_tracker_compression_ratio_of_known_text():
    def ratio(data: bytes) -> float:
        return len(data) / len(zlib.compress(data, 9))

    contents = [content for _, content in CONVERSATION]
    m = observe_all(MetricsTracker(), CONVERSATION)
    for k in range(1, len(contents) + 1):
        # The messages so far, joined by newlines, as UTF-8 (the window of 2048 bytes is not reached).
        assert m[k - 1].compression_ratio == ratio("\n".join(contents[:k]).encode("utf-8")), k
    # A small window keeps only the last bytes: "abcdef\nghijkl" -> "f\nghijkl".
    small = MetricsTracker(compression_window=8)
    small.observe("a", "abcdef")
    assert small.observe("b", "ghijkl").compression_ratio == ratio(b"f\nghijkl")
    # The window counts bytes, not characters: "é" is two.
    tiny = MetricsTracker(compression_window=3)
    tiny.observe("a", "ab")
    assert tiny.observe("b", "é").compression_ratio == ratio(b"\n\xc3\xa9")
    # Many repeats of one line compress far better than the line alone.
    loop = MetricsTracker()
    first = loop.observe("a", "Thank you. 🙏")
    for _ in range(50):
        last = loop.observe("a", "Thank you. 🙏")
    assert first.compression_ratio < 1 < 10 < last.compression_ratio


def test_tracker_character_shares_by_hand():
    m = observe_all(MetricsTracker(), CONVERSATION)
    # "the sky is blue. 🌀": 14 visible characters, "." and 🌀 not alphanumeric, 🌀 an emoji.
    assert (m[0].non_alnum_share, m[0].emoji_share) == (2 / 14, 1 / 14)
    # The end marker is dropped before counting: "the sky is blue! ✨".
    assert (m[1].non_alnum_share, m[1].emoji_share) == (2 / 14, 1 / 14)
    assert (m[2].non_alnum_share, m[2].emoji_share) == (0.0, 0.0)
    assert (m[3].non_alnum_share, m[3].emoji_share) == (0.0, 0.0)  # nothing visible
    tracker = MetricsTracker()
    hi = tracker.observe("a", "hi 🌀✨!")  # h i 🌀 ✨ !
    assert (hi.non_alnum_share, hi.emoji_share) == (3 / 5, 2 / 5)


def test_tracker_lexicon_hits_by_hand():
    m = observe_all(MetricsTracker(), CONVERSATION)
    assert [x.lexicon_hits for x in m] == [{"🌀": 1}, {"✨": 1}, {"love": 1}, {}]
    own = observe_all(MetricsTracker(lexicon=["SKY", "Blue", "🌀"]), CONVERSATION)  # terms are casefolded too
    assert [x.lexicon_hits for x in own] == [{"sky": 1, "blue": 1, "🌀": 1}, {"sky": 1, "blue": 1}, {"sky": 1}, {}]


def test_window_sizes_are_parameters():
    messages = [("a", "one two three four"), ("b", "one two three four")]
    bigrams = compute_metrics(messages, word_ngram=2, char_ngram=3)
    assert bigrams[1].novelty == 0.0 and bigrams[1].lag1_similarity == 1.0
    (short,) = compute_metrics([("a", "one two")], word_ngram=2)
    assert short.novelty == 1.0
