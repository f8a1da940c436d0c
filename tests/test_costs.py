"""What messages cost: prices from genai-prices' bundled data (checked against the rates read from the data by
hand), the provider's own figure first, unknown prices said with their reason, the embedded model free; the
costs stored, totalled and shown; a cost limit for a run and for an experiment; the estimate before a batch."""

from __future__ import annotations

import json
import math
import re
import socket

import pytest
from click.testing import CliRunner

from duologue import api
from duologue.backends.base import TOKENS_PER_MESSAGE, TOKENS_PER_REQUEST, ChatMessage, Reply, Usage, estimate_tokens
from duologue.batch import remaining, run_experiment
from duologue.cli import cli
from duologue.costs.estimate import estimate
from duologue.costs.prices import price_data_version, price_usage
from duologue.errors import DuologueError
from duologue.experiment_spec import experiment_from_dict
from duologue.records import utcnow
from duologue.spec import spec_from_dict
from duologue.spec_checks import planned
from duologue.store import Store
from helpers import by_hand, rates

PRICE_DATA = price_data_version()


def test_openai_prices_uncached_and_cached_input_and_output():
    r = rates("openai", "gpt-4o")
    usage = price_usage("openai/gpt-4o", Usage(prompt_tokens=3000, completion_tokens=400, cached_tokens=2048))
    assert usage.cost == pytest.approx(by_hand(r, 3000 - 2048, 2048, 0, 400))
    assert usage.cost_source == PRICE_DATA and PRICE_DATA.startswith("genai-prices 0.")
    # The cached tokens are cheaper: the same request without them costs more.
    plain = price_usage("openai/gpt-4o", Usage(prompt_tokens=3000, completion_tokens=400))
    assert plain.cost == pytest.approx(by_hand(r, 3000, 0, 0, 400)) and plain.cost > usage.cost


def test_anthropic_prices_cache_reads_and_writes():
    r = rates("anthropic", "claude-haiku-4-5")
    usage = Usage(prompt_tokens=5000, completion_tokens=300, cached_tokens=3500, cache_write_tokens=1200)
    priced = price_usage("anthropic/claude-haiku-4-5", usage)
    assert priced.cost == pytest.approx(by_hand(r, 300, 3500, 1200, 300))
    assert r["cache_write_mtok"] > r["input_mtok"] > r["cache_read_mtok"]  # writes dearer, reads cheaper


def test_the_providers_own_figure_wins():
    usage = Usage(prompt_tokens=10, completion_tokens=10, cost=0.0421, cost_source="reported by openrouter")
    assert price_usage("openrouter/anthropic/claude-haiku-4.5", usage).cost == 0.0421
    # OpenRouter without a reported figure: its own price list.
    r = rates("openrouter", "anthropic/claude-haiku-4.5")
    priced = price_usage("openrouter/anthropic/claude-haiku-4.5", Usage(prompt_tokens=100, completion_tokens=20))
    assert priced.cost == pytest.approx(by_hand(r, 100, 0, 0, 20))


def test_unknown_prices_say_why_and_the_embedded_model_is_free():
    unknown = price_usage("openai/no-such-model-xyz", Usage(prompt_tokens=10, completion_tokens=5))
    assert unknown.cost is None
    assert unknown.cost_source == f"unknown: openai/no-such-model-xyz is not in the price data ({PRICE_DATA})"
    hosted_here = price_usage("ollama/llama3.2", Usage(prompt_tokens=10, completion_tokens=5))
    assert (hosted_here.cost, hosted_here.cost_source) == (None, "unknown: self-hosted endpoint")
    qwen = price_usage("qwen/qwen-plus", Usage(prompt_tokens=10, completion_tokens=5))
    assert qwen.cost is None and "qwen at https://dashscope" in qwen.cost_source
    embedded = price_usage("local/smollm2", Usage(prompt_tokens=900, completion_tokens=64))
    assert (embedded.cost, embedded.cost_source) == (0.0, "free: embedded model")
    no_counts = price_usage("openai/gpt-4o", Usage())
    assert no_counts.cost is None and no_counts.cost_source == "unknown: the provider reported no token counts"


