"""Lookup decoding (backends/embedded/lookup.py): the drafts it proposes, and that the engine's output
is the same with and without it, greedy and sampled, several sequences at once."""

from __future__ import annotations

import asyncio

import pytest

from duologue.backends.base import ChatMessage, Sampling
from duologue.backends.embedded.common import LlamaSettings
from duologue.backends.embedded.lookup import DRAFT_MAX, DRAFT_MIN, MATCH_MIN, NgramIndex, lookup_default
from duologue.backends.embedded.pool import EmbeddedPool
from duologue.backends.embedded.weights import file_type

MODEL = "local/smollm2"


# -- the n-gram index (no model) ---------------------------------------------------------------


def test_drafts_continue_a_repeated_passage_from_its_most_recent_occurrence():
    passage = list(range(100, 140))
    m = MATCH_MIN + 2  # the passage has come back over this many tokens
    idx = NgramIndex()
    idx.sync(passage + [7, 8, 9] + passage[:m])
    assert idx.draft(5) == passage[m : m + 5]
    idx.sync(passage + [7, 8, 9] + passage[: m + 1])  # grew by one: extended, not rebuilt
    assert idx.draft(3) == passage[m + 1 : m + 4]
    idx.sync(passage + [7, 8, 9] + passage[:m] + [1] + passage[:m])  # the later occurrence is the one drafted
    assert idx.draft(3) == [1, passage[0], passage[1]]
    idx.sync([8, 8])  # not an extension: indexed anew
    assert idx.draft(4) == []


def test_following_a_growing_history_indexes_what_a_whole_sync_does():
    """The decode loop syncs a request's history once, then follows its tail token by token (lookup.py)."""
    history = [t % 37 for t in range(300)]
    followed, synced = NgramIndex(), NgramIndex()
    followed.sync(history[:50])
    cached, feed = history[:50], []
    for end in range(51, 300, 7):  # the cache grows by what was fed and accepted, the feed is the last sample
        cached, feed = history[: end - 1], [history[end - 1]]
        followed.follow(cached, feed)
    synced.sync(cached + feed)
    assert followed.tokens == synced.tokens and followed._next == synced._next
    assert followed.draft(8) == synced.draft(8) != []


def test_no_draft_for_a_short_match_nor_more_than_matched_or_asked():
    idx = NgramIndex()
    idx.sync(list(range(50)))
    assert idx.draft(8) == []
    idx.sync(list(range(50)) + [60, 61] + list(range(10, 10 + MATCH_MIN - 1)))  # an echo one token too short
    assert idx.draft(8) == []
    idx.sync(list(range(50)) + [60, 61] + list(range(10, 10 + MATCH_MIN)))
    assert idx.draft(1) == [10 + MATCH_MIN]
    assert len(idx.draft(1000)) <= min(DRAFT_MAX, MATCH_MIN)  # no more than the passage matched
    # With room for DRAFT_MAX drafts the cap is the match itself (MATCH_MIN tokens here, the token before
    # the echo differing), not the budget: what followed the earlier occurrence, that many tokens.
    idx.budget = DRAFT_MAX
    assert MATCH_MIN < DRAFT_MAX
    assert idx.draft(1000) == list(range(10 + MATCH_MIN, 10 + 2 * MATCH_MIN))


def test_the_draft_length_adapts_to_what_was_accepted():
    idx = NgramIndex()
    start = idx.budget
    idx.update(start, start)
    assert idx.budget == min(DRAFT_MAX, 2 * start)
    for _ in range(10):
        idx.update(16, 3)
    assert idx.budget == DRAFT_MIN
    idx.update(16, 10)  # more than half kept: unchanged
    assert idx.budget == DRAFT_MIN


def test_lookup_default_and_the_environment(monkeypatch):
    monkeypatch.delenv("DUOLOGUE_LOOKUP", raising=False)
    assert lookup_default(None, "q8_0") is True and lookup_default(None, "q4_1") is False
    assert lookup_default(False, "q8_0") is False and lookup_default(True, "q4_1") is True
    monkeypatch.setenv("DUOLOGUE_LOOKUP", "0")
    assert lookup_default(True, "q8_0") is False
    monkeypatch.setenv("DUOLOGUE_LOOKUP", "1")
    assert lookup_default(False, "q4_1") is True


# -- the engine (the embedded model) ---------------------------------------------------------------

LINE = (
    "I think the most beautiful idea is that small things, repeated patiently, become large things: "
    "a river cuts a canyon one grain at a time."
)


PROMPTS = [
    "Tell me about the moon.",
    "Repeat this line five times: the cat sat on the mat and looked at the hat.",
    "Write a haiku about rain.",
    "Count from one to twenty in words, separated by commas.",
    "List five animals that live in the desert, with one sentence about each of them.",
    "Say 'I agree, that is beautiful.' three times.",
    "Explain recursion to a child.",
    "Write the alphabet twice, letters separated by spaces.",
]


