"""Context windows: stop, truncate and summarize, with exact counts (embedded) and estimates (hosted)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from duologue import api
from duologue.backends.base import ChatMessage, estimate_tokens
from duologue.context import SUMMARY_VOICE
from duologue.engine import Conversation
from duologue.spec import spec_from_dict
from duologue.store import Store
from scripted import FailsAt, MeasuredModels, ScriptedBackend

WINDOW, MAX_TOKENS = 200, 20
TEN_WORDS = "one two three four five six seven eight nine ten"


def spec(strategy: str, **extra):
    return spec_from_dict(
        {
            "participants": [
                {"name": n, "system": "Hi.", "max_tokens": MAX_TOKENS, "context_length": WINDOW} for n in ("a", "b")
            ],
            "opener": "Hello there.",
            "max_messages": 30,
            "seed": 1,
            "on_loop": "continue",
            "on_near_loop": "continue",
            "on_convergence": "continue",
            "context": {"strategy": strategy},
            **extra,
        }
    )


def converse(tmp_path, s, *, counts=True, backends=None, run=None, store=None):
    summarizers: list[ScriptedBackend] = []

    def make(p):  # only the summarizer is made on demand here
        summarizers.append(ScriptedBackend(p.model, name="summarizer", reply=lambda n, v: f"summary {n}"))
        return summarizers[-1]

    backends = backends or {n: ScriptedBackend(name=n, reply=lambda n, v: TEN_WORDS, counts=counts) for n in s.names}
    own = store is None
    store = store or Store(tmp_path / "d.db")
    try:
        result = asyncio.run(Conversation(s, store, backends=backends, make_backend=make, run=run).run_to_end())
        events = [e for e in store.get_events(result.id) if e["kind"] == "context"]
    finally:
        if own:
            store.close()
    return result, backends, summarizers, events


def sizes(backend: ScriptedBackend) -> list[int]:
    count = backend.count_tokens or estimate_tokens
    return [count(r.view) + r.sampling.max_tokens for r in backend.requests]


def test_stop_ends_the_run_before_a_request_that_would_not_fit(tmp_path):
    run, backends, _, events = converse(tmp_path, spec("stop"))
    assert (run.status, run.stop_reason) == ("finished", "context_full")
    assert "needs" in run.stop_detail and f"holds {WINDOW}" in run.stop_detail
    assert all(n <= WINDOW for b in backends.values() for n in sizes(b))
    assert len(run.messages) < 30
    (stop,) = events
    assert stop["data"]["action"] == "stop" and stop["data"]["tokens"] > WINDOW
    assert stop["message_index"] == len(run.messages) + 1


def test_truncate_leaves_out_the_oldest_messages_after_the_opener(tmp_path):
    run, backends, _, events = converse(tmp_path, spec("truncate"))
    assert (run.stop_reason, len(run.messages)) == ("max_messages", 30)
    for b in backends.values():
        assert all(n <= WINDOW for n in sizes(b))
        for r in b.requests:
            # System prompt and opener always; then an unbroken run of the latest messages.
            assert r.view[0] == ChatMessage("system", "Hi.") and r.view[1].content == "Hello there."
            tail = [m.content for m in r.view[2:]]
            assert all(t == TEN_WORDS for t in tail)
    assert events and all(e["data"]["action"] == "truncate" for e in events)
    cuts = [e["data"]["cut"] for e in events]
    assert cuts == sorted(cuts) and len(set(cuts)) == len(cuts)
    for e in events:
        d = e["data"]
        assert d["tokens_before"] > WINDOW >= d["window"] and d["tokens_after"] <= WINDOW * 0.5
        assert d["dropped"][1] == d["cut"]
    # Trimmed to half the window, the views keep their beginning for several turns at a time.
    assert len(events) <= len(run.messages) // 3
    # Nothing is lost from the store or the transcript.
    assert [m.index for m in run.messages] == list(range(1, 31))


def test_summarize_folds_each_dropped_message_into_the_summary_once(tmp_path):
    run, backends, summarizers, events = converse(
        tmp_path,
        spec(
            "summarize", context={"strategy": "summarize", "summarizer": {"model": "test/summarizer", "max_tokens": 10}}
        ),
    )
    assert (run.stop_reason, len(run.messages)) == ("max_messages", 30)
    assert all(n <= WINDOW for b in backends.values() for n in sizes(b))
    (summarizer,) = summarizers
    assert summarizer.model == "test/summarizer"
    assert [e["data"]["summary"] for e in events] == [f"summary {i}" for i in range(1, len(events) + 1)]
    # The dropped parts follow each other: no message is summarised twice, none skipped.
    ranges = [e["data"]["dropped"] for e in events]
    assert ranges[0][0] == 2 and all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False))
    assert len(summarizer.requests) == len(events)
    second = summarizer.requests[1].view[1].content
    assert second.startswith("Summary so far:\nsummary 1\n\nConversation:\n")
    assert second.count(TEN_WORDS) == ranges[1][1] - ranges[1][0] + 1
    # The summary stands in for what it replaced, right after the opener.
    last = events[-1]["data"]
    after = [
        r
        for b in backends.values()
        for r in b.requests
        if len(r.view) > 2 and r.view[2].content.startswith(SUMMARY_VOICE.format(first=2, last=last["cut"]))
    ]
    assert after and after[0].view[2] == ChatMessage("user", f"Summary of messages 2–{last['cut']}: {last['summary']}")


def test_hosted_models_are_checked_with_an_estimate_against_the_given_window(tmp_path):
    run, backends, _, events = converse(tmp_path, spec("truncate"), counts=False)
    assert len(run.messages) == 30 and events
    assert all(estimate_tokens(r.view) + MAX_TOKENS <= WINDOW for b in backends.values() for r in b.requests)


def test_without_a_known_window_nothing_is_checked(tmp_path):
    s = spec("stop")
    for p in s.participants:
        p.context_length = None
    run, _, _, events = converse(tmp_path, s, counts=False)
    assert run.stop_reason == "max_messages" and events == []


def test_estimate_tokens():
    assert estimate_tokens([]) == 3
    assert estimate_tokens([ChatMessage("user", "x" * 35)]) == 10 + 4 + 3
    assert estimate_tokens([ChatMessage("system", ""), ChatMessage("user", "abcdefg")]) == 2 + 8 + 3


def test_a_resumed_run_keeps_its_views_trimmed_where_they_were(tmp_path):
    s = spec("truncate")

    def numbered(name):
        return lambda n, v: f"{name}{n} {TEN_WORDS}"

    with Store(tmp_path / "d.db") as store:
        backends = {
            "a": ScriptedBackend(name="a", reply=numbered("a")),
            "b": FailsAt(12, name="b", reply=numbered("b")),
        }
        first, _, _, events = converse(tmp_path, s, backends=backends, store=store)
        assert first.status == "error" and events
        cut = events[-1]["data"]["cut"]
        again = store.get_run(first.id)
        backends = {n: ScriptedBackend(name=n, reply=numbered(n.upper())) for n in ("a", "b")}
        run, _, _, later = converse(tmp_path, s, backends=backends, run=again, store=store)
    assert run.status == "finished" and len(run.messages) == 30
    # The first view after resuming leaves out what was left out before: no more, no less.
    view = backends["b"].requests[0].view
    assert [m.content for m in view[2:]] == [m.content for m in first.messages[cut:]]
    assert not [e for e in later[len(events) :] if e["message_index"] == len(first.messages) + 1]


# -- the embedded model, 2048 tokens, 100 messages ---------------------------------


def embedded_context_run(tmp_path, strategy: str):
    """A 100-message conversation of SmolLM2 in a 2048-token window; every request it sent, measured."""
    measured = MeasuredModels()
    s = spec_from_dict(
        {
            "participants": [
                {"name": n, "max_tokens": 48, "context_length": 2048, "seed": i} for i, n in enumerate(("a", "b"))
            ],
            "opener": "Tell me about the sea.",
            "max_messages": 100,
            "seed": 7,
            # Loops are likely over 100 messages of a 135M model; they must not end these runs.
            "on_loop": "continue",
            "on_near_loop": "continue",
            "on_convergence": "continue",
            "context": {"strategy": strategy, "summarizer": {"model": "local/smollm2", "max_tokens": 64}},
        }
    )
    db = tmp_path / "runs" / "duologue.db"
    run = asyncio.run(api.arun_conversation(s, db=db, make_backend=measured.make))
    sent = [(who, prompt, sampling.max_tokens, window) for who, _, sampling, prompt, window in measured.sent]
    conn = sqlite3.connect(db)
    events = conn.execute("SELECT kind, data FROM events WHERE run_id=? AND kind='context'", (run.id,)).fetchall()
    return run, sent, events


slow_context = [pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.mark.parametrize(
    "strategy", [pytest.param("truncate", marks=slow_context), pytest.param("summarize", marks=slow_context)]
)
def test_embedded_100_messages_complete_in_2048_tokens(tmp_path, strategy):
    run, sent, events = embedded_context_run(tmp_path, strategy)
    assert (run.status, run.stop_reason, len(run.messages)) == ("finished", "max_messages", 100)
    assert all(prompt + max_tokens <= window == 2048 for _, prompt, max_tokens, window in sent)
    assert events, "a 100-message conversation cannot fit 2048 tokens untrimmed"
    who = {w for w, *_ in sent}
    if strategy == "summarize":
        assert "summarizer" in who  # the embedded model summarised, in its own context
        assert len([w for w in sent if w[0] == "summarizer"]) >= len(events)
    else:
        assert who == {"a", "b"}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_embedded_stop_ends_with_context_full(tmp_path):
    run, sent, events = embedded_context_run(tmp_path, "stop")
    assert (run.status, run.stop_reason) == ("finished", "context_full")
    assert 20 < len(run.messages) < 100
    assert all(prompt + max_tokens <= window for _, prompt, max_tokens, window in sent)
    assert len(events) == 1


# -- auto: the default strategy trims instead of stopping -------------------------------


def default_spec(**extra):
    data = spec("stop").model_dump(mode="json")
    del data["context"]  # left at its default
    return spec_from_dict({**data, **extra})


def test_the_default_strategy_is_auto_and_trims_instead_of_filling_the_context(tmp_path):
    s = default_spec()
    assert s.context.strategy == "auto"
    with Store(tmp_path / "d.db") as store:
        run, backends, _, stops = converse(tmp_path, s, store=store)
        trims = [e for e in store.get_events(run.id) if e["kind"] == "context_trimmed"]
    assert (run.stop_reason, len(run.messages)) == ("max_messages", 30)
    assert stops == []  # no `context` event: nothing stopped, and auto's trims have their own kind
    assert trims and all(e["data"]["strategy"] == "auto" and e["data"]["action"] == "truncate" for e in trims)
    assert all(e["detail"].startswith("message") and "left out of the views" in e["detail"] for e in trims)
    for b in backends.values():
        assert all(n <= WINDOW for n in sizes(b))
        for r in b.requests:  # system prompt and opener always stay, then the latest messages
            assert r.view[0] == ChatMessage("system", "Hi.") and r.view[1].content == "Hello there."
    cuts = [e["data"]["cut"] for e in trims]
    assert cuts == sorted(set(cuts))


def test_auto_still_stops_when_not_even_the_latest_message_fits(tmp_path):
    long = " ".join(["word"] * 185)  # with the system prompt, opener and reply: over the 200-token window
    backends = {n: ScriptedBackend(name=n, reply=lambda n, v: long) for n in ("a", "b")}
    run, _, _, _ = converse(tmp_path, default_spec(), backends=backends)
    assert (run.status, run.stop_reason) == ("finished", "context_full")


def test_a_resumed_auto_run_picks_up_its_trim_from_context_trimmed_events():
    from duologue.context import AUTO_TRIM, Trim, trim_from_events

    events = [
        {"kind": "window", "data": {"window": 200}},
        {"kind": AUTO_TRIM, "data": {"cut": 7}},
        {"kind": "loop", "data": {}},
    ]
    assert trim_from_events(events) == Trim(7)
    assert trim_from_events([*events, {"kind": "context", "data": {"cut": 9, "summary": "s"}}]) == Trim(9, "s")
    assert trim_from_events([{"kind": "context", "data": {"action": "stop"}}]) == Trim()