def test_prices_come_from_the_bundled_data_without_the_network(monkeypatch):
    from genai_prices import data_snapshot

    def refuse(*args, **kwargs):
        raise AssertionError("the price data tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert price_usage("openai/gpt-4o-mini", Usage(prompt_tokens=10, completion_tokens=5)).cost > 0
    snapshot = data_snapshot.get_snapshot()
    assert snapshot.from_auto_update is False and snapshot is data_snapshot._bundled_snapshot()


class Hosted:
    """A hosted-like backend: fixed-length replies, usage reported as the providers report it: the whole
    view as prompt tokens, the reply's tokens as completion tokens, and the prompt cache as each provider
    keeps it (OpenAI: the previous request's prefix from 1024 tokens on, in steps of 128; Anthropic, asked
    with breakpoints on the latest turns: the previous request read back, the rest written), or none
    (`cache=False`)."""

    def __init__(self, model: str, words: tuple[int, ...] = (30,), cache: bool = True):
        self.model = model
        self.words = words  # each reply's length in words, in turn
        self.calls = 0
        self.cache = cache
        self.previous = 0

    async def complete(self, messages, sampling, on_event=None):
        self.calls += 1
        words = self.words[(self.calls - 1) % len(self.words)]
        text = " ".join(f"w{self.calls}x{i}" for i in range(words))
        now = utcnow()
        prompt = estimate_tokens(messages)  # the text counted one way, in the prompt and in the completion
        completion = estimate_tokens([ChatMessage("assistant", text)]) - TOKENS_PER_MESSAGE - TOKENS_PER_REQUEST
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        if self.cache and self.model.startswith("anthropic/"):
            usage.cached_tokens = self.previous if self.previous >= 1024 else 0
            usage.cache_write_tokens = prompt - usage.cached_tokens if prompt >= 1024 else 0
        elif self.cache and self.previous >= 1024:
            usage.cached_tokens = self.previous // 128 * 128
        self.previous = prompt
        return Reply(text=text, usage=usage, finish_reason="stop", started_at=now, ended_at=now, latency=0.01)

    async def aclose(self):
        pass


def hosted(p):
    return Hosted(p.model)


def paid_spec(**extra):
    return spec_from_dict(
        {
            "opener": "hello",
            "max_messages": 12,
            "on_loop": "continue",
            "participants": [
                {"name": "a", "model": "openai/gpt-4o", "system": "Be brief."},
                {"name": "b", "model": "anthropic/claude-haiku-4-5"},
            ],
            **extra,
        }
    )


def test_each_message_is_priced_stored_and_totalled(tmp_path):
    db = tmp_path / "d.db"
    run = api.run_conversation(paid_spec(), db=db, make_backend=hosted)
    stored = api.load_run(run.id, db=db)
    assert stored.price_data == PRICE_DATA
    generated = [m for m in stored.messages if not m.injected]
    assert len(generated) == 11 and all(m.cost_source == PRICE_DATA for m in generated)
    gpt, haiku = rates("openai", "gpt-4o"), rates("anthropic", "claude-haiku-4-5")
    for m in generated:
        r = gpt if m.model == "openai/gpt-4o" else haiku
        assert m.cost == pytest.approx(by_hand(r, m.prompt_tokens, 0, 0, m.completion_tokens))
    total = sum(m.cost for m in generated)
    with Store(db) as store:
        (row,) = store.list_runs()
    assert (row.cost, row.cost_unknown) == (pytest.approx(total), 0)
    # A fork's kept messages were its parent's spending: its total is only what it generated.
    child = api.fork_run(run.id, 6, db=db, make_backend=hosted)
    with Store(db) as store:
        rows = {r.id: r for r in store.list_runs()}
    own = sum(m.cost for m in api.load_run(child.id, db=db).messages[6:])
    assert rows[child.id].cost == pytest.approx(own) and own < total


def test_a_store_from_before_costs_counts_its_messages_as_unknown(tmp_path):
    import sqlite3

    from duologue.store.schema import MIGRATIONS, apply_migrations

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    apply_migrations(conn, MIGRATIONS[:-1])  # a store as the version before costs left it
    with conn:
        conn.execute(
            "INSERT INTO runs (id, title, participants, models, spec, started_at, status) "
            "VALUES ('r1', 'a ↔ b', ?, ?, '{}', '2026-01-01T00:00:00+00:00', 'finished')",
            (json.dumps(["a", "b"]), json.dumps(["openai/gpt-4o"])),
        )
        for idx, injected in ((1, 1), (2, 0), (3, 0), (4, 0)):
            conn.execute(
                "INSERT INTO messages (run_id, idx, speaker, content, injected) VALUES ('r1', ?, 'a', 'x', ?)",
                (idx, injected),
            )
    conn.close()
    with Store(db) as store:  # migration 010: its generated messages' cost is unknown, not zero
        (row,) = store.list_runs()
        assert (row.cost, row.cost_unknown) == (0, 3)
        assert store.get_run("r1").messages[1].cost is None
    out = invoke("ls", "--db", str(db)).stdout
    assert re.search(r"r1 .* finished .* \?", out)
    assert "unknown (not recorded)" in invoke("show", "r1", "--db", str(db)).stdout


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_a_cost_limit_stops_at_the_message_that_reaches_it_and_resumes_with_a_higher_one(tmp_path):
    db = tmp_path / "d.db"
    free = api.run_conversation(paid_spec(), db=db, make_backend=hosted)
    costs = [m.cost for m in free.messages if not m.injected]
    limit = sum(costs[:5]) - 1e-9  # reached by the 5th generated message: message 6
    run = api.run_conversation(paid_spec(cost_limit=limit), db=db, make_backend=hosted)
    assert (run.status, run.stop_reason, len(run.messages)) == ("finished", "cost_limit", 6)
    assert "reached the cost limit of" in run.stop_detail
    with pytest.raises(DuologueError, match="--cost-limit USD"):
        api.resume_run(run.id, db=db, make_backend=hosted)
    with pytest.raises(DuologueError, match="give a --cost-limit above that"):
        api.resume_run(run.id, db=db, make_backend=hosted, cost_limit=limit / 2)
    more = api.resume_run(run.id, db=db, make_backend=hosted, cost_limit=sum(costs[:8]) - 1e-9)
    assert (more.stop_reason, len(more.messages)) == ("cost_limit", 9)
    assert api.load_run(run.id, db=db).spec["cost_limit"] == pytest.approx(sum(costs[:8]) - 1e-9)
    events = [e["kind"] for e in api.run_events(run.id, db=db)]
    assert events.count("cost_limit") == 2 and "limits" in events


def test_unknown_prices_make_a_cost_limit_a_one_line_error(tmp_path, scripted_models):
    db = str(tmp_path / "d.db")
    refused = invoke("run", "--a", "ollama/llama3.2", "--b", "local/smollm2", "--cost-limit", "1", "--db", db, code=2)
    assert refused.stderr.strip() == (
        "duologue: error: --cost-limit needs known prices, but ollama/llama3.2 has none: self-hosted endpoint"
    )
    assert "Traceback" not in refused.output
    refused = invoke("run", "--a", "scripted/a", "--b", "scripted/b", "--cost-limit", "1", "--db", db, code=2)
    assert "scripted/a has none" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_the_cli_shows_costs_and_continues_past_a_limit(tmp_path, monkeypatch):
    from duologue.backends import registry
    from duologue.backends.provider import Provider

    # A provider named "openai" (priced as OpenAI's) whose backends are the hosted-like script.
    real = registry.PROVIDERS["openai"]
    registry.register_provider(
        Provider("openai", "openai", make=lambda p, provider, name: Hosted(p.model), check=None), replace=True
    )
    try:
        db = str(tmp_path / "d.db")
        common = ["--a", "openai/gpt-4o", "--b", "openai/gpt-4o-mini", "--db", db, "-q", "--max-messages", "10"]
        out = invoke("run", *common, "--cost-limit", "0.001").stdout
        assert "stop: cost_limit (" in out and "continue with a new limit:" in out and "--cost-limit USD" in out
        assert re.search(r"cost: \$0\.00\d\d \(genai-prices ", out)
        run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
        out = invoke("resume", run_id, "--db", db, "-q", "--cost-limit", "5").stdout
        assert "stop: max_messages" in out
        shown = invoke("show", run_id, "--db", db).stdout
        assert "cost limit 5" in shown and "▸ limits: cost limit 0.001 → 5" in shown
        assert re.search(r"cost \$0\.\d{4} \(genai-prices [\d.]+\)   prices genai-prices", shown)
        assert re.search(r"completion \d+ · .* · cost \$0\.\d{4}", shown)  # each message's own
        row = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]
        listed = invoke("ls", "--db", db).stdout
        assert f"${row['cost_usd']:.4f}" in listed and row["cost_unknown_messages"] == 0
        narrow = invoke("ls", "--db", db, "--width", "60").stdout  # where it does not fit, it is left out, and named
        assert "cost" not in narrow.splitlines()[0] and re.search(r"left out at 60 columns: .*cost", narrow, re.S)
        for command in ("run", "fork", "resume"):
            assert "--cost-limit" in invoke(command, "--help").stdout
    finally:
        registry.register_provider(real, replace=True)


