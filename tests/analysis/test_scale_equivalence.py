"""The fast paths of the analysis against straightforward reference implementations.

`duologue analyze` on long runs counts n-gram overlaps with numpy (similarity.py), counts
characters and lexicon terms with a regex pass or a substring test first, shares the messages'
n-gram sets between the detectors, and reuses the index arrays of a convergence window. Each
must give exactly what the obvious code gives: the references below are that code (the one the
fast paths replaced), and the whole analysis is compared with and without them, on conversations
hypothesis makes up.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duologue.analysis import analysis_to_dict, analyze
from duologue.analysis import convergence as convergence_module
from duologue.analysis import metrics as metrics_module
from duologue.analysis import themes as themes_module
from duologue.analysis.loops import LoopParams, detect_near_loop, near_duplicates
from duologue.analysis.metrics import Lexicon, compute_metrics
from duologue.analysis.report import metrics_to_dict
from duologue.analysis.similarity import gram_sets, heatmap_matrix, intersection_counts, overlap_matrix
from duologue.analysis.text import char_ngrams, char_shares, count_emoji, is_emoji, normalize, overlap

# Few words, so messages share many n-grams (both routes of intersection_counts get work); lexicon
# terms and theme words ("love", "gratitude", "thank you", "namaste"), emoji with and without
# variation selectors, odd whitespace, an underscore, the end marker.
WORDS = ["the", "sky", "is", "blue", "love", "lovely", "gratitude", "thank you", "namaste", "unity", "🙏", "✨",
         "❤\ufe0f", "🌀🌀", "ok.", "why?", "über", "東京", "\u00a0", "\u2003", "a_b", "42", "[END]", "silence",
         "we are one", "infinite", "—", "dance"]  # fmt: skip
messages = st.lists(st.sampled_from(WORDS), min_size=0, max_size=10).map(" ".join)
conversations = st.lists(messages, min_size=0, max_size=40)


def reference_overlap_matrix(contents: list[str], ngram: int = 5) -> np.ndarray:
    """The similarity matrix as it was computed before: pair by pair, with `text.overlap`."""
    grams = [char_ngrams(normalize(c), ngram) for c in contents]
    n = len(grams)
    matrix = np.zeros((n, n), dtype=float)
    for i in range(n):
        matrix[i, i] = 1.0 if grams[i] else 0.0
        for j in range(i):
            matrix[i, j] = matrix[j, i] = overlap(grams[i], grams[j])
    return matrix


@settings(max_examples=150, deadline=None)
@given(conversations, st.sampled_from([0, 1, 2, 5, 24, 10_000]), st.sampled_from([1, 3, 5]))
def test_overlap_matrix_equals_the_pairwise_overlaps(contents, dense_at, ngram):
    grams = [char_ngrams(normalize(c), ngram) for c in contents]
    counts = intersection_counts(grams, dense_at=dense_at)
    expected = np.array([[len(a & b) for b in grams] for a in grams], dtype=np.int64).reshape(len(grams), len(grams))
    assert np.array_equal(counts, expected)
    assert np.array_equal(overlap_matrix(grams), reference_overlap_matrix(contents, ngram))


@settings(max_examples=60, deadline=None)
@given(conversations, st.integers(1, 12))
def test_the_heatmap_keeps_every_step_th_message_with_their_exact_overlaps(contents, max_cells):
    matrix, step = heatmap_matrix(contents, max_cells=max_cells)
    assert step == max(1, -(-len(contents) // max_cells))  # the smallest step that fits
    assert len(matrix) == len(contents[::step]) <= max_cells
    assert np.array_equal(matrix, reference_overlap_matrix(contents[::step]))


def test_many_messages_sharing_n_grams_go_through_both_routes():
    # 300 messages, "the sky is blue" in all of them (dense columns) and a word of their own.
    contents = [f"the sky is blue, said number {i} {'again' if i % 7 == 0 else ''}" for i in range(300)]
    assert np.array_equal(overlap_matrix(gram_sets(contents)), reference_overlap_matrix(contents))


def reference_char_shares(text: str) -> tuple[int, int, int]:
    visible = [ch for ch in text if not ch.isspace() and ch != "\ufe0f"]
    return len(visible), sum(1 for ch in visible if not ch.isalnum()), sum(1 for ch in visible if is_emoji(ch))


@settings(max_examples=300, deadline=None)
@given(st.text() | messages)
def test_character_counts_equal_the_per_character_tests(text):
    assert char_shares(text) == reference_char_shares(text)
    assert count_emoji(text) == sum(1 for c in text if is_emoji(c))


def test_character_counts_agree_on_every_code_point():
    # One string holding every code point (surrogates excepted): the classes match str.isspace,
    # str.isalnum and is_emoji everywhere, not only where hypothesis looked.
    text = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    assert char_shares(text) == reference_char_shares(text)


def reference_lexicon_count(self: Lexicon, cleaned: str) -> dict[str, int]:
    hits = {}
    for term, pattern in self._patterns:
        n = len(pattern.findall(cleaned)) if pattern else cleaned.count(term)
        if n:
            hits[term] = n
    return hits


def reference_scores(self, content, vector):
    """ThemeScorer.scores without the substring test in front of each lexicon's pattern: each theme's whole
    lexicon as one pattern, every match counted."""
    out = np.zeros(len(self.phrase_themes), dtype=np.float64)
    if not len(self._phrases) or not np.any(vector):
        return out
    sims = self._phrases @ vector.astype(np.float32)
    bounds = [*self._starts.tolist(), len(sims)]
    for i in range(len(self.phrase_themes)):
        out[i] = float(sims[bounds[i] : bounds[i + 1]].max())
    text = content.casefold()
    for i, pattern in enumerate(themes_module._lexicon_pattern(t.lexicon) for t in self.phrase_themes):
        if pattern is not None:
            out[i] += self.params.lexicon_weight * min(1.0, sum(1 for _ in pattern.finditer(text)) / 3)
    return out


def reference_window_stats(vectors, window_similarity=1.0):
    """convergence.window_stats as first written (index arrays built on every call)."""
    v = np.asarray(vectors, dtype=np.float64)
    k = len(v)
    gram = v @ v.T
    best = None
    for step in (1, 2):
        if k <= step:
            continue
        i, j = np.triu_indices(k, 1)
        keep = (j - i) % step == 0
        windowed = float(gram[i[keep], j[keep]].mean())
        consecutive = float(np.diagonal(gram, step).mean())
        if best is None or min(windowed, consecutive) > min(best[0], best[1]):
            lead = 0
            while lead < k - 1 - step and float(gram[lead, lead + step :: step].mean()) < window_similarity:
                lead += 1
            best = (windowed, consecutive, lead)
    return best


def reference_analysis(speakers, contents):
    with (
        mock.patch.object(metrics_module, "char_shares", reference_char_shares),
        mock.patch.object(Lexicon, "count", reference_lexicon_count),
        mock.patch.object(themes_module.ThemeScorer, "scores", reference_scores),
        mock.patch.object(themes_module, "count_emoji", lambda text: sum(1 for c in text if is_emoji(c))),
        mock.patch.object(convergence_module, "window_stats", reference_window_stats),
    ):
        return analyze(speakers, contents)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations.filter(bool), st.data())
def test_the_whole_analysis_equals_the_reference(contents, data):
    # Drift into repetition half way through, as long runs do, so the loop and theme rules fire too.
    tail = data.draw(st.lists(st.sampled_from(contents), max_size=20))
    contents = contents + tail + tail[-2:] * 4
    speakers = ["a", "b"] * (len(contents) // 2) + ["a"] * (len(contents) % 2)
    fast = analysis_to_dict(analyze(speakers, contents))
    assert fast == analysis_to_dict(reference_analysis(speakers, contents))


@settings(max_examples=80, deadline=None)
@given(conversations)
def test_shared_n_gram_sets_change_nothing(contents):
    params = LoopParams()
    grams = gram_sets(contents, params.ngram)
    assert near_duplicates(contents, params, grams=grams) == near_duplicates(contents, params)
    assert detect_near_loop(contents, params, grams=grams) == detect_near_loop(contents, params)
    pairs = [("a", c) for c in contents]
    metrics = compute_metrics(pairs, grams=grams)
    assert metrics == compute_metrics(pairs)
    # The JSON's rows, without dataclasses.asdict, are what asdict gives.
    assert [metrics_to_dict(m) for m in metrics] == [dataclasses.asdict(m) for m in metrics]


def test_the_reference_can_tell_a_difference():
    # The comparison above is not vacuous: a one-character change in the counting shows.
    contents = ["love 🙏 and gratitude", "thank you, namaste 🙏", "love 🙏 and gratitude"] * 4
    speakers = ["a", "b"] * 6
    fast = analysis_to_dict(analyze(speakers, contents))
    with mock.patch.object(metrics_module, "char_shares", lambda text: reference_char_shares(text + "!")):
        assert analysis_to_dict(analyze(speakers, contents))["metrics"] != fast["metrics"]
