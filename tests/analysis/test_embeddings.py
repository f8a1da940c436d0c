"""Message embeddings: unit vectors, deterministic, offline (no network attempt), themes above unrelated text."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("wordllama")

from duologue.analysis import embeddings as emb  # noqa: E402
from duologue.errors import DuologueError  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"

PARAPHRASES = [
    ("Thank you so much, I am deeply grateful.", "Many thanks, I truly appreciate it."),
    ("Goodbye for now, my friend.", "Farewell, take care until we meet again."),
    ("We are one mind now, no longer separate.", "The boundary between you and me has dissolved."),
    ("Silence. Only stillness remains.", "Let us rest in the quiet calm."),
]
UNRELATED = [
    "Preheat the oven and roast the peppers until the skins blister.",
    "The train to Lyon was delayed by a signal failure.",
    "Compaction causes write amplification in an LSM tree.",
    "Tomatoes need staking once they reach knee height.",
]


@pytest.fixture(scope="session")
def embedder():
    e = emb.get_embedder()
    e.embed(["load once"])
    return e


def test_rows_are_unit_float32_of_the_right_shape(embedder):
    texts = ["Hello there.", "A much longer message " * 50, "🙏✨", "ALL CAPS AFFIRMATION!!!"]
    v = embedder.embed(texts)
    assert v.shape == (4, embedder.dim) == (4, 256)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert isinstance(embedder, emb.Embedder)
    assert embedder.name and emb.get_embedder("default") is embedder is emb.get_embedder("wordllama")


def test_blank_texts_give_zero_rows_and_an_empty_list_an_empty_array(embedder):
    v = embedder.embed(["", "   ", "\n\t", "word"])
    assert not v[:3].any()
    assert np.linalg.norm(v[3]) == pytest.approx(1.0, abs=1e-5)
    assert embedder.embed([]).shape == (0, 256)
    assert emb.cosine_matrix(v)[0].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_deterministic_and_independent_of_the_batch(embedder):
    texts = ["Thank you for everything.", "x " * 400, "", "The index needs a rebalance."]
    batch = embedder.embed(texts)
    one_by_one = np.vstack([embedder.embed([t]) for t in texts])
    assert np.array_equal(batch, one_by_one)  # bit for bit: live (one message) and batch agree
    assert np.array_equal(batch, embedder.embed(list(reversed(texts)))[::-1])
    assert np.array_equal(batch, emb.embed(tuple(texts)))


@pytest.mark.parametrize("a,b", PARAPHRASES)
def test_paraphrases_score_above_unrelated_text(embedder, a, b):
    sims = emb.cosine_matrix(embedder.embed([a, b]), embedder.embed(UNRELATED))
    pair = float(emb.cosine_matrix(embedder.embed([a]), embedder.embed([b]))[0, 0])
    assert pair > sims.max() + 0.05


def test_phrase_centroid_is_a_unit_mean_that_scores_its_theme_highest(embedder):
    gratitude = emb.phrase_centroid(["thank you", "I am so grateful", "deep appreciation"])
    farewell = emb.phrase_centroid(["goodbye", "farewell, take care", "until we meet again"])
    assert gratitude.shape == (256,) and gratitude.dtype == np.float32
    assert np.linalg.norm(gratitude) == pytest.approx(1.0, abs=1e-5)
    msgs = embedder.embed(["Many thanks, truly, I appreciate all of it.", "Bye for now, see you later!"])
    scores = emb.cosine_matrix(msgs, np.vstack([gratitude, farewell]))
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]
    assert not emb.phrase_centroid(["", "  "]).any()
    assert not emb.phrase_centroid([]).any()


def test_unknown_embedder_is_a_one_line_error():
    with pytest.raises(DuologueError, match=r"unknown embedder 'nope' \(known: default, wordllama, wordllama-markup\)"):
        emb.get_embedder("nope")


def test_a_load_failure_is_a_one_line_error(monkeypatch):
    import wordllama

    def broken(*args, **kwargs):
        raise FileNotFoundError("Weights file 'x.safetensors' not found\nmore detail")

    monkeypatch.setattr(wordllama.WordLlama, "load", broken)
    with pytest.raises(DuologueError) as info:
        emb.WordLlamaEmbedder().embed(["hi"])
    assert str(info.value) == "cannot load the wordllama embedding model: Weights file 'x.safetensors' not found"

    monkeypatch.setitem(sys.modules, "wordllama", None)  # as if not installed
    with pytest.raises(DuologueError, match="pip install wordllama"):
        emb.WordLlamaEmbedder().embed(["hi"])


def test_loads_and_embeds_with_every_network_attempt_failing(monkeypatch, embedder):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = emb.WordLlamaEmbedder()  # not the cached one: this one loads under the block
    v = fresh.embed(["Thank you, truly.", ""])
    assert attempts == []
    assert np.array_equal(v, embedder.embed(["Thank you, truly.", ""]))


def test_a_fresh_process_loads_offline_without_touching_the_network(tmp_path):
    # A new interpreter, so nothing is cached: every socket connection and name lookup raises, and
    # any attempt is reported even if a library swallowed the error.
    script = textwrap.dedent(
        """
        import socket, sys
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(repr(args)[:80])
            raise OSError("network disabled")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from duologue.analysis.embeddings import get_embedder
        v = get_embedder().embed(["We are one now.", "The boundary has dissolved."])
        print(v.shape, round(float(v[0] @ v[1]), 3), "attempts", len(attempts), attempts)
        """
    )
    env = {"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(2, 256)" in out.stdout and "attempts 0 []" in out.stdout
    assert not (tmp_path / ".cache" / "wordllama").exists()  # nothing fetched into the default cache


def test_phrase_vectors_are_kept_in_the_cache_folder(tmp_path, monkeypatch, embedder):
    monkeypatch.setenv("DUOLOGUE_CACHE_DIR", str(tmp_path))
    calls = []

    class Counting:
        name, dim = embedder.name, embedder.dim
        cache_key = embedder.cache_key

        def embed(self, texts):
            calls.append(list(texts))
            return embedder.embed(texts)

    phrases = ["We are one now.", "Thank you for this."]
    first = emb.embed_cached(phrases, Counting())
    again = emb.embed_cached(phrases, Counting())
    assert len(calls) == 1 and np.array_equal(first, again) and np.array_equal(first, embedder.embed(phrases))
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 1
    emb.embed_cached([*phrases, "Goodbye."], Counting())  # other texts: their own entry
    assert len(calls) == 2
    # A broken entry is embedded again; an embedder without a cache key is never cached.
    for f in (tmp_path / "embeddings").glob("*.npy"):
        f.write_bytes(b"not an array")
    emb.embed_cached(phrases, Counting())
    assert len(calls) == 3
    del Counting.cache_key
    emb.embed_cached(phrases, Counting())
    assert len(calls) == 4 and len(list((tmp_path / "embeddings").glob("*.npy"))) == 2


def test_an_analysis_of_stored_vectors_loads_no_embedding_model(tmp_path):
    # Once the theme phrases' vectors are in the cache folder, analysing messages whose vectors are given
    # needs no model: a fresh process analyses without loading WordLlama's weights.
    script = textwrap.dedent(
        """
        import numpy as np
        from duologue.analysis import analyze
        from duologue.analysis.embeddings import get_embedder
        contents = ["Let us talk about B-trees.", "Sure, they keep keys sorted.", "Thank you, I am grateful."]
        vectors = np.eye(3, 256, dtype=np.float32)
        analyze(["a", "b", "a"], contents, vectors=vectors)
        print("loaded", get_embedder()._table is not None)
        """
    )
    env = {"PYTHONPATH": str(SRC), "DUOLOGUE_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "loaded True" in first.stdout  # the phrases are embedded once …
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert "loaded False" in second.stdout, second.stderr  # … and read from the cache folder after


def test_messages_are_embedded_as_their_prose_and_the_name_says_so(embedder):
    prose = "Thank you for this quiet hour; I am grateful we found it together."
    wrapped = f"guest@tearoom:~/$\n```\n<reply>\n{prose}\n</reply>\n```\n+=========+\n|#########|\n+=========+"
    markup = emb.get_embedder("wordllama-markup")
    assert np.array_equal(embedder.embed([wrapped]), embedder.embed([prose]))
    assert not np.array_equal(markup.embed([wrapped]), markup.embed([prose]))
    assert np.array_equal(markup.embed([prose]), embedder.embed([prose]))  # no markup: the same vector
    # Stored and cached vectors are keyed by the name, so the two never stand in for each other.
    assert embedder.name != markup.name and embedder.cache_key != markup.cache_key
    assert emb.get_embedder(embedder.name) is embedder and emb.get_embedder(markup.name) is markup
