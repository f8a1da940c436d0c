"""The shipped Q4_1 weights against their Q8_0 and BF16 conversions, side by side on this machine.

The bare llama.cpp engine (no duologue), with the embedded engine's context
settings: prompt evaluation (64-token chunks) and decoding one token for each of
B = 1, 2, 4, 8 sequences per `llama_decode` call, for the three weight files.
And the quality each keeps: the mean negative log-likelihood the model gives
the next token of a fixed text (tests/fixtures/kimi-llama-period2.md, its
first 1,500 tokens; lower is better). This is what `weights = "auto"` rests
on (backends/embedded/weights.py): the
weights that decode a lone sequence fastest, and those that gain most from a
batch. The derived files are made (once) in the cache folder, as the engine
makes them.

    python bench/weights.py [--context 600] [--steps 32]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from decode_ceiling import decode_rate, fill, prefill_rate
from duologue.backends.embedded.catalogue import resolve_gguf
from duologue.backends.embedded.guard import llama_params
from duologue.backends.embedded.weights import derived
from turn_cost import MODEL, BareContext

BATCHES = [1, 2, 4, 8]
KINDS = ("q4_1", "q8_0", "bf16")


TEXT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "kimi-llama-period2.md"


def nll(path: Path, n_tokens: int = 1500) -> float:
    """Mean negative log-likelihood of each next token of TEXT's first `n_tokens` tokens."""
    import llama_cpp
    import numpy as np

    with llama_params(path):  # extra buffer types only where the probe found them safe (guard.py)
        llm = llama_cpp.Llama(str(path), n_ctx=2048, logits_all=True, verbose=False)
    try:
        tokens = llm.tokenize(TEXT.read_text().encode())[:n_tokens]
        llm.eval(tokens)
        logits = np.array(llm.scores[: len(tokens) - 1], dtype=np.float64)
    finally:
        llm.close()
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(tokens) - 1), tokens[1:]].mean())


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
        out[name]["nll"] = nll(path)
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
    print(f"{'weights':8} {'NLL':>6} {'prefill 64':>11}  " + "  ".join(f"{f'B={n}':>13}" for n in BATCHES))
    for name in KINDS:
        d = r[name]["decode"]
        cells = "  ".join(f"{d[n]:5.0f} ({d[n] / d[1]:.2f}x)" for n in BATCHES)
        print(f"{name:8} {r[name]['nll']:6.3f} {r[name]['prefill']:7.0f} t/s  {cells}")
    print(
        "\ndecode tokens/s with B sequences decoded together (ratio to B=1); prefill: one 64-token chunk; "
        f"NLL: mean negative log-likelihood per token of {TEXT.name} (lower is better)"
    )


if __name__ == "__main__":
    main()