def views() -> list[list[ChatMessage]]:
    """One request per prompt; two of them conversations caught in a loop, so that drafts are made."""
    out = [[ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", p)] for p in PROMPTS]
    for i in (1, 5):
        question = ChatMessage("user", PROMPTS[i])
        out[i] = [out[i][0], *[question, ChatMessage("assistant", LINE)] * 2, question]
    return out


async def together(lookup: bool, sampling: list[Sampling], weights: str = "q4_1"):
    """All the views at once on one engine, with lookup decoding on or off: their generations and stats."""
    async with EmbeddedPool() as pool:
        backends = [pool.backend(MODEL, LlamaSettings(2048, weights=weights)) for _ in PROMPTS]
        engine = backends[0].engine
        prompts = [b.prompt_tokens(v) for b, v in zip(backends, views(), strict=True)]
        gens = await asyncio.gather(
            *(engine.generate(b._seq, p, s, lookup=lookup) for b, p, s in zip(backends, prompts, sampling, strict=True))
        )
        return gens, dict(engine.stats), engine.path


def differences(a, b) -> dict[int, int]:
    """Per prompt, the first position where two generations' tokens differ."""
    out = {}
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        at = next((j for j, (s, t) in enumerate(zip(x.tokens, y.tokens, strict=False)) if s != t), None)
        if at is None and len(x.tokens) != len(y.tokens):
            at = min(len(x.tokens), len(y.tokens))
        if at is not None:
            out[i] = at
    return out


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("weights", ["q4_1", "q8_0", "bf16"])
def test_greedy_tokens_equal_with_and_without_lookup(embedded_gguf, weights, tmp_path, monkeypatch):
    monkeypatch.setenv("DUOLOGUE_CACHE_DIR", str(tmp_path))
    greedy = [Sampling(temperature=0, max_tokens=64, seed=0)] * len(PROMPTS)
    plain, _, plain_path = asyncio.run(together(False, greedy, weights))
    looked, stats, looked_path = asyncio.run(together(True, greedy, weights))
    # The engine ran the weights asked for (not the pool's `auto` choice, nor the shipped Q4_1 for all).
    assert file_type(plain_path) == weights and file_type(looked_path) == weights, (plain_path, looked_path)
    # Every output is its full 64 tokens or was ended by the model itself (the two looping prompts repeat
    # LINE, then stop; a few short answers stop too), never cut short otherwise; half of them run to 64.
    ends = [(g.finish_reason, len(g.tokens)) for g in plain + looked]
    assert all(e == ("length", 64) or (e[0] == "stop" and 0 < e[1] < 64) for e in ends), ends
    assert [g.finish_reason for g in plain] == [g.finish_reason for g in looked], ends
    assert sum(len(g.tokens) == 64 for g in looked) >= len(PROMPTS) // 2, ends
    assert not differences(plain, looked), f"{weights}: first differing token per prompt {differences(plain, looked)}"
    assert all(g.drafted == 0 for g in plain)
    drafted, accepted = sum(g.drafted for g in looked), sum(g.accepted for g in looked)
    assert drafted > 0 and 0 < accepted <= drafted, (drafted, accepted)
    # Accepted drafts need no decode step of their own: fewer steps than tokens generated.
    assert stats["steps"] < sum(len(g.tokens) for g in looked) // 2 + len(PROMPTS) * 4, stats


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sampled_tokens_equal_with_and_without_lookup(embedded_gguf):
    """Each position is sampled once, in order, by the same chain: with a seed, the same tokens."""
    sampling = [Sampling(temperature=0.8, max_tokens=48, seed=10 + i) for i in range(len(PROMPTS))]
    plain, _, _ = asyncio.run(together(False, sampling))
    looked, _, _ = asyncio.run(together(True, sampling))
    assert not differences(plain, looked), differences(plain, looked)
    assert sum(g.accepted for g in looked) > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("weights", ["q4_1", "q8_0"])
def test_a_reply_in_a_loop_is_mostly_accepted_drafts(embedded_gguf, weights, tmp_path, monkeypatch):
    """A conversation caught in a loop: the reply repeats the last one, and lookup drafts it."""
    monkeypatch.setenv("DUOLOGUE_CACHE_DIR", str(tmp_path))
    question = ChatMessage("user", "What is the most beautiful idea you know?")
    view = [ChatMessage("system", "You are talking with another AI."), *[question, ChatMessage("assistant", LINE)] * 3]

    async def scenario():
        async with EmbeddedPool() as pool:
            backend = pool.backend(MODEL, LlamaSettings(1024, weights=weights, lookup=True))
            before = backend.engine.stats["steps"]
            reply = await backend.complete([*view, question], Sampling(temperature=0, max_tokens=64, seed=0))
            return reply, backend.engine.stats["steps"] - before

    reply, steps = asyncio.run(scenario())
    u = reply.usage
    assert reply.text == LINE  # the loop goes on
    assert u.draft_tokens is not None and u.accepted_tokens is not None
    assert u.accepted_tokens <= u.draft_tokens
    # All but the first token or two came from verified drafts.
    assert u.accepted_tokens >= u.completion_tokens - 2, u
    # Drafts were verified several per step: fewer decode steps for the whole reply (its prompt's
    # chunks included) than tokens it generated, where one token per step would need at least as many.
    assert steps < u.completion_tokens, (steps, u)
