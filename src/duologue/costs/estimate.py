"""What conversations will cost, before they run: tokens and dollars as a range.

Each planned conversation is played through on paper, message by message, as
the engine would take turns: every generated message's request holds the
speaker's system prompt, its history and every message so far, so a
conversation's prompt tokens grow with the square of its length. Text is
counted as the hosted backends count a view they cannot tokenize (3.5
characters a token, 4 tokens of framing a message: backends/base.py).

The range's two ends differ in how long each reply is:

- low: a typical short reply, measured from the store: the lower quartile of
  the completion tokens of the replies it holds from the same model (its
  newest 5000), so that a conversation of the usual replies, some shorter and
  some longer, lands inside; when the store holds none, half of the
  participant's max_tokens (said as assumed);
- high: every reply at its max_tokens.

Each provider's caching is counted as it works: Anthropic requests mark cache
breakpoints (backends/anthropic.py; not when a participant sets
`extra.anthropic_cache = false`), so a turn reads the speaker's previous
prompt from the cache and writes the rest; OpenAI and DeepSeek cache a
repeated prefix of 1024 tokens or more by themselves, in steps of 128 tokens
(no write charge); other providers are counted without a cache. Prompts
shorter than 1024 tokens are not cached. A conversation that stops early (a
loop, an end marker) costs less than either end: the estimate assumes every
conversation runs to max_messages.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.anthropic import asks_prompt_cache
from ..backends.base import TOKENS_PER_MESSAGE, TOKENS_PER_REQUEST, chars_to_tokens
from ..engine import next_speaker
from ..records import Message, utcnow
from ..spec import ConversationSpec, Participant
from ..stopping import format_usd
from ..store import Store
from .prices import ModelPrices, model_prices

# Below this many prompt tokens no provider caches (Anthropic's and OpenAI's minimum).
MIN_CACHED = 1024
# OpenAI caches in steps of this many tokens after the first 1024.
CACHE_STEP = 128
# When the store has no reply of a model: the low end assumes replies this share of max_tokens long.
ASSUMED_SHARE = 0.5


def _tokens(text: str) -> int:
    return chars_to_tokens(len(text)) + TOKENS_PER_MESSAGE


def cache_kind(p: Participant) -> str:
    """How a participant's provider caches a repeated prompt: "breakpoints" (Anthropic, as duologue asks,
    unless the participant turns them off), "automatic" (OpenAI, DeepSeek, and those of their models
    OpenRouter serves) or "none"."""
    provider, _, name = p.model.partition("/")
    if provider == "anthropic":
        return "breakpoints" if asks_prompt_cache(p) else "none"
    if provider in ("openai", "deepseek") or (
        provider == "openrouter" and name.split("/")[0] in ("openai", "deepseek")
    ):
        return "automatic"
    return "none"


@dataclass
class Tokens:
    """Tokens of a set of requests: the prompt (cached and written parts included) and the completions."""

    prompt: int = 0
    cache_read: int = 0
    cache_write: int = 0
    completion: int = 0
    requests: int = 0

    def add(self, other: Tokens) -> None:
        self.prompt += other.prompt
        self.cache_read += other.cache_read
        self.cache_write += other.cache_write
        self.completion += other.completion
        self.requests += other.requests


def request_cost(prices: ModelPrices, prompt: int, read: int, write: int, completion: int) -> float:
    """USD for one request at these rates (a cache rate the data lacks: the input rate)."""
    plain = prompt - read - write
    read_rate = prices.cache_read if prices.cache_read is not None else prices.input
    write_rate = prices.cache_write if prices.cache_write is not None else prices.input
    return (plain * prices.input + read * read_rate + write * write_rate + completion * prices.output) / 1e6


def cached_part(kind: str, previous: int, prompt: int) -> tuple[int, int]:
    """(tokens read from the cache, tokens written to it) for a request of `prompt` tokens whose speaker's
    previous request had `previous` tokens (0: none)."""
    if kind == "breakpoints":
        read = previous if previous >= MIN_CACHED else 0
        write = prompt - read if prompt >= MIN_CACHED else 0
        return read, write
    if kind == "automatic" and previous >= MIN_CACHED:
        return previous // CACHE_STEP * CACHE_STEP, 0
    return 0, 0


@dataclass
class Side:
    """One end of the range: tokens and the cost of the models whose price is known."""

    tokens: Tokens = field(default_factory=Tokens)
    cost: float = 0.0


@dataclass
class Estimate:
    conversations: int
    messages: int  # generated messages, every conversation run to max_messages
    low: Side
    high: Side
    typical: dict[str, tuple[float, str]]  # model -> (reply tokens at the low end, where that comes from)
    unknown: dict[str, str]  # model -> why it has no price (its tokens counted, its cost not)

    def as_dict(self) -> dict:
        def side(s: Side) -> dict:
            t = s.tokens
            return {
                "prompt_tokens": t.prompt,
                "cache_read_tokens": t.cache_read,
                "cache_write_tokens": t.cache_write,
                "completion_tokens": t.completion,
                "cost_usd": round(s.cost, 6),
            }

        return {
            "conversations": self.conversations,
            "generated_messages": self.messages,
            "low": side(self.low),
            "high": side(self.high),
            "typical_reply_tokens": {m: {"tokens": round(t, 1), "from": src} for m, (t, src) in self.typical.items()},
            "unknown_prices": self.unknown,
        }

    def lines(self) -> list[str]:
        """The estimate for people: tokens and cost as ranges, then what the low end assumes."""
        lo, hi = self.low, self.high
        cost = f"{format_usd(lo.cost)}–{format_usd(hi.cost)}"
        if self.unknown:
            cost += " (without the models of unknown price)"
        out = [
            f"estimate: {_n(lo.tokens.prompt)}–{_n(hi.tokens.prompt)} prompt tokens "
            f"({_n(lo.tokens.cache_read)}–{_n(hi.tokens.cache_read)} read from a cache), "
            f"{_n(lo.tokens.completion)}–{_n(hi.tokens.completion)} completion tokens; cost {cost}",
            f"  {self.messages} generated messages over {self.conversations} conversation"
            f"{'s' if self.conversations != 1 else ''}, each to its max_messages; low: replies of a typical "
            "length, high: every reply at max_tokens",
        ]
        out += [f"  typical reply of {m}: {t:.0f} tokens ({src})" for m, (t, src) in self.typical.items()]
        out += [f"  no price for {m}: {why}" for m, why in self.unknown.items()]
        return out


def _n(count: int) -> str:
    if count >= 10_000_000:
        return f"{count / 1e6:.0f}M"
    if count >= 1_000_000:
        return f"{count / 1e6:.1f}M"
    if count >= 10_000:
        return f"{count / 1e3:.0f}k"
    return str(count)


def play(spec: ConversationSpec, reply_tokens: Callable[[Participant], float]) -> list[tuple[Participant, int, int]]:
    """The conversation on paper: (speaker, prompt tokens, completion tokens) for each generated message,
    every reply `reply_tokens(participant)` long, to max_messages."""
    messages: list[Message] = [Message(index=1, speaker=spec.participants[0].name, content="", injected=True)]
    sizes = {1: _tokens(spec.opener)}  # message index -> its tokens in a view
    out: list[tuple[Participant, int, int]] = []
    now = utcnow()
    for index in range(2, spec.max_messages + 1):
        injection = spec.injection_at(index)
        if injection is not None:
            messages.append(Message(index=index, speaker=injection.as_, content="", injected=True, started_at=now))
            sizes[index] = _tokens(injection.text)
            continue
        speaking = {q.name: q for q in spec.participants_at(index)}
        p = speaking[next_speaker(spec, messages).name]
        fixed = (_tokens(p.system) if p.system else 0) + sum(_tokens(t.content) for t in p.history)
        prompt = fixed + sum(sizes.values()) + TOKENS_PER_REQUEST
        completion = max(1, round(min(reply_tokens(p), p.max_tokens)))
        out.append((p, prompt, completion))
        messages.append(Message(index=index, speaker=p.name, content="", started_at=now))
        sizes[index] = completion + TOKENS_PER_MESSAGE
    return out


def _tally(
    specs: Iterable[ConversationSpec],
    reply_tokens: Callable[[Participant], float],
    prices: Mapping[str, ModelPrices | str],
) -> Side:
    side = Side()
    for spec in specs:
        previous: dict[tuple[str, str], int] = {}  # (speaker, model) -> its previous prompt
        for p, prompt, completion in play(spec, reply_tokens):
            # A participant's request extends its own previous one (its view only grows): that is the
            # prefix its provider finds cached. A change of model starts another cache.
            model = p.model
            read, write = cached_part(cache_kind(p), previous.get((p.name, model), 0), prompt)
            previous[(p.name, model)] = prompt
            side.tokens.add(Tokens(prompt, read, write, completion, 1))
            rates = prices.get(model)
            if isinstance(rates, ModelPrices):
                side.cost += request_cost(rates, prompt, read, write, completion)
    return side


def typical_reply(lengths: list[int]) -> float:
    """The low end's reply: the lower quartile of measured reply lengths (inclusive method)."""
    if len(lengths) == 1:
        return float(lengths[0])
    return statistics.quantiles(lengths, n=4, method="inclusive")[0]


