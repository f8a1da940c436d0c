"""`duologue export --all`: JSONL, one line per run, each line the run's `--format json` object."""

from __future__ import annotations

import io
import json

import pytest

from duologue import api, export_runs_jsonl, iter_run_exports
from duologue.store import Store
from duologue.transcripts.jsonfmt import parse_jsonl

from .sample import EXPERIMENT, FAILED_RUN, build_store, invoke


@pytest.fixture
def store(tmp_path, scripted_models):
    return build_store(tmp_path, scripted_models)


def test_every_line_is_the_runs_json_export_and_reads_back(store):
    db, ids = store
    text = invoke("export", "--all", "--db", str(db)).stdout
    lines = text.splitlines()
    assert len(lines) == len(ids) and text.endswith("\n")  # one line per run, whatever a reader splits lines at
    assert "\u2028" not in text and "\\u2028" in text  # escaped, as JSON allows
    for line, run_id in zip(lines, ids, strict=False):  # oldest first
        single = json.loads(invoke("export", run_id, "--format", "json", "--db", str(db)).stdout)
        assert json.loads(line) == single
    # The format's own reader gives back the stored runs, field for field.
    runs = parse_jsonl(text)
    with Store(db, create=False) as s:
        for run in runs:
            stored = s.get_run(run.id)
            assert run == stored, run.id
    assert [len(r.messages) for r in runs] == [3, 6, 7, 2]
    # The Python API yields the same objects.
    assert [o["id"] for o in iter_run_exports(db=db)] == ids
    out = io.StringIO()
    assert export_runs_jsonl(out, db=db) == len(ids) and out.getvalue() == text


def test_filters_choose_the_runs(store, tmp_path):
    db, ids = store
    only = invoke("export", "--all", "--experiment", EXPERIMENT, "--db", str(db)).stdout.splitlines()
    assert [json.loads(line)["id"] for line in only] == [FAILED_RUN]
    finished = invoke("export", "--all", "--status", "finished", "--db", str(db)).stdout.splitlines()
    assert [json.loads(line)["id"] for line in finished] == ids[:3]
    errored = invoke("export", "--all", "--stop", "error", "--db", str(db)).stdout.splitlines()
    assert [json.loads(line)["id"] for line in errored] == [FAILED_RUN]
    assert invoke("export", "--all", "--experiment", EXPERIMENT, "--status", "finished", "--db", str(db)).stdout == ""
    # To a file, whole.
    out = tmp_path / "all.jsonl"
    result = invoke("export", "--all", "--status", "finished", "-o", str(out), "--db", str(db))
    assert f"wrote {out} (3 runs)" in result.stderr
    assert out.read_text(encoding="utf-8").splitlines() == finished
    # The JSON export's parts are all there: analysis and events of the runs that have them.
    first = json.loads(finished[1])
    assert first["format"] == "duologue.run/1" and first["analysis"] is not None and "events" in first
    assert api.export_run(first["id"], "json", db=db) == json.dumps(first, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(
    "args, line",
    [
        (["--all", "--status", "bogus"], "unknown status 'bogus' (a run is running, finished, interrupted, error"),
        (["--all", "--experiment", "nope"], "no experiment 'nope' in "),
        (["--status", "finished"], "--experiment, --status and --stop choose runs for --all; add --all"),
        (["RUN", "--all"], "give a run id or --all, not both (RUN and --all)"),
        (["--all", "--format", "md"], "--all exports jsonl or parquet, not md"),
        (["--all", "-o", "no/such/folder/x.jsonl"], "x.jsonl: no such folder no/such/folder"),
    ],
)
def test_bad_requests_are_one_line(store, args, line):
    db, _ = store
    result = invoke("export", *args, "--db", str(db), code=2)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and line in result.stderr, result.stderr


def test_status_killed_selects_a_running_run_whose_process_is_gone(tmp_path):
    """A run stored as "running" whose writer has exited shows as killed, and `--status killed` exports it
    (while `--status running` keeps only the run whose process is alive)."""
    import dataclasses
    import subprocess
    import sys

    from helpers import make_run

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # that process has exited
    db = tmp_path / "d.db"
    with Store(db) as s:
        for run_id, status, minutes in (("dead", "running", 0), ("alive", "running", 1), ("done", "finished", 2)):
            s.create_run(dataclasses.replace(make_run(run_id, ["hi", "hello"], minutes=minutes), status=status))
        s.conn.execute("UPDATE runs SET pid = ? WHERE id = 'dead'", (dead_pid,))  # "alive" has this process's
        s.conn.commit()
    killed = list(iter_run_exports(status="killed", db=db))
    assert [(o["id"], o["status"]) for o in killed] == [("dead", "killed")]
    assert [o["id"] for o in iter_run_exports(status="running", db=db)] == ["alive"]
    lines = invoke("export", "--all", "--status", "killed", "--db", str(db)).stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["dead"]
