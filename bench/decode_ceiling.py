"""What batching can give on this machine: the bare llama.cpp engine, no duologue.

Decodes one token for each of B sequences per `llama_decode` call (B = 1, 2,
4, 8, 16) on a bare context with the embedded engine's settings, at a short and
a long context, and evaluates 64-token prompt chunks. The ratio of batched to
single-token decoding is the most that decoding several conversations together
can gain; prompt evaluation, which conversations also need, gains nothing.
This is the ceiling row 3 of `make bench` is measured against.

    python bench/decode_ceiling.py [--contexts 300,1200] [--steps 48]
"""

from __future__ import annotations

import argparse
import time

from turn_cost import BareContext

BATCHES = [1, 2, 4, 8, 16]


def fill(bare: BareContext, seq_tokens: int, n_seqs: int) -> None:
    for s in range(n_seqs):
        bare.eval(s, [300 + i % 1000 for i in range(seq_tokens)])


def decode_rate(bare: BareContext, n: int, steps: int) -> float:
    """Tokens/s decoding one token for each of sequences 0..n-1 per call; the caches are restored after."""
    ll, b = bare.ll, bare.batch
    starts = [len(bare.held[s]) for s in range(n)]
    t0 = time.perf_counter()
    for step in range(steps):
        for j in range(n):
            b.token[j], b.pos[j], b.n_seq_id[j], b.seq_id[j][0], b.logits[j] = 500, starts[j] + step, 1, j, True
        b.n_tokens = n
        if ll.llama_decode(bare.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
    rate = n * steps / (time.perf_counter() - t0)
    for j in range(n):
        ll.llama_memory_seq_rm(bare.mem, j, starts[j], -1)
    return rate


def prefill_rate(bare: BareContext, chunk: int = 64, repeats: int = 6) -> float:
    start = len(bare.held[0])
    t0 = time.perf_counter()
    for _ in range(repeats):
        bare.eval(0, [400 + i for i in range(chunk)])
        bare.keep(0, start)
    return chunk * repeats / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contexts", default="300,1200")
    ap.add_argument("--steps", type=int, default=48)
    args = ap.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    per_seq = -(-(max(contexts) + args.steps + 128) // 256) * 256
    bare = BareContext(per_seq, max(BATCHES))
    try:
        print(f"{'context':>8} {'prefill 64':>11}  " + "  ".join(f"{f'B={n}':>13}" for n in BATCHES))
        for ctx_len in contexts:
            for s in range(max(BATCHES)):
                bare.keep(s, 0)
            fill(bare, ctx_len, max(BATCHES))
            rates = {n: decode_rate(bare, n, args.steps) for n in BATCHES}
            cells = "  ".join(f"{rates[n]:5.0f} ({rates[n] / rates[1]:.2f}x)" for n in BATCHES)
            print(f"{ctx_len:>8} {prefill_rate(bare):7.0f} t/s  {cells}")
        print("\ndecode tokens/s per B sequences decoded together (ratio to B=1); prefill: one 64-token chunk")
    finally:
        bare.close()


if __name__ == "__main__":
    main()
