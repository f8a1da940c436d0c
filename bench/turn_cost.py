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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--context-length", type=int, default=4096)
    args = ap.parse_args()

    spec = make_spec(args.messages, args.max_tokens, args.context_length)
    with tempfile.TemporaryDirectory() as tmp:
        run = asyncio.run(arun_conversation(spec, db=Path(tmp) / "d.db", watchers=[]))
    gen = [m for m in run.messages if not m.injected]
    live = [m.latency for m in gen]
    print(f"conversation: {len(run.messages)} messages, {sum(m.completion_tokens for m in gen)} completion tokens, "
          f"last prompt {gen[-1].prompt_tokens} tokens")

    per_participant = replay(spec, run.messages, shared=False)
    naive = replay(spec, run.messages, shared=True)

    def head_tail(xs):
        k = 5
        return statistics.mean(xs[:k]), statistics.mean(xs[-k:])

    rows = [("duologue run (live, as generated)", live),
            ("replay: a context per participant", per_participant),
            ("replay: naive, whole history each turn", naive)]
    print(f"\n{'':42} {'first 5 turns':>14} {'last 5 turns':>13} {'end/start':>10} {'total':>9}")
    for label, xs in rows:
        s, e = head_tail(xs)
        print(f"{label:42} {s * 1000:11.1f} ms {e * 1000:10.1f} ms {e / s:9.2f}x {sum(xs):8.2f}s")
    s1, e1 = head_tail(per_participant)
    s2, e2 = head_tail(naive)
    print(f"\nnaive / per-participant, total time:      {sum(naive) / sum(per_participant):.2f}x")
    print(f"naive / per-participant, last 5 turns:    {e2 / e1:.2f}x")
    evaluated = [m.prompt_tokens - (m.cached_tokens or 0) for m in gen]
    print(f"prompt tokens evaluated per turn (live): first 5 {evaluated[:5]}, last 5 {evaluated[-5:]}")


if __name__ == "__main__":
    main()
