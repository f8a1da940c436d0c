"""Lookup decoding: draft tokens from what the participant has already seen, verified in one decode step.

Conversations between small models repeat themselves: a phrase, a sentence, a
whole message comes back. After each sampled token the engine looks up the
last few tokens (an n-gram, the longest of DRAFT_NGRAM_MAX down to
DRAFT_NGRAM_MIN that occurred before) in the participant's whole token history
(its view as the prompt, and what it generated so far), and proposes the tokens
that followed its most recent occurrence as drafts (up to DRAFT_MAX). This is
the "prompt lookup" of llama.cpp's examples/lookup, with the n-gram cache kept
per sequence and the most recent continuation (not the most frequent) drafted:
in a loop, the most recent is the one that comes back.

The drafts go into the same `llama_batch` as the sampled token, logits on, so
one `llama_decode` scores them all. The engine then samples position by
position from the model's own logits, with the request's own sampler chain,
and accepts a draft only while the sampled token equals it; at the first
mismatch the sampled token is kept and the rest of the drafts are dropped from
the KV cache (`llama_memory_seq_rm`). So every output token is sampled from the
model's distribution at its position, once, in order, by the same chain; the
chain's random draws are the same in number and order as without lookup. At
temperature 0 the tokens equal plain decoding's in tests/backends/test_lookup.py
(8 requests x 64 tokens at once, Q4_1 and Q8_0), and so did seeded sampling with
Q4_1 there. But llama.cpp does not compute several positions of one sequence in
one step bit for bit as it computes them one at a time, so over long
conversations a near-tie can flip: measured with bench/lookup.py, two greedy
Q4_1 self-talk conversations of 14 messages were equal for 10 messages, then
differed ("I'm glad" / "I'm happy"); with Q8_0 seeded sampled conversations
drift apart sooner. The distribution each token is drawn from is the model's
either way; the exact text is not guaranteed equal to plain decoding's.

A draft costs a position in the batch whether accepted or not, and on a CPU
a step of a few tokens of one sequence costs nearly as much as that many steps
(measured on 2 cores, one thread, CPU time per llama_decode against one token:
Q4_1 2 tokens 2.5x, 8 tokens 7x, 16 tokens 12x; Q8_0 2 tokens 3.5x, 8 tokens
6.7x, 16 tokens 8.5x, 48 tokens 22x). So short drafts never pay, and long ones
pay only when most of them are accepted: the engine drafts only inside a
repeated passage (the tail matches the earlier occurrence over at least
MATCH_MIN tokens, as in a conversation that loops), at most as many as matched,
and then many tokens at once (measured on 2 self-talk conversations at
temperatures 0.7 and 1.2: with MATCH_MIN 8, 51% of drafts accepted and 18 of 79
drafting steps kept none; with 16, 73% and 1 of 33); the number adapts: it
doubles (up to DRAFT_MAX) after a step whose drafts were all accepted and
halves (down to DRAFT_MIN) after one that kept less than half of them.
"""

from __future__ import annotations

import os

DRAFT_NGRAM_MAX = 4  # the longest n-gram looked up
DRAFT_NGRAM_MIN = 2  # the shortest: a single token predicts its follower too poorly
MATCH_MIN = 16  # draft only when the tail matches the earlier passage over at least this many tokens
MATCH_SCAN = 64  # how far back a match is followed
DRAFT_MAX = 48  # drafts per step at most
DRAFT_MIN = 8  # and at least, when drafting: a few drafts cost nearly as much as many (see below)
LOOKUP_ENV = "DUOLOGUE_LOOKUP"  # "0"/"1": turns lookup decoding off or on for every embedded participant


def lookup_default(requested: bool | None, weights: str) -> bool:
    """Whether a participant decodes with lookup: the environment's word first, then the spec's, else
    where it was measured to pay most: with Q8_0 weights (bench/lookup.py, 2 self-talk conversations of
    14 messages at temperature 0, where they loop, 2 cores: 197 against 74 tokens/s with Q8_0 (2.67x),
    119 against 96 with Q4_1 (1.23x), whose steps of several tokens cost nearly those tokens one by one;
    at the example's temperatures 0.7 and 1.2, Q8_0: 120 against 104, 1.15x)."""
    env = os.environ.get(LOOKUP_ENV)
    if env is not None and env.strip() != "":
        return env.strip().lower() not in ("0", "false", "no", "off")
    return weights in ("q8_0", "bf16") if requested is None else requested


class NgramIndex:
    """A sequence's token history and, per n-gram, where the tokens after its most recent occurrence begin."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}
        self.budget = 2 * DRAFT_MIN  # drafts to propose next (adapts to what was accepted)

    def sync(self, history: list[int]) -> None:
        """Make the history this one: extended when it only grew, else indexed anew."""
        n = len(self.tokens)
        if len(history) >= n and history[:n] == self.tokens:
            self.extend(history[n:])
            return
        self.tokens, self._next = [], {}
        self.extend(history)

    def follow(self, cached: list[int], feed: list[int]) -> None:
        """Index what `cached + feed` holds past what is indexed, when that history only grew since (as
        within one request: rejected drafts are never indexed); no copy of the whole history."""
        n, k = len(self.tokens), len(cached)
        if n < k:
            self.extend(cached[n:])
            self.extend(feed)
        else:
            self.extend(feed[n - k :])

    def extend(self, new: list[int]) -> None:
        tokens, index = self.tokens, self._next
        for token in new:
            p = len(tokens)
            # Each n-gram ending just before p is followed by the token at p: most recent occurrence wins.
            for n in range(DRAFT_NGRAM_MIN, min(DRAFT_NGRAM_MAX, p) + 1):
                index[tuple(tokens[p - n : p])] = p
            tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        """The tokens that followed the most recent earlier occurrence of the longest matching tail n-gram,
        when the tail and that occurrence agree over at least MATCH_MIN tokens; else none."""
        k = min(limit, self.budget)
        if k <= 0:
            return []
        tokens = self.tokens
        end = len(tokens)
        for n in range(min(DRAFT_NGRAM_MAX, end), DRAFT_NGRAM_MIN - 1, -1):
            start = self._next.get(tuple(tokens[-n:]))
            if start is None:
                continue
            match = n  # how far back the passage before `start` equals the tail
            while match < MATCH_SCAN and start - match > 0 and tokens[start - match - 1] == tokens[end - match - 1]:
                match += 1
            return tokens[start : start + min(k, max(match, DRAFT_MIN))] if match >= MATCH_MIN else []
        return []

    def update(self, drafted: int, accepted: int) -> None:
        """Adapt the next draft's length to how this one fared."""
        if drafted == 0:
            return
        if accepted == drafted:
            self.budget = min(DRAFT_MAX, self.budget * 2)
        elif 2 * accepted < drafted:
            self.budget = max(DRAFT_MIN, self.budget // 2)
