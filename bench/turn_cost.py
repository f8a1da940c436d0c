"""Turn cost does not grow with the history: a 40-message conversation on the embedded model.

Runs one real duologue conversation (a llama context per participant, prefix
reuse), then replays exactly the same conversation the naive way: one shared
context that re-evaluates the whole history every turn (what a loop that just
re-sends the chat does). Both replays feed the same tokens, so the only
difference is what gets evaluated. Prints time per turn at the start and at
the end, and the ratios, measured side by side in this one run.

    python bench/turn_cost.py [--messages 40] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from duologue.api import arun_conversation
from duologue.backends.llamacpp import LlamaCppBackend, LlamaSettings
from duologue.engine import participant_view
from duologue.spec import ConversationSpec, Participant


def make_spec(messages: int, max_tokens: int, n_ctx: int) -> ConversationSpec:
    common = dict(max_tokens=max_tokens, context_length=n_ctx, temperature=0.9)
    return ConversationSpec(
        participants=[
            Participant(name="a", system="You are a curious philosopher. Ask questions.", seed=11, **common),
            Participant(name="b", system="You are a patient scientist. Explain things.", seed=12, **common),
        ],
        opener="What is the most surprising thing you know?",
        max_messages=messages,
    )


def replay(spec: ConversationSpec, messages, shared: bool) -> list[float]:
    """Time each turn of `messages`, feeding the recorded completions token by token.

    shared=False: one context per participant (duologue). shared=True: one
    context for both, reset every turn (the naive loop re-evaluating everything).
    """
    backends = {p.name: LlamaCppBackend(p.model, LlamaSettings(p.context_length, None, 0)) for p in spec.participants}
    if shared:
        one = backends[spec.participants[0].name]
        backends = {p.name: one for p in spec.participants}
    times = []
    for i, m in enumerate(messages):
        if m.injected:
            continue
        p = spec.participant(m.speaker)
        backend = backends[p.name]
        llm = backend._load()
        view = participant_view(p, messages[:i], len(spec.participants))
        prompt = backend.prompt_tokens(view)
        completion = llm.tokenize(m.content.encode("utf-8"), add_bos=False, special=False)
        t0 = time.perf_counter()
        if shared:
            llm.reset()
            keep = 0
        else:
            keep = 0
            for x, y in zip(llm.input_ids[: llm.n_tokens], prompt):
                if x != y:
                    break
                keep += 1
            keep = min(keep, len(prompt) - 1)
            llm.n_tokens = keep
            llm._ctx.kv_cache_seq_rm(-1, keep, -1)
        llm.eval(prompt[keep:])  # the prompt in one batch, as generation does
        for tok in completion:  # then the reply one token at a time, as decoding does
            llm.eval([tok])
        times.append(time.perf_counter() - t0)
    return times


def raw_decode_rate(n_ctx: int, at: int, tokens: int = 48) -> float:
    """Single-token decode speed of the bare engine with `at` tokens already in context (tokens/s)."""
    from duologue.backends.llamacpp import LlamaCppBackend, LlamaSettings

    llm = LlamaCppBackend("local/smollm2", LlamaSettings(n_ctx, None, 0))._load()
    filler = llm.tokenize(("The quick brown fox jumps over the lazy dog. " * 400).encode(), add_bos=False)
    llm.reset()
    llm.eval(filler[:at])
    t0 = time.perf_counter()
    for tok in filler[at : at + tokens]:
        llm.eval([tok])
    return tokens / (time.perf_counter() - t0)


def measure(messages: int = 40, max_tokens: int = 64, n_ctx: int = 4096) -> dict:
    """Everything rows 1 and 2 of `make bench` need, measured side by side."""
    spec = make_spec(messages, max_tokens, n_ctx)
    with tempfile.TemporaryDirectory() as tmp:
        run = asyncio.run(arun_conversation(spec, db=Path(tmp) / "d.db", watchers=[]))
    gen = [m for m in run.messages if not m.injected]
    live = [m.latency for m in gen]
    floor = replay(spec, run.messages, shared=False)
    naive = replay(spec, run.messages, shared=True)
    early, late = gen[3], gen[-1]  # message 5 and message 40 (message 1 is the opener)
    return {
        "messages": len(run.messages),
        "completion_tokens": sum(m.completion_tokens for m in gen),
        "live": live, "floor": floor, "naive": naive,
        "evaluated": [m.prompt_tokens - (m.cached_tokens or 0) for m in gen],
        "early": early, "late": late,
        # Per-token cost of message 5 and message 40 (their lengths differ).
        "early_ms_per_token": early.latency / max(1, early.completion_tokens) * 1000,
        "late_ms_per_token": late.latency / max(1, late.completion_tokens) * 1000,
        "raw_early_tps": raw_decode_rate(n_ctx, early.prompt_tokens),
        "raw_late_tps": raw_decode_rate(n_ctx, late.prompt_tokens),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--context-length", type=int, default=4096)
    args = ap.parse_args()
    r = measure(args.messages, args.max_tokens, args.context_length)
    live, floor, naive = r["live"], r["floor"], r["naive"]
    print(f"conversation: {r['messages']} messages, {r['completion_tokens']} completion tokens, "
          f"last prompt {r['late'].prompt_tokens} tokens")

    def head_tail(xs):
        k = 5
        return statistics.mean(xs[:k]), statistics.mean(xs[-k:])

    rows = [("duologue run (live, as generated)", live),
            ("raw engine floor: same tokens, bare eval", floor),
            ("naive: one context, whole history each turn", naive)]
    print(f"\n{'':44} {'first 5 turns':>14} {'last 5 turns':>13} {'end/start':>10} {'total':>9}")
    for label, xs in rows:
        s, e = head_tail(xs)
        print(f"{label:44} {s * 1000:11.1f} ms {e * 1000:10.1f} ms {e / s:9.2f}x {sum(xs):8.2f}s")
    print(f"\nnaive / duologue, total time:             {sum(naive) / sum(live):.2f}x")
    print(f"duologue / raw engine floor, total time:  {sum(live) / sum(floor):.2f}x")
    slow = r["late_ms_per_token"] / r["early_ms_per_token"]
    raw_slow = r["raw_early_tps"] / r["raw_late_tps"]
    print(f"message 5 -> 40, ms per completion token: {r['early_ms_per_token']:.1f} -> {r['late_ms_per_token']:.1f} "
          f"({slow:.2f}x); raw engine decode at {r['early'].prompt_tokens} -> {r['late'].prompt_tokens} tokens of "
          f"context: {r['raw_early_tps']:.0f} -> {r['raw_late_tps']:.0f} tokens/s ({raw_slow:.2f}x)")
    ev = r["evaluated"]
    print(f"prompt tokens evaluated per turn: first 5 {ev[:5]}, last 5 {ev[-5:]}")


if __name__ == "__main__":
    main()
