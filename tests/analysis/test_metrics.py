"""Per-message metrics, live and batch."""

import random

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


def test_tracker_matches_batch():
    messages = [("a" if i % 2 else "b", line) for i, line in enumerate(prose(30, seed=3))]
    messages += [("a", "Eternal gratitude 🙏"), ("b", "Eternal gratitude 🙏 [END]")] * 5
    tracker = MetricsTracker()
    live = [tracker.observe(speaker, content) for speaker, content in messages]
    assert live == compute_metrics(messages)
    assert [m.index for m in live] == list(range(1, len(messages) + 1))


def test_window_sizes_are_parameters():
    messages = [("a", "one two three four"), ("b", "one two three four")]
    bigrams = compute_metrics(messages, word_ngram=2, char_ngram=3)
    assert bigrams[1].novelty == 0.0 and bigrams[1].lag1_similarity == 1.0
    (short,) = compute_metrics([("a", "one two")], word_ngram=2)
    assert short.novelty == 1.0
