"""Would the listener reading while the speaker speaks pay? The decode calls it would make, timed on the bare engine.

In a conversation each participant keeps its own llama sequence. Today, while
one side speaks, the other side's sequence waits; when the message ends it
evaluates the whole message as one prompt chunk. "Listener prefill" would
instead put each sampled token into the listener's sequence in the same
`llama_decode` call as the speaker's next token, so that no chunk is left when
the message ends. The arithmetic is the same tokens either way; what differs is
how they are grouped into calls, and on a CPU that decides the time.

This script makes exactly those calls on a bare llama.cpp context (no duologue,
no sampling: the same for both), for K conversations sharing one context
(K speakers, K listeners, a message of M tokens each), with each weight file
and thread count the engine uses for that work:

- today: M calls of the K speakers' tokens, then each listener's M tokens as
  one chunk (what the shared engine does, engine.py);
- listener prefill: M calls of 2K tokens (each speaker's token and its
  listener's copy of the previous one).

It prints the seconds per message round of each and their ratio (above 1:
listener prefill would be faster). Measured on 2 cores, 2026-11-27 (`make
bench` row 3c), it was slower in each configuration the engine runs (Q8_0 for
a lone conversation on 2 threads, BF16 shards of one thread for a batch); it
was faster only for Q8_0 with 8 conversations on one 2-thread context, which
is itself slower than the BF16 shards without it. So the engine does not do
it; run this on another machine to see whether it would pay there.

`--parallel` measures the other way a listener could read as the speaker
speaks: a lone conversation's two participants on two one-thread contexts,
one per core, the listener's context taking in the speaker's tokens a piece at
a time on the other core while the speaker decodes, against the engine's one
2-thread context. Measured 2026-11-28 on 2 cores (80-token messages, 400 and
700 tokens of context) it was even on Q8_0 (0.97-1.04x) and slower on BF16
(0.75-0.77x): one-token steps on one thread lose what the hidden chunk saves.

    python bench/listener_prefill.py [--tokens 64] [--context 400] [--repeats 3] [--parallel]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from functools import partial

from duologue.backends.embedded.catalogue import resolve_gguf
from duologue.backends.embedded.weights import derived
from turn_cost import MODEL, BareContext

# (conversations sharing the context, threads): a lone conversation on the 2-thread engine, a batch's
# shard of one thread holding 4 conversations (8 at once on 2 cores), 8 on one 2-thread engine.
CONFIGS = [(1, 2), (4, 1), (8, 2)]


def decode(bare: BareContext, work: list[tuple[int, list[int]]]) -> None:
    """One llama_decode of these (sequence, tokens) pieces, after what each sequence holds."""
    b, n = bare.batch, 0
    for seq, tokens in work:
        pos = len(bare.held[seq])
        for i, t in enumerate(tokens):
            b.token[n], b.pos[n], b.n_seq_id[n], b.seq_id[n][0] = t, pos + i, 1, seq
            b.logits[n] = i == len(tokens) - 1
            n += 1
        bare.held[seq].extend(tokens)
    b.n_tokens = n
    if bare.ll.llama_decode(bare.ctx, b) != 0:
        raise RuntimeError("llama_decode failed")


def round_today(bare: BareContext, k: int, m: int) -> float:
    """K speakers (sequences 0..K-1) decode M tokens together; then each listener (K..2K-1) evaluates them."""
    t0 = time.perf_counter()
    for step in range(m):
        decode(bare, [(s, [500 + step]) for s in range(k)])
    for s in range(k):
        decode(bare, [(k + s, [500 + step for step in range(m)])])
    return time.perf_counter() - t0


def round_prefill(bare: BareContext, k: int, m: int) -> float:
    """The same tokens, each listener fed the speaker's previous token in the speaker's next call."""
    t0 = time.perf_counter()
    for step in range(m + 1):
        work = [(s, [500 + step]) for s in range(k)] if step < m else []
        work += [(k + s, [500 + step - 1]) for s in range(k)] if step > 0 else []
        work.sort()  # llama.cpp groups sequences on consecutive streams in increasing order
        decode(bare, work)
    return time.perf_counter() - t0


def prepared(path, tokens: int, context: int, repeats: int, n_seqs: int, threads: int) -> BareContext:
    """A bare context of `n_seqs` sequences on a fixed thread count (as the engine's shards are), each
    holding `context` tokens of history, with room for the rounds to come."""
    per_seq = -(-(context + 2 * tokens * (repeats + 1) + 64) // 256) * 256
    bare = BareContext(per_seq, n_seqs, path=path)
    bare.ll.llama_set_n_threads(bare.ctx, threads, threads)
    bare.probe.free_cores = lambda: threads
    bare.n_threads = threads
    for s in range(n_seqs):
        bare.eval(s, [300 + i % 1000 for i in range(context)])
    return bare


def alternate(repeats: int, ways: tuple[Callable[[], float], Callable[[], float]], contexts, context: int):
    """The median seconds of each of two ways over `repeats` rounds, alternating which goes first, each
    round from the same history (every sequence of `contexts` cut back to its first `context` tokens)."""
    times: tuple[list[float], list[float]] = ([], [])
    for rep in range(repeats):
        for i in (0, 1) if rep % 2 == 0 else (1, 0):
            for bare in contexts:
                for s in range(len(bare.held)):
                    bare.keep(s, context)
            times[i].append(ways[i]())
    return statistics.median(times[0]), statistics.median(times[1])


def measure(tokens: int = 64, context: int = 400, repeats: int = 3) -> list[dict]:
    source = resolve_gguf(MODEL)
    out = []
    for kind in ("q8_0", "bf16"):
        path = derived(source, kind)
        for k, threads in CONFIGS:
            bare = prepared(path, tokens, context, repeats, 2 * k, threads)
            try:
                ways = (partial(round_today, bare, k, tokens), partial(round_prefill, bare, k, tokens))
                t, p = alternate(repeats, ways, [bare], context)
            finally:
                bare.close()
            out.append({"weights": kind, "k": k, "threads": threads, "today_s": t, "prefill_s": p, "ratio": t / p})
    return out


def round_parallel(speaker: BareContext, listener: BareContext, m: int, piece: int) -> float:
    """A lone conversation with its participants on two one-thread contexts (one per core): the speaker
    decodes its M tokens on one while the listener's takes them in, `piece` tokens at a time, on the other."""
    produced, ready = [0], threading.Condition()

    def listen() -> None:
        done = 0
        while done < m:
            with ready:
                while produced[0] - done < piece and produced[0] < m:
                    ready.wait()
                upto = produced[0]
            decode(listener, [(0, [500 + step for step in range(done, upto)])])
            done = upto

    t0 = time.perf_counter()
    thread = threading.Thread(target=listen)
    thread.start()
    for step in range(m):
        decode(speaker, [(0, [500 + step])])
        with ready:
            produced[0] = step + 1
            ready.notify()
    thread.join()
    return time.perf_counter() - t0


def measure_parallel(tokens: int = 64, context: int = 400, repeats: int = 3, pieces=(8, 16)) -> list[dict]:
    """A lone conversation's round today (one 2-thread context) against its participants on two one-thread
    contexts, the listener reading on the other core as the speaker speaks."""
    source = resolve_gguf(MODEL)
    out = []
    for kind in ("q8_0", "bf16"):
        path = derived(source, kind)
        contexts = [prepared(path, tokens, context, repeats, n, n) for n in (2, 1, 1)]
        both, speaker, listener = contexts
        try:
            for piece in pieces:
                parallel = partial(round_parallel, speaker, listener, tokens, piece)
                ways = (partial(round_today, both, 1, tokens), parallel)
                t, p = alternate(repeats, ways, contexts, context)
                out.append({"weights": kind, "piece": piece, "today_s": t, "parallel_s": p, "ratio": t / p})
        finally:
            for bare in contexts:
                bare.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64, help="tokens per message (M)")
    ap.add_argument("--context", type=int, default=400, help="tokens each sequence holds before the round")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="instead: a lone conversation's participants on two one-thread contexts, the listener reading "
        "on the other core as the speaker speaks, against one 2-thread context",
    )
    args = ap.parse_args()
    if args.parallel:
        rows = measure_parallel(args.tokens, args.context, args.repeats)
        heading = f"a lone conversation's round: {args.tokens} tokens said and taken in"
        header = f"{'weights':8} {'piece':>6} {'one 2-thread context':>21} {'two 1-thread':>13} {'ratio':>7}"

        def line(r: dict) -> str:
            return f"{r['weights']:8} {r['piece']:>6} {r['today_s']:20.3f}s {r['parallel_s']:12.3f}s {r['ratio']:6.2f}x"

        footer = "above 1x the two contexts would be faster; below, one 2-thread context (the engine's way) is"
    else:
        rows = measure(args.tokens, args.context, args.repeats)
        heading = f"a round: K speakers say {args.tokens} tokens each, K listeners take them in"
        header = f"{'weights':8} {'K':>3} {'threads':>8} {'today':>9} {'listener prefill':>17} {'today / prefill':>16}"

        def line(r: dict) -> str:
            return (
                f"{r['weights']:8} {r['k']:>3} {r['threads']:>8} {r['today_s']:8.3f}s {r['prefill_s']:16.3f}s "
                f"{r['ratio']:15.2f}x"
            )

        footer = "above 1x listener prefill would be faster; below, the engine's way (a chunk at the message's end) is"
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{heading}; medians of {args.repeats}")
    print(header)
    for r in rows:
        print(line(r))
    print(f"\n{footer}")


if __name__ == "__main__":
    main()
