"""The embedded engine's default window is sized to the run asked for, capped at the model's trained window."""

from __future__ import annotations

import pytest

from duologue import api
from duologue.backends.embedded.catalogue import gguf_facts
from duologue.backends.embedded.common import LlamaSettings
from duologue.backends.embedded.provider import default_context
from duologue.context import TEMPLATE_TOKENS, WINDOW_STEP, run_context
from duologue.engine import CONTEXT_FULL_HINT
from duologue.spec import ContextPolicy, spec_from_dict
from duologue.store import Store


def spec(max_messages: int, **participant):
    return spec_from_dict(
        {
            "participants": [{"name": n, "model": "scripted/x", **participant} for n in ("a", "b")],
            "max_messages": max_messages,
            "on_loop": "continue",
            "on_near_loop": "continue",
        }
    )


def test_the_window_grows_with_the_run_and_covers_every_message_at_max_tokens():
    short, long = spec(10), spec(60)
    a_short, a_long = run_context(short, short.participants[0]), run_context(long, long.participants[0])
    assert a_long > a_short
    assert a_long >= 60 * (256 + TEMPLATE_TOKENS)
    assert a_long % WINDOW_STEP == 0 and a_long - 60 * (256 + TEMPLATE_TOKENS) < WINDOW_STEP + 100
    # A longer system prompt or history needs more room.
    wordy = spec(10, system="word " * 400, history=[{"role": "user", "content": "x" * 3500}])
    assert run_context(wordy, wordy.participants[0]) >= a_short + 400 * 5 // 4 + 1000


def test_the_engine_hands_the_sized_window_to_backends_unless_context_length_is_set(scripted_models, tmp_path):
    """Through the provider: its factory is given the window the run needs (the `scripted` provider's
    records it), as the embedded provider's is."""
    api.run_conversation(spec(12), db=tmp_path / "d.db")
    expected = run_context(spec(12), spec(12).participants[0])
    assert scripted_models.windows == [("b", None, expected), ("a", None, expected)]
    scripted_models.windows.clear()
    api.run_conversation(spec(12, context_length=999), db=tmp_path / "d.db")
    assert scripted_models.windows == [("b", 999, None), ("a", 999, None)]
    # The window is never stored with the spec.
    with Store(tmp_path / "d.db") as store:
        (run, *_) = store.list_runs()
        assert all("window" not in p for p in store.get_run(run.id).spec["participants"])


def test_default_context_is_explicit_or_the_run_capped_at_the_trained_window(embedded_gguf):
    trained = gguf_facts(embedded_gguf).trained_context
    assert trained == 8192 and gguf_facts(embedded_gguf).kv_bytes_per_token
    s = spec(60, model="local/smollm2")
    p = s.participants[0]
    assert default_context(p) == LlamaSettings.context_length  # no run known: the old default
    window = run_context(s, p)
    assert window > trained and default_context(p, window) == trained
    assert default_context(p, 1024) == 1024
    assert default_context(p.model_copy(update={"context_length": 16384}), 1024) == 16384  # explicit wins


def test_context_full_says_which_flag_changes_it(scripted_models, tmp_path):
    scripted_models.context_length = 150
    s = spec(40, max_tokens=20).model_copy(update={"context": ContextPolicy(strategy="stop")})
    run = api.run_conversation(s, db=tmp_path / "d.db", make_backend=scripted_models.make)
    assert run.stop_reason == "context_full"
    assert run.stop_detail.endswith(CONTEXT_FULL_HINT) and "--context-length" in run.stop_detail


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sixty_messages_on_the_embedded_model_never_fill_the_context(embedded_gguf, tmp_path):
    s = spec_from_dict({"participants": [{"name": "a"}, {"name": "b"}], "max_messages": 60, "seed": 7})
    run = api.run_conversation(s, db=tmp_path / "d.db")
    assert run.stop_reason != "context_full", run.stop_detail
    assert run.stop_reason in ("max_messages", "loop", "near_loop", "convergence", "attractor")
    with Store(tmp_path / "d.db") as store:
        windows = [e for e in store.get_events(run.id) if e["kind"] == "window"]
    assert {e["data"]["window"] for e in windows} == {8192}
    assert all(e["data"]["kv_bytes"] > 0 for e in windows)


def test_a_backend_with_a_kv_cache_reports_its_window_once_and_what_the_run_may_need(scripted_models, tmp_path):
    def make(p):
        backend = scripted_models.make(p)
        backend.context_length = 4096  # as if capped at a model's trained window
        backend.kv_bytes = 90 * 2**20
        return backend

    s = spec(60)
    run = api.run_conversation(s, db=tmp_path / "d.db", make_backend=make)
    with Store(tmp_path / "d.db") as store:
        windows = [e for e in store.get_events(run.id) if e["kind"] == "window"]
    assert [e["data"]["participant"] for e in windows] == ["b", "a"]
    needed = run_context(s, s.participants[0])
    assert windows[0]["data"] == {"participant": "b", "window": 4096, "kv_bytes": 90 * 2**20, "run_needs": needed}
    assert (
        windows[0]["detail"]
        == f"b: 4096 tokens (the model's maximum; the run may need up to {needed}), KV cache 90 MiB"
    )


def test_the_summarizer_gets_the_participants_window_or_one_sized_to_the_run(scripted_models, tmp_path):
    scripted_models.context_length = 130  # small enough that summaries are written

    def summarized(**participant):
        data = spec(30, max_tokens=20, **participant).model_dump(mode="json")
        return spec_from_dict({**data, "context": {"strategy": "summarize", "summarizer": {"max_tokens": 10}}})

    def summarizer_window() -> tuple[int | None, int | None]:
        (found,) = {(length, window) for name, length, window in scripted_models.windows if name == "summarizer"}
        return found

    first = api.run_conversation(summarized(context_length=130), db=tmp_path / "d.db")
    assert first.stop_reason == "max_messages", first.stop_detail
    assert summarizer_window() == (130, None)
    scripted_models.windows.clear()
    sized = summarized()
    api.run_conversation(sized, db=tmp_path / "d.db")
    summarizer = sized.context.summarizer.model_copy(update={"model": "scripted/x"})
    assert summarizer_window() == (None, run_context(sized, summarizer))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_default_settings_trim_the_oldest_turns_instead_of_filling_a_small_embedded_window(embedded_gguf, tmp_path):
    s = spec_from_dict(
        {
            "participants": [{"name": n, "max_tokens": 96, "context_length": 512} for n in ("a", "b")],
            "max_messages": 12,
            "seed": 7,
            "on_loop": "continue",
            "on_near_loop": "continue",
            "on_convergence": "continue",
        }
    )
    assert s.context.strategy == "auto"
    run = api.run_conversation(s, db=tmp_path / "d.db")
    assert (run.stop_reason, len(run.messages)) == ("max_messages", 12), run.stop_detail
    with Store(tmp_path / "d.db") as store:
        events = store.get_events(run.id)
    trims = [e for e in events if e["kind"] == "context_trimmed"]
    assert trims, "12 messages of up to 96 tokens do not fit 512 untrimmed"
    assert all(e["data"]["tokens_after"] <= e["data"]["window"] == 512 for e in trims)
    assert not [e for e in events if e["kind"] == "context"]