def experiment(tmp_path, **extra):
    data = {
        "name": "paid",
        "pairings": "all_with_self",
        "repeats": 4,
        "max_messages": 8,
        "on_loop": "continue",
        "opener": "hello",
        "concurrency": {"default": 1},  # one at a time: which conversation the limit stops is known
        "participants": [{"name": "gpt", "model": "openai/gpt-4o", "system": "Be brief."}],
        **extra,
    }
    return experiment_from_dict(data)


def test_an_experiment_limit_stops_the_experiment_and_a_higher_one_resumes_it(tmp_path):
    db = tmp_path / "d.db"
    probe = api.run_conversation(_one_spec(), db=tmp_path / "probe.db", make_backend=hosted)
    per_conversation = sum(m.cost for m in probe.messages if not m.injected)
    limit = per_conversation * 1.5  # reached in the middle of the second conversation
    result = run_experiment(experiment(tmp_path, cost_limit=limit), db=db, make_backend=hosted)
    assert result.held_back == 2 and result.cost >= limit and result.cost_limit == limit
    with Store(db) as store:
        runs = store.experiment_run_records("paid")
    assert sorted(r.stop_reason for r in runs) == ["cost_limit", "max_messages"]
    stopped = next(r for r in runs if r.stop_reason == "cost_limit")
    assert "experiment paid's conversations spent" in stopped.stop_detail
    with pytest.raises(DuologueError, match="reaching its cost_limit"):
        run_experiment(experiment(tmp_path, cost_limit=limit), db=db, make_backend=hosted)
    # What a batch would run now (the estimate before it asks): the run the limit stopped and the two held
    # back under a higher limit; without a limit, the stopped run counts as finished.
    higher = experiment(tmp_path, cost_limit=per_conversation * 10)
    assert len(remaining(higher, planned(higher), db)) == 3
    assert len(remaining(experiment(tmp_path), planned(higher), db)) == 2
    again = run_experiment(higher, db=db, make_backend=hosted)
    assert again.held_back == 0 and again.finished == 4
    assert again.skipped == 1  # the batch runs what `remaining` said
    with Store(db) as store:
        runs = store.experiment_run_records("paid")
        spent, unknown = store.experiment_cost("paid")
    assert len(runs) == 4 and all(r.stop_reason == "max_messages" for r in runs)
    assert spent == pytest.approx(4 * per_conversation) and unknown == 0
    report = json.loads(invoke("report", "paid", "--db", str(db), "--json", "-o", str(tmp_path / "rep")).stdout)
    (group,) = report["by_pairing"]
    assert group["cost_usd"] == pytest.approx(spent) and group["cost_unknown_messages"] == 0
    assert group["cost_per_conversation"] == pytest.approx(per_conversation)
    assert group["cost_per_message"] == pytest.approx(per_conversation / 7)
    table = invoke("report", "paid", "--db", str(db), "-o", str(tmp_path / "rep")).stdout
    assert "per conversation" in table and f"${per_conversation:.4f}" in table
    # The viewer: the experiment page's report, a run's page and its messages' details.
    from starlette.testclient import TestClient

    from duologue.web import create_app

    with TestClient(create_app(db)) as client:
        page = client.get("/experiments/paid").text
        assert "<th>cost</th><th>per conversation</th><th>per message</th>" in page
        assert f"${spent:.4f}" in page and f"${per_conversation:.4f}" in page
        run = runs[0]
        page = client.get(f"/runs/{run.id}").text
        assert re.search(r'<dt>cost</dt><dd id="cost" title="genai-prices [\d.]+">\$0\.\d{4} \(genai-prices', page)
        assert re.search(r'<dt>cost</dt><dd class="cost">\$0\.\d{4}</dd>', page)


