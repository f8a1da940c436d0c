"""The message × message similarity of a transcript, computed with numpy rather than pair by pair.

The similarity of two messages is the overlap coefficient of their character
n-gram sets (`text.overlap`): |A∩B| / min(|A|, |B|). For a whole transcript
the intersections |A∩B| of every pair are counted at once from the n-grams'
posting lists (which messages hold each n-gram):

- an n-gram held by many messages (more than `DENSE_AT` of them) becomes a
  column of a 0/1 matrix X, and X·Xᵀ counts those n-grams for every pair in
  one matrix product (float32 counts are exact far beyond any message's size);
- an n-gram held by a few messages adds one to each pair of its posting list
  (a bincount of pair codes);
- an n-gram held by one message counts for nobody else and is skipped.

The counts are integers whatever the route, and each overlap is one division
of two integers, so the matrix is equal, element for element, to the one
`text.overlap` gives pair by pair (tests/analysis/test_scale_equivalence.py checks it).

A heatmap of a long run does not need every pair: it is drawn in a few hundred
pixels. `heatmap_matrix` keeps at most `max_cells` messages per axis (every
k-th one, k = ceil(n / max_cells)); up to that length it is the whole matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .text import char_ngrams, normalize

DENSE_AT = 24  # an n-gram held by more messages than this is counted by the matrix product
HEATMAP_CELLS = 500  # messages per axis of a heatmap at most (about its pixels)


def gram_sets(contents: Sequence[str], ngram: int = 5, end_marker: str | None = "[END]") -> list[frozenset[str]]:
    """Each message's character n-gram set, in the form every detector compares."""
    return [char_ngrams(normalize(c, end_marker), ngram) for c in contents]


def intersection_counts(grams: Sequence[frozenset[str]] | Sequence[set[str]], dense_at: int = DENSE_AT) -> np.ndarray:
    """|A_i ∩ A_j| for every pair of sets (n × n, int64; the diagonal holds each set's size).

    `dense_at`: n-grams held by more messages than this go through the matrix product (any value
    gives the same counts; it only moves work between the two routes)."""
    n = len(grams)
    sizes = np.fromiter((len(g) for g in grams), dtype=np.int64, count=n)
    counts = np.zeros((n, n), dtype=np.int64)
    if n == 0 or not sizes.any():
        return counts
    ids: dict[str, int] = {}
    cols = np.fromiter((ids.setdefault(g, len(ids)) for s in grams for g in s), dtype=np.int64, count=int(sizes.sum()))
    rows = np.repeat(np.arange(n, dtype=np.int64), sizes)
    held_by = np.bincount(cols, minlength=len(ids))

    dense = held_by[cols] > dense_at
    if dense.any():
        dense_ids = np.unique(cols[dense])
        column = np.full(len(ids), -1, dtype=np.int64)
        column[dense_ids] = np.arange(len(dense_ids))
        x = np.zeros((n, len(dense_ids)), dtype=np.float32)
        x[rows[dense], column[cols[dense]]] = 1.0
        counts += np.rint(x @ x.T).astype(np.int64)

    # The rest, n-gram by n-gram: every ordered pair (i, j) of each posting list, self-pairs included.
    sparse = ~dense
    r, c = rows[sparse], cols[sparse]
    order = np.argsort(c, kind="stable")
    r, c = r[order], c[order]
    size = held_by[c]  # length of the posting list each entry belongs to
    first = np.searchsorted(c, c, side="left")  # where that posting list starts
    total = int(size.sum())
    if total:
        a = np.repeat(np.arange(len(r)), size)
        # Each entry e is paired with the entries first[e] .. first[e] + size[e] − 1 of its list.
        offset = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
        b = np.repeat(first, size) + offset
        counts += np.bincount(r[a] * n + r[b], minlength=n * n).reshape(n, n)
    return counts


def overlap_matrix(grams: Sequence[frozenset[str]] | Sequence[set[str]]) -> np.ndarray:
    """The overlap coefficient of every pair of n-gram sets (n × n float64, symmetric).

    Element for element what `text.overlap` gives: 0 when either set is empty,
    so the diagonal is 1 for a message with n-grams and 0 for one without.
    """
    n = len(grams)
    counts = intersection_counts(grams)
    sizes = np.diagonal(counts).copy()
    smaller = np.minimum(sizes[:, None], sizes[None, :])
    out = np.zeros((n, n), dtype=np.float64)
    np.divide(counts, smaller, out=out, where=smaller > 0)
    return out


def heatmap_matrix(
    contents: Sequence[str], ngram: int = 5, end_marker: str | None = "[END]", max_cells: int = HEATMAP_CELLS
) -> tuple[np.ndarray, int]:
    """(matrix, step): the overlaps among messages 1, 1 + step, 1 + 2·step, … with step the smallest
    that keeps at most `max_cells` of them (1 up to `max_cells` messages: the whole matrix)."""
    step = max(1, math.ceil(len(contents) / max_cells)) if max_cells > 0 else 1
    return overlap_matrix(gram_sets(contents[::step], ngram, end_marker)), step
