"""One vocabulary in batch and report: finished, stopped early, errored; loop, near loop, convergence, attractor."""

from __future__ import annotations

import json

from click.testing import CliRunner

from duologue.cli import cli
from duologue.errors import BackendError
from duologue.progress import BatchTotals, detection_counts, ended_counts


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


PAIR = '[[participants]]\nname = "x"\nmodel = "scripted/x"\n[[participants]]\nname = "y"\nmodel = "scripted/y"\n'


def experiment(tmp_path, settings: str, vary: str = "") -> tuple:
    """An experiment of the scripted pair x and y: its TOML file (top-level `settings`, then `vary`) and a db."""
    toml = tmp_path / "exp.toml"
    toml.write_text(settings + PAIR + vary)
    return toml, str(tmp_path / "d.db")


def reply(n, view):
    opener = view[1].content if len(view) > 1 else ""
    if "fail" in opener:
        raise BackendError("refused")
    if "loop" in opener:
        return "the very same words every single time"
    return f"a fresh reply, number {n}, about something new each time {n * 7}"


def test_batch_counts_each_ending_apart_and_report_names_what_it_counts(tmp_path, scripted_models):
    scripted_models.reply = reply
    toml, db = experiment(
        tmp_path,
        'name = "voc"\nmax_messages = 24\non_loop = "stop"\nopeners = ["talk", "loop please", "fail here"]\n'
        'pairings = "all"\n',
    )
    out = json.loads(invoke("batch", str(toml), "--json", "--db", db, code=1).stdout)
    assert out["ended"] == {"finished": 1, "stopped_early": 1, "errored": 1}
    assert out["analysis"]["looped"] >= 1 and out["finished"] == 2  # "finished": stored as finished
    text = invoke("batch", str(toml), "--db", db, code=1).stdout  # again: only the failed one runs
    assert "1 of 3 conversations run (2 already done): finished 0 · stopped early 0 · errored 1" in text
    assert "flagged live during this batch: loop 0 · near loop 0 · convergence 0 · attractor 0" in text
    assert "loops found" not in text
    rep = invoke("report", "voc", "--db", db, "-o", str(tmp_path / "rep")).stdout
    assert "loop or near loop" in rep and "looped" not in rep.replace("loop or near loop", "")


def test_the_progress_words_are_the_summary_words():
    t = BatchTotals(total=5, finished=2, stopped_early=1, errored=2, loops=1, near_loops=2, attractors=1)
    assert ended_counts(t) == "finished 2 · stopped early 1 · errored 2"
    assert detection_counts(t) == "loop 1 · near loop 2 · convergence 0 · attractor 1"


# Issue 25, finding 5: one set of words for each measure, read from one table (duologue.vocabulary.WORDS).


def test_every_surface_uses_the_words_of_the_one_table(tmp_path, scripted_models):
    import re

    from starlette.testclient import TestClient

    from duologue.vocabulary import WORDS
    from duologue.web import create_app
    from helpers import REPO

    scripted_models.reply = reply
    toml, db = experiment(
        tmp_path,
        'name = "words"\nmax_messages = 12\non_loop = "stop"\npairings = "all"\n',
        '[vary]\nopener = [" ", "loop please"]\n',
    )
    invoke("batch", str(toml), "--db", db)
    rep = json.loads(invoke("report", "words", "--db", db, "-o", str(tmp_path / "r"), "--json").stdout)
    group = rep["by_pairing"][0]
    # JSON keys are the table's keys.
    assert {"looped", "conversation_seconds"} <= set(group) and "seconds" not in group
    assert rep["wall_seconds"] > 0
    text = invoke("report", "words", "--db", db, "-o", str(tmp_path / "r")).stdout
    assert WORDS["looped"] in text and WORDS["conversation_seconds"] in text
    assert re.search(rf"{WORDS['wall_seconds']} \d+\.\d s", text)
    assert re.search(r"(?<![-\w])seconds\b", text.split("\n", 2)[2]) is None  # no bare "seconds" in the tables
    assert "' '" in text  # the blank opener, visible
    page = TestClient(create_app(db)).get("/experiments/words").text
    assert f"<th>{WORDS['looped']}</th>" in page and "loop or convergence" not in page
    assert WORDS["conversation_seconds"] in page and f"{WORDS['wall_seconds']} " in page
    # The blank opener has a label in the viewer too: its tables' group and the runs' cells.
    assert '<td class="models">&#39; &#39;</td>' in page
    # A re-run with nothing to do says so, instead of "finished 0".
    again = invoke("batch", str(toml), "--db", db)
    assert "words: 2/2 (2 done before) finished 0 · stopped early 0 · errored 0" in again.stderr
    # The docs use the same words (README is the door; the docs pages hold the details).
    docs = " ".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    docs = " ".join(docs.split())  # a phrase may wrap across lines
    for key in ("looped", "conversation_seconds", "wall_seconds", "flagged_live", "exact_loop", "end_state"):
        assert WORDS[key] in docs, key


def test_wall_time_counts_overlaps_once_and_leaves_out_the_gaps():
    from duologue.analysis.experiment import wall_seconds

    spans = [
        ("2026-12-04T10:00:00+00:00", "2026-12-04T10:00:40+00:00"),
        ("2026-12-04T10:00:10+00:00", "2026-12-04T10:00:54+00:00"),  # side by side with the first
        ("2026-12-04T11:00:00+00:00", "2026-12-04T11:00:06+00:00"),  # resumed an hour later
        ("2026-12-04T11:00:01+00:00", None),  # still going: not counted
    ]
    assert wall_seconds(spans) == 60.0