def _one_spec():
    return spec_from_dict(
        {
            "opener": "hello",
            "max_messages": 8,
            "on_loop": "continue",
            "participants": [
                {"name": "gpt-1", "model": "openai/gpt-4o", "system": "Be brief."},
                {"name": "gpt-2", "model": "openai/gpt-4o", "system": "Be brief."},
            ],
        }
    )


def test_a_real_runs_cost_falls_inside_the_estimate(tmp_path):
    """The estimate of examples/open-ended.toml with hosted participants, then the same conversations run by a
    backend that reports usage as a provider does: the cost they recorded lies within the range."""
    from duologue.experiment_spec import load_toml

    data = load_toml("examples/open-ended.toml")
    data["participants"] = [
        {"name": "haiku", "model": "anthropic/claude-haiku-4-5", "max_tokens": 60},
        {"name": "gpt", "model": "openai/gpt-4o-mini", "max_tokens": 60},
    ]
    data["repeats"] = 1
    data["concurrency"] = {"default": 4}
    exp = experiment_from_dict(data)
    db = tmp_path / "d.db"

    def varied(p):  # replies of 15, 25 and 35 words in turn (24 to 56 tokens; max_tokens is 60)
        return Hosted(p.model, words=(15, 25, 35))

    # A first run of one conversation puts replies of these models in the store: their typical length.
    api.run_conversation(_pair_spec(), db=db, make_backend=varied)
    out = invoke("batch", "examples/open-ended.toml", "--dry-run", "--db", str(db)).stdout
    assert "estimate:" in out and "cost $0" in out  # the embedded file as it ships: free
    from duologue.costs.estimate import estimate_with_store
    from duologue.spec_checks import planned

    plans = planned(exp)
    est = estimate_with_store([p.spec for p in plans], db)
    assert not est.unknown and est.low.cost < est.high.cost
    result = run_experiment(exp, db=db, make_backend=varied)
    assert result.finished == len(plans) == 9
    assert est.low.cost <= result.cost <= est.high.cost, (est.low.cost, result.cost, est.high.cost)
    with Store(db) as store:
        messages = store.experiment_messages(exp.name)
    prompt = sum(m.prompt_tokens or 0 for m in messages)
    assert est.low.tokens.prompt <= prompt <= est.high.tokens.prompt


