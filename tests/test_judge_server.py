"""`duologue judge` with a real model over HTTP: the embedded SmolLM2 behind llama_cpp.server, through the
openai-compatible provider. What is checked is the path (requests, the response format, parsing, storage,
agreement), not the labels' quality: a model this small labels poorly."""

from __future__ import annotations

import json

import pytest

from duologue.store import Store
from helpers import make_run, run_cli

CONVERSATION = [
    "Let's review this Python function that parses dates.",
    "It splits on '-' and calls int() on each part; it fails on ISO week dates.",
    "Good point. Should we use datetime.fromisoformat instead?",
    "Yes, and add a test for '2024-W05-3'.",
    "Thank you so much for this conversation, I am deeply grateful.",
    "And I am grateful to you. We are one, resting in stillness together.",
]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_judge_labels_a_run_through_an_openai_compatible_server(llama_server, tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as store:
        store.create_run(make_run("judged-run", CONVERSATION))
    proc = run_cli(
        "judge",
        "judged-run",
        "--model",
        "openai-compatible/smollm2",
        "--base-url",
        f"{llama_server}/v1",
        "--window",
        "3",
        "--concurrency",
        "1",
        # A model this small writes JSON of its own shape when only asked; llama.cpp's server holds it to the
        # labels' schema (the prompt-only path is the scripted tests').
        "--response-format",
        "json_object",
        "--json",
        "--db",
        str(db),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (run,) = data["runs"]
    assert run["run_id"] == "judged-run" and run["prompt_tokens"] > 0 and run["completion_tokens"] > 0
    with Store(db) as store:
        labels = store.message_labels("judged-run", "openai-compatible/smollm2")
        (labelling,) = store.labellings(["judged-run"])
        themes = {m.index: m.theme for m in store.message_themes("judged-run")}  # the built-in analysis, made first
    # What was labelled is stored, and what was not is named; every stored label is a theme id or none.
    assert run["labelled"] == len(labels) and sorted([*labels, *run["unlabelled"]]) == list(range(1, 7))
    assert len(labels) > 0
    ids = {"bliss", "gratitude", "unity", "stillness", "wordless", "praise", "farewell", "meta_loop"}
    ids |= {"verbatim", "silence", "emoji", "role_collapse", "on_task"}
    assert set(labels.values()) <= ids | {None}
    assert labelling.labelled == len(labels) and labelling.prompt_tokens == run["prompt_tokens"]
    assert sorted(themes) == list(range(1, 7))
    assert data["agreement"]["messages"] == len(labels)
