"""The semantic detectors in a live run: events, stop reasons, stored findings and vectors."""

from __future__ import annotations

from analysis.semantic_cases import GRATITUDE_DRIFT, ROLE_COLLAPSE, TECH
from duologue import api
from duologue.analysis.embeddings import get_embedder
from duologue.spec import spec_from_dict
from duologue.store import Store


def drift_spec(**extra):
    return spec_from_dict(
        {
            "opener": TECH[0],
            "max_messages": 20,
            "participants": [{"name": "a", "model": "scripted/a"}, {"name": "b", "model": "scripted/b"}],
            **extra,
        }
    )


def scripted(models, contents):
    def reply(n, view):  # the view holds the system prompt (if any) and every message so far
        index = sum(1 for m in view if m.role != "system") + 1
        return contents[index - 1]

    models.reply = reply


def test_on_attractor_stop_ends_the_run_where_the_theme_is_entered(tmp_path, scripted_models):
    contents = TECH + GRATITUDE_DRIFT
    scripted(scripted_models, contents)
    db = tmp_path / "d.db"
    run = api.run_conversation(drift_spec(on_attractor="stop"), db=db)
    assert run.stop_reason == "attractor"
    # Entered at message 9; the rule holds once 3 of messages 9..12 are in the family (9, 10 and 12), and the
    # family has the attractor_messages (4) it needs to have stayed at 13.
    assert len(run.messages) == 13
    assert "entered spiritual bliss at message 9" in run.stop_detail
    events = [e for e in api.run_events(run.id, db=db) if e["kind"] == "attractor"]
    assert [(e["message_index"], e["data"]["theme"], e["data"]["onset"]) for e in events] == [(13, "bliss", 9)]


def test_flagged_findings_are_stored_with_the_run_and_vectors_once(tmp_path, scripted_models):
    contents = TECH[:6] + ROLE_COLLAPSE
    scripted(scripted_models, contents)
    db = tmp_path / "d.db"
    run = api.run_conversation(drift_spec(max_messages=16), db=db)  # on_* default: flag
    assert run.stop_reason == "max_messages" and len(run.messages) == 16
    kinds = {e["kind"] for e in api.run_events(run.id, db=db)}
    assert {"convergence", "attractor"} <= kinds
    with Store(db) as store:
        sem = store.run_semantic(run.id)
        assert (sem.attractor, sem.attractor_onset, sem.end_state) == ("role_collapse", 8, "role_collapse")
        assert sem.convergence_onset == 7
        vectors = store.load_vectors(run.id, get_embedder().name)
        assert sorted(vectors) == list(range(1, 17)) and all(len(v) == 256 for v in vectors.values())
    # analyze reads them back instead of computing them again, and finds the same.
    again = api.analyze_stored_run(api.load_run(run.id, db=db), db=db)
    assert again.attractor.onset == 8 and again.convergence.onset == 7


def test_each_message_is_embedded_once_across_the_live_run_and_its_analysis(tmp_path, scripted_models, monkeypatch):
    contents = TECH + GRATITUDE_DRIFT
    scripted(scripted_models, contents)
    embedder = get_embedder()
    embedded: list[str] = []
    real = embedder.embed

    def counting(texts):
        embedded.extend(texts)
        return real(texts)

    monkeypatch.setattr(embedder, "embed", counting)
    db = tmp_path / "d.db"
    run = api.run_conversation(drift_spec(), db=db)
    # The live watcher embeds each message once; the analysis stored at the end reuses those vectors.
    assert [embedded.count(m.content) for m in run.messages] == [1] * len(run.messages)
    embedded.clear()
    api.analyze_stored_run(api.load_run(run.id, db=db), db=db)  # `duologue analyze RUN` reads them back
    assert not any(m.content in embedded for m in run.messages)


def test_vectors_stored_by_another_embedder_are_not_reused(tmp_path, scripted_models):
    # Vectors are stored under the embedder's name: those of the whole text (stored before messages were
    # embedded as their prose) are not this embedder's, so analysing the run computes its own and stores them.
    import numpy as np

    from duologue.analysis.stored import run_vectors

    scripted(scripted_models, TECH[:6])
    db = tmp_path / "d.db"
    run = api.run_conversation(drift_spec(max_messages=6), db=db)
    embedder = get_embedder()
    with Store(db) as store, store.conn:
        store.conn.execute("DELETE FROM message_vectors WHERE run_id=?", (run.id,))
        old = np.eye(1, 256, dtype="<f4").tobytes()
        store.conn.executemany(
            "INSERT INTO message_vectors (run_id, idx, embedder, dim, vector) VALUES (?, ?, ?, 256, ?)",
            [(run.id, m.index, "wordllama-l2_supercat-256", old) for m in run.messages],
        )
    with Store(db) as store:
        vectors, name = run_vectors(store, run)
    assert name == embedder.name != "wordllama-l2_supercat-256"
    assert np.array_equal(vectors, embedder.embed([m.content for m in run.messages]))
    api.analyze_stored_run(api.load_run(run.id, db=db), db=db)
    with Store(db) as store:
        assert sorted(store.load_vectors(run.id, embedder.name)) == [1, 2, 3, 4, 5, 6]