def _pair_spec():
    return spec_from_dict(
        {
            "max_messages": 30,
            "on_loop": "continue",
            "participants": [
                {"name": "haiku", "model": "anthropic/claude-haiku-4-5", "max_tokens": 60},
                {"name": "gpt", "model": "openai/gpt-4o-mini", "max_tokens": 60},
            ],
        }
    )


def test_the_estimate_counts_the_quadratic_history_and_caching():
    def spec(model, n):
        return spec_from_dict(
            {"max_messages": n, "participants": [{"name": "x", "model": model}, {"name": "y", "model": model}]}
        )

    short, long = estimate([spec("openai/gpt-4o", 10)]), estimate([spec("openai/gpt-4o", 40)])
    # 39 generated messages instead of 9: not 4.3 times the prompt tokens but about (39·40)/(9·10) = 17 times
    # (every turn re-sends the history).
    assert 15 < long.high.tokens.prompt / short.high.tokens.prompt < 21
    cached = estimate([spec("anthropic/claude-haiku-4-5", 40)])
    assert cached.high.tokens.cache_read > 0 and cached.high.tokens.cache_write > 0
    # A participant that turns the breakpoints off (extra.anthropic_cache = false) is counted without a cache.
    off = spec("anthropic/claude-haiku-4-5", 40)
    off.participants = [p.model_copy(update={"extra": {"anthropic_cache": False}}) for p in off.participants]
    uncached = estimate([off])
    assert (uncached.high.tokens.cache_read, uncached.high.tokens.cache_write) == (0, 0)
    assert uncached.high.tokens.prompt == cached.high.tokens.prompt and uncached.high.cost > cached.high.cost
    assert estimate([spec("local/smollm2", 40)]).high.cost == 0
    unknown = estimate([spec("ollama/llama3.2", 10)])
    assert unknown.unknown == {"ollama/llama3.2": "self-hosted endpoint"} and math.isclose(unknown.high.cost, 0)