def estimate(specs: list[ConversationSpec], measured: Mapping[str, list[int]] | None = None) -> Estimate:
    """The range of what these conversations cost. `measured`: {model: completion tokens of its stored
    replies} (Store.reply_lengths)."""
    lengths = {m: (len(v), typical_reply(v)) for m, v in (measured or {}).items() if v}
    models = sorted({m for spec in specs for m in spec.models()})
    prices: dict[str, ModelPrices | str] = {}
    for spec in specs:
        for p in spec.participants:
            if p.model not in prices:
                prices[p.model] = model_prices(p.model, p.base_url)
    for model in models:  # a change's or the summarizer's model that no participant starts with
        if model not in prices:
            prices[model] = model_prices(model)
    unknown = {m: why.removeprefix("unknown: ") for m, why in prices.items() if isinstance(why, str)}
    typical: dict[str, tuple[float, str]] = {}

    def low_reply(p: Participant) -> float:
        n, short = lengths.get(p.model, (0, 0.0))
        if n:
            typical.setdefault(p.model, (short, f"lower quartile of {n} stored repl{'y' if n == 1 else 'ies'}"))
            return short
        typical.setdefault(p.model, (p.max_tokens * ASSUMED_SHARE, "assumed: half of max_tokens, none stored"))
        return p.max_tokens * ASSUMED_SHARE

    low = _tally(specs, low_reply, prices)
    high = _tally(specs, lambda p: p.max_tokens, prices)
    return Estimate(len(specs), high.tokens.requests, low, high, typical, unknown)


def estimate_with_store(specs: list[ConversationSpec], db: str | Path) -> Estimate:
    """`estimate`, each model's typical reply measured from the store at `db` (when there is one)."""
    measured: dict[str, list[int]] = {}
    if Path(db).exists():
        with Store(db, create=False) as store:
            measured = store.reply_lengths(m for spec in specs for m in spec.models())
    return estimate(specs, measured)
