"""The shared embedded engine: batched decoding gives what unbatched decoding gives, prefix reuse,
cancel, a full context, and whole conversations (one, and two at once) through duologue's engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from duologue.api import arun_conversation
from duologue.backends.base import ChatMessage, ContextFullError, Sampling
from duologue.backends.embedded.backend import BatchedLlamaBackend
from duologue.backends.embedded.common import LlamaSettings
from duologue.backends.embedded.pool import EmbeddedPool
from duologue.backends.embedded.simple import LlamaCppBackend
from duologue.backends.registry import make_backend
from duologue.spec import ConversationSpec, Participant

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(autouse=True)
def shared_engine(monkeypatch):
    """Participants made by make_backend run on the shared engine (the default; set so the environment
    cannot change it)."""
    monkeypatch.setenv("DUOLOGUE_EMBEDDED_ENGINE", "shared")


MODEL = "local/smollm2"
GREEDY = Sampling(temperature=0, max_tokens=64, seed=0)

PROMPTS = [
    "Tell me about the moon.",
    "What is a prime number? Give three examples and explain why each one is prime.",
    "Write a haiku about rain.",
    "Why is the sky blue?",
    "List five animals that live in the desert, with one sentence about each of them.",
    "How do bees make honey?",
    "Explain recursion to a child.",
    "What would you pack for a week in the mountains? Think about weather, food and safety first.",
]


def views() -> list[list[ChatMessage]]:
    return [[ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", p)] for p in PROMPTS]


def unbatched_greedy(views: list[list[ChatMessage]], sampling: Sampling) -> list[list[int]]:
    """Each view alone on an engine of its own (one stream, one token per decode), one after another."""

    async def alone(view):
        backend = BatchedLlamaBackend(MODEL, LlamaSettings(2048))
        try:
            return (await backend.engine.generate(backend._seq, backend.prompt_tokens(view), sampling)).tokens
        finally:
            await backend.aclose()

    return [asyncio.run(alone(v)) for v in views]


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


@pytest.mark.timeout(1800)  # 8 x 64 tokens one at a time; other test suites may be sharing the CPUs
def test_batched_greedy_tokens_equal_unbatched(embedded_gguf):
    async def batched():
        async with EmbeddedPool() as pool:
            backends = [pool.backend(MODEL, LlamaSettings(2048)) for _ in PROMPTS]
            prompts = [b.prompt_tokens(v) for b, v in zip(backends, views(), strict=True)]
            engine = backends[0].engine
            gens = await asyncio.gather(
                *(engine.generate(b._seq, p, GREEDY) for b, p in zip(backends, prompts, strict=True))
            )
            return gens, dict(engine.stats)

    gens, stats = asyncio.run(batched())
    # They were decoded together: far fewer decode calls than tokens decoded.
    assert stats["decoded_tokens"] >= 4 * stats["steps"], stats
    alone = unbatched_greedy(views(), GREEDY)
    # Every prompt runs its full max_tokens (none stops early), so all 64 tokens of each are compared.
    assert [len(g.tokens) for g in gens] == [GREEDY.max_tokens] * len(PROMPTS), [len(g.tokens) for g in gens]
    # Every token equal, as llamacpp_batched's docstring states; on failure, say where each prompt diverged.
    diverged = {i: first_difference(g.tokens, a) for i, (g, a) in enumerate(zip(gens, alone, strict=True))}
    diverged = {i: at for i, at in diverged.items() if at is not None}
    assert not diverged, (
        f"batched vs unbatched, greedy, {GREEDY.max_tokens} tokens x {len(PROMPTS)} prompts: "
        f"first differing token per prompt {diverged}"
    )


def test_second_turn_reuses_the_prefix_and_evaluates_only_new_tokens(embedded_gguf):
    async def turns():
        async with EmbeddedPool() as pool:
            backend = pool.backend(MODEL, LlamaSettings(1024))
            engine = backend.engine
            first = [ChatMessage("system", "You are terse."), ChatMessage("user", "Name a colour.")]
            p1 = backend.prompt_tokens(first)
            g1 = await engine.generate(backend._seq, p1, Sampling(temperature=0.7, max_tokens=24, seed=3))
            second = [*first, ChatMessage("assistant", g1.text), ChatMessage("user", "And another one?")]
            p2 = backend.prompt_tokens(second)
            before = engine.stats["decoded_tokens"]
            g2 = await engine.generate(backend._seq, p2, Sampling(temperature=0.7, max_tokens=24, seed=4))
            decoded = engine.stats["decoded_tokens"] - before
            third = [*second, ChatMessage("assistant", g2.text), ChatMessage("user", "Thanks.")]
            reply = await backend.complete(third, Sampling(temperature=0.7, max_tokens=8, seed=5))
            return p1, g1, p2, g2, decoded, reply

    p1, g1, p2, g2, decoded, reply = asyncio.run(turns())
    assert g1.cached_tokens == 0 and g1.evaluated_tokens == len(p1)
    # What the cache held after turn 1: the prompt and the reply, except a last token that was never fed back.
    held = p1 + g1.tokens[: len(g1.tokens) - (g1.finish_reason == "length")]
    shared = 0
    while shared < min(len(held), len(p2)) and held[shared] == p2[shared]:
        shared += 1
    assert g2.cached_tokens == min(shared, len(p2) - 1) >= len(p1) - 1
    assert g2.evaluated_tokens == len(p2) - g2.cached_tokens
    # And the engine decoded exactly those, plus the reply's tokens fed back.
    assert decoded == g2.evaluated_tokens + len(g2.tokens) - (g2.finish_reason == "length")
    assert reply.usage.cached_tokens > 0 and reply.usage.prompt_tokens > reply.usage.cached_tokens


def test_cancel_stops_the_request_and_the_sequence_goes_on(embedded_gguf):
    async def scenario():
        async with EmbeddedPool() as pool:
            backend = pool.backend(MODEL, LlamaSettings(1024))
            engine = backend.engine
            view = [ChatMessage("user", "Write a very long story about a lighthouse keeper.")]
            started = asyncio.Event()
            texts = []

            def on_event(ev):
                texts.append(ev.text)
                started.set()

            task = asyncio.create_task(
                backend.complete(view, Sampling(temperature=0.8, max_tokens=400, seed=1), on_event)
            )
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            deadline = time.monotonic() + 60
            while engine._active and time.monotonic() < deadline:  # the worker drops it at its next step
                await asyncio.sleep(0.01)
            assert not engine._active
            steps = engine.stats["steps"]
            await asyncio.sleep(0.3)
            assert engine.stats["steps"] == steps  # nothing decodes for it any more
            # The sequence is usable again, and its cache still holds the prompt it shared.
            reply = await backend.complete(view, Sampling(temperature=0.8, max_tokens=8, seed=2))
            return texts, reply, len(backend.prompt_tokens(view))

    texts, reply, prompt_len = asyncio.run(scenario())
    assert texts
    assert reply.finish_reason in ("stop", "length") and reply.usage.cached_tokens == prompt_len - 1


def test_a_request_that_does_not_fit_raises_context_full(embedded_gguf):
    async def scenario():
        backend = BatchedLlamaBackend(MODEL, LlamaSettings(256))
        try:
            long_view = [ChatMessage("user", "word " * 300)]
            with pytest.raises(ContextFullError) as err:
                await backend.complete(long_view, Sampling(max_tokens=16))
            assert err.value.limit == 256 and err.value.needed == len(backend.prompt_tokens(long_view)) + 16
            short = [ChatMessage("user", "Hi.")]
            with pytest.raises(ContextFullError):  # fits alone, but not with room for max_tokens
                await backend.complete(short, Sampling(max_tokens=250))
            reply = await backend.complete(short, Sampling(max_tokens=8))
            assert reply.usage.completion_tokens >= 1
        finally:
            await backend.aclose()

    asyncio.run(scenario())


def spec(seed: int, messages: int = 6) -> ConversationSpec:
    common = dict(max_tokens=24, context_length=1024, temperature=0)
    return ConversationSpec(
        participants=[
            Participant(name="a", system="You ask short questions.", seed=seed, **common),
            Participant(name="b", system="You answer briefly.", seed=seed + 1, **common),
        ],
        opener=f"Tell me something about the number {seed}.",
        max_messages=messages,
    )


def test_a_conversation_runs_on_the_shared_engine(embedded_gguf, tmp_path):
    assert isinstance(make_backend(spec(1).participants[0]), BatchedLlamaBackend)
    run = asyncio.run(arun_conversation(spec(1), db=tmp_path / "d.db", watchers=[]))
    assert run.status == "finished" and run.stop_reason == "max_messages" and len(run.messages) == 6
    generated = [m for m in run.messages if not m.injected]
    assert all(m.completion_tokens and m.latency and m.finish_reason in ("stop", "length") for m in generated)
    # From each participant's second turn on, the cache holds its view so far.
    assert all(m.cached_tokens > 0 for m in generated[2:])


def test_the_older_backend_stays_available(monkeypatch):
    monkeypatch.setenv("DUOLOGUE_EMBEDDED_ENGINE", "llama")
    assert isinstance(make_backend(spec(1).participants[0]), LlamaCppBackend)


def test_two_conversations_at_once_decode_together_and_match_one_at_a_time(embedded_gguf, tmp_path):
    async def together():
        async with EmbeddedPool({MODEL: 5}) as pool:
            runs = await asyncio.gather(
                *(arun_conversation(spec(s, 8), db=tmp_path / f"t{s}.db", watchers=[]) for s in (1, 2))
            )
            return runs, dict(pool.engines[0].stats)

    async def apart():
        return [await arun_conversation(spec(s, 8), db=tmp_path / f"a{s}.db", watchers=[]) for s in (1, 2)]

    runs, stats = asyncio.run(together())
    alone = asyncio.run(apart())
    assert [r.status for r in runs] == ["finished", "finished"]
    assert stats["decoded_tokens"] > stats["steps"]  # some steps carried both conversations
    for r in runs:
        assert all(m.cached_tokens > 0 for m in [m for m in r.messages if not m.injected][2:])
    # Greedy, so the moves between streams and the shared steps must not change a word.
    assert [[m.content for m in r.messages] for r in runs] == [[m.content for m in r.messages] for r in alone]


def test_the_context_grows_when_more_participants_join(embedded_gguf):
    async def scenario():
        async with EmbeddedPool() as pool:
            first = pool.backend(MODEL, LlamaSettings(512))
            view = views()[0]
            g1 = await first.complete(view, GREEDY)
            engine = first.engine
            others = [pool.backend(MODEL, LlamaSettings(768)) for _ in range(2)]
            replies = await asyncio.gather(*(b.complete(view, GREEDY) for b in [first, *others]))
            return g1, replies, dict(engine.stats), engine._n_streams, engine._stream_len

    g1, replies, stats, n_streams, stream_len = asyncio.run(scenario())
    assert stats["recreated"] == 1 and n_streams >= 3 and stream_len >= 768
    assert stream_len == 768  # sized from the participants' context lengths, not a fixed maximum
    assert [r.text for r in replies] == [g1.text] * 3


def test_a_sharded_pool_keeps_each_conversation_on_one_shard_and_gives_the_same_words(
    embedded_gguf, tmp_path, monkeypatch
):
    """Two one-thread shards: four conversations spread over both, each conversation's participants
    on one shard, and (greedy) the same messages as each conversation alone. The weights are pinned so
    that both sides load one file whatever `auto` picks: this pool is not told of its four conversations,
    so it is not `batched`, but a batched pool may get other weights than a lone conversation, as the
    probe timed them on this machine (weights.fastest). Q4_1 is the shipped
    file as it is, so no derived copy is written into the user's cache folder (no DUOLOGUE_CACHE_DIR here)."""
    monkeypatch.setenv("DUOLOGUE_WEIGHTS", "q4_1")
    seeds = (1, 2, 3, 4)

    async def sharded():
        placed: dict[str, set[int]] = {}
        async with EmbeddedPool({MODEL: 9}, shards=2) as pool:
            original = pool.backend

            def spy(model, settings=None):
                backend = original(model, settings)
                from duologue.backends.embedded.pool import _conversation

                placed.setdefault(_conversation.get(), set()).add(id(backend.engine))
                return backend

            pool.backend = spy
            runs = await asyncio.gather(
                *(arun_conversation(spec(s, 6), db=tmp_path / f"s{s}.db", watchers=[]) for s in seeds)
            )
            engines = pool.engines
            return runs, placed, engines, [e.threads for e in engines], [dict(e.stats) for e in engines]

    runs, placed, engines, threads, stats = asyncio.run(sharded())
    assert len(engines) == 2 and threads == [1, 1]
    assert all(s["decoded_tokens"] > 0 for s in stats)  # both shards worked
    assert set(placed) == {r.id for r in runs} and all(len(e) == 1 for e in placed.values())
    alone = [asyncio.run(arun_conversation(spec(s, 6), db=tmp_path / f"a{s}.db", watchers=[])) for s in seeds]
    assert [[m.content for m in r.messages] for r in runs] == [[m.content for m in r.messages] for r in alone]


