"""The shipped Q4_1 weights against their Q8_0 and BF16 conversions, side by side on this machine.

The bare llama.cpp engine (no duologue), with the embedded engine's context
settings: prompt evaluation (64-token chunks) and decoding one token for each of
B = 1, 2, 4, 8 sequences per `llama_decode` call, for the three weight files.
This is what `weights = "auto"` rests on (backends/embedded/weights.py): the
weights that decode a lone sequence fastest, and those that gain most from a
batch. The derived files are made (once) in the cache folder, as the engine
makes them.

    python bench/weights.py [--context 600] [--steps 32]
"""

from __future__ import annotations

import argparse
import json
import time

from decode_ceiling import decode_rate, fill, prefill_rate
from duologue.backends.embedded.catalogue import resolve_gguf
from duologue.backends.embedded.weights import derived
from turn_cost import MODEL, BareContext

BATCHES = [1, 2, 4, 8]
KINDS = ("q4_1", "q8_0", "bf16")


def measure(context: int = 600, steps: int = 32) -> dict:
    """{weights: {"prefill": tok/s, "decode": {B: tok/s}, "ready_s": seconds}} for q4_1, q8_0 and bf16."""
    source = resolve_gguf(MODEL)
    paths, ready = {"q4_1": source}, {"q4_1": 0.0}
    for kind in KINDS[1:]:
        t0 = time.perf_counter()
        paths[kind] = derived(source, kind)
        ready[kind] = time.perf_counter() - t0
    out: dict = {}
    per_seq = -(-(context + steps + 128) // 256) * 256
    for name, path in paths.items():
        bare = BareContext(per_seq, max(BATCHES), path=path)
        try:
            fill(bare, context, max(BATCHES))
            rates = {n: decode_rate(bare, n, steps) for n in BATCHES}
            out[name] = {"prefill": prefill_rate(bare), "decode": rates, "ready_s": ready[name]}
        finally:
            bare.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--context", type=int, default=600)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = measure(args.context, args.steps)
    if args.json:
        print(json.dumps(r))
        return
    print(
        f"context {args.context} tokens per sequence; Q8_0 file ready in {r['q8_0']['ready_s']:.2f} s, "
        f"BF16 in {r['bf16']['ready_s']:.2f} s"
    )
    print(f"{'weights':8} {'prefill 64':>11}  " + "  ".join(f"{f'B={n}':>13}" for n in BATCHES))
    for name in KINDS:
        d = r[name]["decode"]
        cells = "  ".join(f"{d[n]:5.0f} ({d[n] / d[1]:.2f}x)" for n in BATCHES)
        print(f"{name:8} {r[name]['prefill']:7.0f} t/s  {cells}")
    print("\ndecode tokens/s with B sequences decoded together (ratio to B=1); prefill: one 64-token chunk")


if __name__ == "__main__":
    main()
