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


def reply(n, view):
    opener = view[1].content if len(view) > 1 else ""
    if "fail" in opener:
        raise BackendError("refused")
    if "loop" in opener:
        return "the very same words every single time"
    return f"a fresh reply, number {n}, about something new each time {n * 7}"


def test_batch_counts_each_ending_apart_and_report_names_what_it_counts(tmp_path, scripted_models):
    scripted_models.reply = reply
    toml, db = tmp_path / "exp.toml", str(tmp_path / "d.db")
    toml.write_text(
        'name = "voc"\nmax_messages = 24\non_loop = "stop"\nopeners = ["talk", "loop please", "fail here"]\n'
        'pairings = "all"\n[[participants]]\nname = "x"\nmodel = "scripted/x"\n'
        '[[participants]]\nname = "y"\nmodel = "scripted/y"\n'
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