def test_a_shard_borrows_the_core_of_a_shard_whose_conversations_ended(embedded_gguf, tmp_path, monkeypatch):
    """Two one-thread shards, a short conversation on one and a long one on the other: once the short one
    has ended, the other shard decodes on both cores (its steps counted as borrowed), and its words are
    those of the long conversation alone (greedy: the thread count does not change the arithmetic)."""
    monkeypatch.setenv("DUOLOGUE_WEIGHTS", "q4_1")  # the shipped file: no derived copy in the user's cache

    async def sharded():
        async with EmbeddedPool({MODEL: 5}, shards=2) as pool:
            short, long = await asyncio.gather(
                arun_conversation(spec(5, 2), db=tmp_path / "short.db", watchers=[]),
                arun_conversation(spec(6, 8), db=tmp_path / "long.db", watchers=[]),
            )
            return long, [dict(e.stats) for e in pool.engines], [e.threads for e in pool.engines]

    long, stats, threads = asyncio.run(sharded())
    assert threads == [1, 1] and all(s["decoded_tokens"] > 0 for s in stats)  # one conversation on each
    busiest = max(stats, key=lambda s: s["decoded_tokens"])
    assert 0 < busiest["borrowed_steps"] < busiest["steps"]  # borrowed only after the short one ended
    alone = asyncio.run(arun_conversation(spec(6, 8), db=tmp_path / "alone.db", watchers=[]))
    assert [m.content for m in long.messages] == [m.content for m in alone.messages]


def test_single_tokens_go_one_call_each_only_where_that_was_measured_faster():
    """The choice between one batch call and a call per sequence follows the times measured, and a batch
    is timed again now and then (no model needed: the decision is the engine's own bookkeeping)."""
    from duologue.backends.embedded.decode import PROBE_EVERY
    from duologue.backends.embedded.engine import SharedLlamaEngine

    engine = SharedLlamaEngine(Path("unused.gguf"), threads=1)
    assert not engine._one_by_one(2)  # nothing measured yet: batch, and so measure it
    engine._call_time[1] = 0.006
    assert not engine._one_by_one(2)  # the batch of 2 not measured yet
    engine._call_time[2] = 0.0124  # two tokens together took longer than two alone
    engine._call_time[8] = 0.027  # eight together took far less than eight alone
    decisions = [engine._one_by_one(2) for _ in range(2 * PROBE_EVERY)]
    assert decisions.count(False) == 2 and all(decisions[: PROBE_EVERY - 2])  # one batch per PROBE_EVERY
    assert not engine._one_by_one(8)
