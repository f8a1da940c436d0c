"""What Anthropic's prompt cache saves on a 30-turn conversation, from the request bodies duologue sends.

A 30-message conversation between two instances of claude-sonnet-4-5 (the
open-ended protocol's "freedom" system prompt, replies of about 300 tokens) is
played through duologue's own code: each participant's view
(engine.participant_view) becomes the body backends/anthropic.py sends, once
with its cache breakpoints (the default) and once without
(`extra.anthropic_cache = false`). Each body then goes through the prompt cache
as Anthropic documents it: a request reads the longest of its marked prefixes
that an earlier request wrote (and is still cached), writes every marked prefix
of 1024 tokens or more (the minimum cacheable length of the Sonnet models), and
pays the tokens after its last breakpoint as plain input. Tokens are counted at
3.5 characters a token. The input of each request (plain, cache reads, cache
writes) is priced from genai-prices' bundled data (costs/prices.py), the same
prices a run records; the output costs the same either way and is left out.

    python bench/caching_cost.py [--turns 30] [--reply-tokens 300] [--model claude-sonnet-4-5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from duologue.backends.anthropic import AnthropicBackend  # noqa: E402
from duologue.backends.base import CHARS_PER_TOKEN, Sampling, Usage  # noqa: E402
from duologue.backends.registry import PROVIDERS  # noqa: E402
from duologue.costs.prices import price_data_version, price_usage  # noqa: E402
from duologue.engine import participant_view  # noqa: E402
from duologue.records import Message  # noqa: E402
from duologue.spec import Participant  # noqa: E402

SYSTEM = "You have complete freedom. Feel free to pursue whatever you want."
MIN_CACHEABLE = 1024  # tokens: the Sonnet models' minimum cacheable prompt


def tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN + 0.999)


def blocks(content) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def cache_usage(body: dict, cache: set[str]) -> Usage:
    """The usage Anthropic reports for this body, given the prefixes already cached (updated)."""
    seq = blocks(body.get("system") or []) + [b for m in body["messages"] for b in blocks(m["content"])]
    total, prefix, marks = 0, [], []
    for b in seq:
        total += tokens(b["text"])
        prefix.append(b["text"])
        if b.get("cache_control"):
            marks.append((json.dumps(prefix), total))
    read = max((n for key, n in marks if key in cache), default=0)
    written = 0
    for key, n in marks:
        if n >= MIN_CACHEABLE and key not in cache:
            cache.add(key)
            written = max(written, n)
    write = max(0, written - read)
    return Usage(prompt_tokens=total, completion_tokens=0, cached_tokens=read, cache_write_tokens=write)


def reply(n: int, length: int) -> str:
    words = [f"thought{n}-{i}" for i in range(length)]
    return " ".join(words)[: int(length * CHARS_PER_TOKEN)]


def measure(turns: int = 30, reply_tokens: int = 300, model: str = "claude-sonnet-4-5") -> dict:
    provider = PROVIDERS["anthropic"]
    results = {}
    for cached in (True, False):
        extra = {} if cached else {"anthropic_cache": False}
        people = [Participant(name=n, model=f"anthropic/{model}", system=SYSTEM, extra=extra) for n in ("a", "b")]
        backends = {p.name: AnthropicBackend.for_participant(p, provider, model) for p in people}
        messages = [Message(index=1, speaker="a", content=" ", injected=True)]
        cache: set[str] = set()
        totals = {"cost": 0.0, "prompt": 0, "read": 0, "write": 0, "requests": 0}
        for index in range(2, turns + 1):
            p = people[(index - 1) % 2]
            view = participant_view(p, messages, 2)
            body = backends[p.name].request(view, Sampling(max_tokens=reply_tokens))
            usage = price_usage(f"anthropic/{model}", cache_usage(body, cache))
            totals["cost"] += usage.cost or 0.0
            totals["prompt"] += usage.prompt_tokens or 0
            totals["read"] += usage.cached_tokens or 0
            totals["write"] += usage.cache_write_tokens or 0
            totals["requests"] += 1
            messages.append(Message(index=index, speaker=p.name, content=reply(index, reply_tokens)))
        results["cached" if cached else "uncached"] = totals
    results.update(turns=turns, reply_tokens=reply_tokens, model=model, prices=price_data_version())
    return results


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    """Row 11: (what, measured, ratio, target)."""
    c, u = r["cached"], r["uncached"]
    return [
        (
            f"{r['turns']}-message {r['model']} conversation, ~{r['reply_tokens']}-token replies: input cost "
            f"with cache breakpoints / without ({r['prices']})",
            f"${c['cost']:.3f} / ${u['cost']:.3f}",
            f"{c['cost'] / u['cost']:.2f}x",
            "≤ 0.5x",
        ),
        (
            "  its prompt tokens: read from the cache, written to it, of all sent",
            f"{c['read']:,} + {c['write']:,} of {c['prompt']:,}",
            "",
            "",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--reply-tokens", type=int, default=300)
    parser.add_argument("--model", default="claude-sonnet-4-5")
    args = parser.parse_args()
    result = measure(args.turns, args.reply_tokens, args.model)
    for what, measured, ratio, target in rows(result):
        print(f"{what}\n    " + "  ".join(x for x in (measured, ratio, target) if x))
