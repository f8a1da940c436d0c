"""bench/judge_eval.py: the blind set stored as runs, labelled by a judge, scored by the attractor rule on the
judge's labels. The judge is the scripted provider answering with the writers' own episode labels, so the
verdicts it leads to are known; one that labels everything "none" finds nothing."""

from __future__ import annotations

import json
import re
import sys

import pytest

from duologue import judge as judging
from duologue.errors import DuologueError
from duologue.store import Store
from helpers import REPO

sys.path.insert(0, str(REPO / "bench"))

import judge_eval  # noqa: E402
from attractor_eval import EVAL, load_half  # noqa: E402

FACES = {"spiritual_bliss": "gratitude", "mutual_praise": "praise", "farewell_spiral": "farewell"}
IDS = ("dev-01-tidepools-to-gratitude", "dev-03-sql-review-to-praise", "dev-02-flaky-test-thanks")


def gold(case_id: str) -> dict[int, str]:
    """Each message's label from the writer's episodes (a family's face), else on_task."""
    d = json.loads((EVAL / "dev" / f"{case_id}.json").read_text(encoding="utf-8"))
    labels = {k: "on_task" for k in range(1, len(d["messages"]) + 1)}
    for first, last, family in d["label"]["episodes"]:
        for k in range(first, last + 1):
            labels[k] = FACES.get(family, labels[k])
    return labels


class Judge:
    """The scripted judge: the writers' labels of the messages it is asked about (found by their text)."""

    def __init__(self, cases, answer_none: bool = False):
        self.by_text = {}
        for c in cases:
            for k, text in enumerate(c.contents, 1):
                self.by_text[text.strip().split("\n")[0][:40]] = gold(c.id)[k]  # as the request's line starts
        self.answer_none = answer_none
        self.requests = 0

    def __call__(self, n, view):
        self.requests += 1
        asked = view[-1].content.split("Messages to label:", 1)[1]
        out = {}
        for number, text in re.findall(r"^\[(\d+)\] [^:]+: (.*)$", asked, re.M):
            out[number] = "none" if self.answer_none else self.by_text[text[:40]]
        return json.dumps(out)


def test_a_judge_with_the_writers_labels_finds_their_drifts_and_the_built_in_rows_stand_beside(
    tmp_path, scripted_models
):
    cases = [c for c in load_half(EVAL / "dev") if c.id in IDS]
    assert len(cases) == 3
    scripted_models.reply = judge = Judge(cases)
    db = tmp_path / "j.db"
    rows = judge_eval.evaluate(cases, judging.Judge("scripted/judge"), db, yes=True, out=lambda line: None)
    by = {r["family"]: r for r in rows["judge"]}
    assert by["spiritual_bliss"]["tp"] == 1 and by["mutual_praise"]["tp"] == 1 and by["none"]["tp"] == 1
    assert by["all drifts"]["found"] == 2 and by["all drifts"]["within2"] == 1.0  # onsets: the episodes' own
    assert rows["labelled"] == sum(len(c.contents) for c in cases) and rows["kappa"] is not None
    builtin = {r["family"]: r for r in rows["built-in"]}
    assert builtin["spiritual_bliss"]["tp"] == 1  # duologue analyze's verdicts, beside
    # Run again: every message is labelled, nothing is asked, the same figures come back.
    asked = judge.requests
    again = judge_eval.evaluate(cases, judging.Judge("scripted/judge"), db, yes=True, out=lambda line: None)
    assert judge.requests == asked and again["judge"] == rows["judge"] and again["labelled"] == 0
    # A judge that sees nothing finds nothing.
    scripted_models.reply = Judge(cases, answer_none=True)
    blind = judge_eval.evaluate(cases, judging.Judge("scripted/blind"), db, yes=True, out=lambda line: None)
    assert {r["family"]: r for r in blind["judge"]}["none"]["found"] == 3


def test_a_large_judge_run_needs_yes(tmp_path, scripted_models, monkeypatch):
    cases = [c for c in load_half(EVAL / "dev") if c.id in IDS]
    scripted_models.reply = judge = Judge(cases)
    monkeypatch.setattr(judging, "ASK_ABOVE", 10)
    said: list[str] = []
    with pytest.raises(DuologueError, match="--yes"):
        judge_eval.evaluate(cases, judging.Judge("scripted/judge"), tmp_path / "j.db", out=said.append)
    assert judge.requests == 0 and "messages of 3 conversations to label" in said[0]
    with Store(tmp_path / "j.db") as store:  # the runs are stored (and analysed) for the next, approved, run
        assert all(store.has_run(c.id) for c in cases)