def test_batch_asks_before_spending_and_refuses_without_a_terminal(tmp_path):
    toml = tmp_path / "big.toml"
    toml.write_text(
        'name = "big"\nrepeats = 50\nmax_messages = 30\npairings = "all_with_self"\n'
        '[[participants]]\nname = "opus"\nmodel = "anthropic/claude-opus-4-1"\nmax_tokens = 1000\n'
    )
    refused = invoke("batch", str(toml), "--db", str(tmp_path / "d.db"), code=2)
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "may cost $" in line and "--yes" in line
    assert not (tmp_path / "d.db").exists()  # nothing was run or written
    cheap = invoke("batch", str(toml), "--dry-run", "--json", "--db", str(tmp_path / "d.db")).stdout
    est = json.loads(cheap)["estimate"]
    assert est["high"]["cost_usd"] > est["low"]["cost_usd"] > 1


def test_a_reply_without_a_price_under_a_limit_ends_the_run_with_an_error(tmp_path):
    class Silent(Hosted):  # its third reply comes without token counts
        async def complete(self, messages, sampling, on_event=None):
            reply = await super().complete(messages, sampling, on_event)
            if self.calls == 3:
                reply.usage = Usage()
            return reply

    run = api.run_conversation(paid_spec(cost_limit=10), db=tmp_path / "d.db", make_backend=lambda p: Silent(p.model))
    assert (run.status, run.stop_reason, len(run.messages)) == ("error", "error", 6)
    assert run.stop_detail == (
        "the cost of message 6 (anthropic/claude-haiku-4-5) is unknown (the provider reported no token counts), "
        "so the cost limit cannot be kept"
    )


def test_a_runs_cost_in_one_phrase_counts_its_own_messages_and_says_why_some_are_unknown():
    from duologue.costs import describe_cost
    from duologue.records import Message, Run

    def message(index, cost=None, source=None, injected=False):
        return Message(index=index, speaker="a", content="x", injected=injected, cost=cost, cost_source=source)

    kept = [message(1, injected=True), message(2, 1.0, PRICE_DATA), message(3)]  # a fork's: its parent's
    own = [message(4, 0.0123, PRICE_DATA), message(5, None, "unknown: self-hosted endpoint"), message(6)]
    run = Run(id="f", participants=["a", "b"], started_at=utcnow(), spec={}, fork_at=3, messages=kept + own)
    assert describe_cost(run) == (
        f"$0.0123 + 2 messages of unknown cost (self-hosted endpoint; not recorded) ({PRICE_DATA})"
    )
    run.messages = kept + [message(4, None, "unknown: self-hosted endpoint")]
    assert describe_cost(run) == "unknown (self-hosted endpoint)"
    run.messages = kept
    assert describe_cost(run) == "$0 (no generated messages)"
