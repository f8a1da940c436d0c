"""Experiments: the matrix, resumable concurrent runs, and the report's numbers."""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import time
from datetime import UTC, datetime

import pytest

from duologue.analysis.experiment import RunStats, group_stats, quartiles, survival_curve
from duologue.analysis.experiment_report import experiment_report
from duologue.api import analyze_run
from duologue.batch import run_experiment
from duologue.errors import UnknownModelError
from duologue.experiment_spec import ExperimentSpec, derive_seed, experiment_from_dict, plan_experiment
from duologue.records import Message, Run
from duologue.spec import Participant
from duologue.store import Store
from helpers import REPO, run_cli, start_cli


def pool(*names: str) -> list[Participant]:
    return [Participant(name=n, max_tokens=16) for n in names]


def test_matrix_size_cells_and_seeds():
    exp = ExperimentSpec(
        name="m",
        participants=pool("a", "b", "c"),
        pairings="all",
        openers=[" ", "Hi"],
        system_prompts={"plain": "Talk.", "poet": "Rhyme."},
        temperatures=[0.5, 1.0],
        repeats=3,
    )
    plans = plan_experiment(exp)
    assert len(plans) == 3 * 2 * 2 * 2 * 3
    assert len({p.key for p in plans}) == len(plans)
    again = plan_experiment(exp)
    assert [p.spec.seed for p in plans] == [p.spec.seed for p in again]  # stable across calls
    assert len({p.spec.seed for p in plans}) == len(plans)
    first = plans[0]
    assert first.cell == {"pairing": "a ↔ b", "opener": 0, "system": "plain", "temperature": 0.5, "repeat": 1}
    a, b = first.spec.participants
    assert (a.system, b.system, a.temperature, b.temperature) == ("Talk.", "Talk.", 0.5, 0.5)
    assert (a.seed, b.seed) == (first.spec.seed, first.spec.seed + 1) and first.spec.seed == derive_seed(0, first.key)


def test_self_pairs_and_explicit_pairings():
    exp = ExperimentSpec(name="s", participants=pool("x", "y"), pairings="all_with_self")
    assert [p.cell["pairing"] for p in plan_experiment(exp)] == ["x ↔ x", "x ↔ y", "y ↔ y"]
    assert plan_experiment(exp)[0].spec.names == ["x-1", "x-2"]
    exp = ExperimentSpec(name="e", participants=pool("x", "y"), pairings=[["y", "x"]], repeats=2)
    assert [p.spec.names for p in plan_experiment(exp)] == [["y", "x"], ["y", "x"]]


TWO = '[[participants]]\nname = "a"\n[[participants]]\nname = "b"\n'  # so the file has one problem only


@pytest.mark.parametrize(
    "toml, needle",
    [
        ('[[participants]]\nname = "a"\n', "pairings = 'all' needs two participants"),
        ('pairings = [["a", "z"]]\n[[participants]]\nname = "a"\n', "'z', which is not a participant"),
        ("repeats = 0\n" + TWO, "repeats"),
        ("temperatures = [9]\n" + TWO, "outside 0..5"),
        ('pairings = "some"\n' + TWO, "pairings"),
        ("repeat = 2\n" + TWO, "repeat: unknown field"),
    ],
)
def test_experiment_file_errors(tmp_path, toml, needle):
    (tmp_path / "exp.toml").write_text(toml)
    proc = run_cli("batch", "exp.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert needle in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_matrix(tmp_path):
    proc = run_cli("batch", str(REPO / "examples" / "qwen-deepseek.toml"), "--dry-run", cwd=tmp_path, check=True)
    assert "120 conversations, up to 3600 messages" in proc.stdout
    assert not (tmp_path / "runs").exists()


def test_changed_experiment_under_same_name_is_refused(tmp_path):
    db = tmp_path / "d.db"
    with Store(db) as store:
        store.create_experiment("e", "e", {"name": "e", "repeats": 1})
    (tmp_path / "e.toml").write_text('[[participants]]\nname = "a"\n[[participants]]\nname = "b"\n')
    proc = run_cli("batch", "e.toml", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 2 and "already in" in proc.stderr and "other settings" in proc.stderr


# -- the report's numbers, against a small experiment computed by hand -----------


def stats(onset, n, max_messages=10, stop="max_messages"):
    return RunStats(
        run_id="r",
        cell={},
        status="finished",
        stop_reason=stop,
        messages=n,
        max_messages=max_messages,
        prompt_tokens=0,
        completion_tokens=0,
        conversation_seconds=0.0,
        looped_at=onset,
        loop_kind="loop" if onset else None,
        tokens_in_loop=0,
        tokens_saved=0,
    )


def test_survival_curve_by_hand():
    # Four runs: looped at 3, looped at 5, never looped (10 messages), cut off by an error at 4 (censored).
    runs = [stats(3, 6), stats(5, 8), stats(None, 10), stats(None, 4, stop="error")]
    curve = dict(survival_curve(runs))
    assert curve[0] == curve[1] == curve[2] == 1.0
    assert curve[3] == pytest.approx(3 / 4)  # 4 at risk, 1 event
    assert curve[4] == pytest.approx(3 / 4)  # the censored run leaves after 4
    assert curve[5] == pytest.approx(3 / 4 * (1 - 1 / 2))  # 2 at risk, 1 event
    assert curve[10] == pytest.approx(3 / 8)


def test_quartiles_by_hand():
    assert quartiles([3, 5, 7, 9]) == (4.5, 6.0, 7.5)
    assert quartiles([4]) == (4.0, 4.0, 4.0)
    assert quartiles([]) is None


def make_run(store, run_id, exp, cell, contents, tokens, stop_reason, max_messages=10):
    t = datetime(2026, 1, 1, tzinfo=UTC)
    run = Run(
        id=run_id,
        spec={
            "participants": [{"name": "a", "model": "local/smollm2"}, {"name": "b", "model": "local/smollm2"}],
            "max_messages": max_messages,
        },
        participants=["a", "b"],
        started_at=t,
        ended_at=t,
        status="finished",
        stop_reason=stop_reason,
        experiment_id=exp,
        experiment_cell=cell,
        messages=[
            Message(
                index=i, speaker="ab"[(i - 1) % 2], content=c, completion_tokens=tokens, prompt_tokens=10, latency=0.5
            )
            for i, c in enumerate(contents, 1)
        ],
    )
    store.create_run(run)
    store.save_analysis(run_id, analyze_run(run))


def test_report_numbers_by_hand(tmp_path):
    prose = [  # nine words each, nothing shared: no loop, no template
        "Rivers carve patient valleys through stubborn granite over centuries.",
        "My grandmother baked sourdough every Sunday before dawn broke.",
        "Quantum computers might factor enormous primes someday, maybe soon.",
        "Wolves howl when their pack scatters across frozen tundra.",
        "Glassblowers shape molten sand with breath, fire, patience.",
        "Salt preserved fish for sailors crossing wide oceans long.",
        "Ink stains remember every letter my father never sent.",
        "Moss grows thickest where northern shade lingers all afternoon.",
        "Clockmakers once repaired pocket watches for railway conductors daily.",
        "Rain drums softly against tin roofs during monsoon evenings.",
    ]
    with Store(tmp_path / "d.db") as store:
        store.create_experiment("hand", "hand", {"name": "hand", "openers": [" "]})
        # r1: prose 1..3, then "Home." x3 -> exact period-1 loop, onset 4, first repeat 5, stopped at 6.
        make_run(
            store,
            "r1",
            "hand",
            {"pairing": "a ↔ b", "opener": 0, "repeat": 1},
            prose[:3] + ["Home."] * 3,
            tokens=4,
            stop_reason="loop",
        )
        # r2: ten messages of prose, no loop.
        make_run(
            store,
            "r2",
            "hand",
            {"pairing": "a ↔ b", "opener": 0, "repeat": 2},
            prose,
            tokens=4,
            stop_reason="max_messages",
        )
        rep = experiment_report(store, "hand", tmp_path / "rep")
    (g,) = rep["by_pairing"]
    assert (g["runs"], g["looped"], g["loop_share"]) == (2, 1, 0.5)
    assert g["onset_quartiles"] == (4.0, 4.0, 4.0)
    assert g["stop_reasons"] == {"loop": 1, "max_messages": 1}
    assert g["prompt_tokens"] == 10 * 16 and g["completion_tokens"] == 4 * 16
    assert g["conversation_seconds"] == pytest.approx(0.5 * 16)
    assert g["tokens_in_loops"] == 2 * 4  # messages 5 and 6 repeat message 4
    assert g["tokens_saved"] == pytest.approx((10 - 6) * 4)
    assert g["mean_words_by_index"][3] == pytest.approx((1 + 9) / 2)  # "Home." vs a 9-word sentence
    curve = dict((t, s) for t, s in rep["survival"]["a ↔ b"])
    assert curve[3] == 1.0 and curve[4] == 0.5 and curve[10] == 0.5
    assert sorted(p.rsplit("-", 1)[1] for p in rep["plots"]) == [
        "attractors.png",
        "entry.png",
        "lengths.png",
        "states.png",
        "survival.png",
    ]
    assert (tmp_path / "rep" / "hand-report.json").exists()


def test_group_stats_mean_lengths():
    a, b = stats(None, 2), stats(None, 3)
    a.words_by_index, b.words_by_index = [2, 4], [4, 6, 9]
    assert group_stats("g", [a, b]).mean_words_by_index == [3, 5, 9]


# -- real runs on the embedded model -------------------------------------------

KILL_EXPERIMENT = """
name = "killtest"
pairings = "all_with_self"
openers = [" ", "Hello!", "Tell me a story."]
temperatures = [0.5, 1.0]
repeats = 4
max_messages = 5
on_loop = "continue"
on_near_loop = "continue"
on_convergence = "continue"

[concurrency]
local = 2

[[participants]]
name = "smol"
model = "local/smollm2"
max_tokens = 12
context_length = 512
threads = 1
"""


def counts(db):
    if not db.exists():
        return 0, 0
    conn = sqlite3.connect(db)
    try:
        runs = conn.execute("SELECT COUNT(*) FROM runs WHERE experiment_id='killtest'").fetchone()[0]
        msgs = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        return runs, msgs
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kill_9_three_times_then_complete(tmp_path):
    (tmp_path / "exp.toml").write_text(KILL_EXPERIMENT)
    db = tmp_path / "runs" / "duologue.db"
    rng = random.Random(5)
    kills = 0
    while kills < 3:
        proc = start_cli("batch", "exp.toml", cwd=tmp_path)
        before = counts(db)[1]
        target = before + rng.randint(3, 25)
        deadline = time.monotonic() + 300
        while counts(db)[1] < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.01, 0.1))
        if proc.poll() is not None:
            break  # finished before we could kill it: fine, fewer kills
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills == 3, "the experiment finished before it could be killed three times"
    proc = run_cli("batch", "exp.toml", cwd=tmp_path, check=True)
    # "killtest: N of 24 conversations run (M already done): finished … · errored 0; …": all 24 accounted for.
    ran = re.search(r"(\d+) of 24 conversations run \((\d+) already done\)", proc.stdout)
    assert ran and int(ran[1]) + int(ran[2]) == 24, (proc.returncode, proc.stdout, proc.stderr)
    assert "errored 0" in proc.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 24
    assert conn.execute("SELECT COUNT(DISTINCT experiment_cell) FROM runs").fetchone()[0] == 24
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 24 * 5
    per_run = conn.execute("SELECT run_id, COUNT(*), MIN(idx), MAX(idx) FROM messages GROUP BY run_id").fetchall()
    assert all(row[1:] == (5, 1, 5) for row in per_run)
    assert {r[0] for r in conn.execute("SELECT status FROM runs")} == {"finished"}
    # Running it again does nothing more.
    again = run_cli("batch", "exp.toml", cwd=tmp_path, check=True)
    assert "(24 already done)" in again.stdout and counts(db) == (24, 120)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_example_experiment_end_to_end(tmp_path):
    proc = run_cli("batch", str(REPO / "examples" / "self-talk.toml"), cwd=tmp_path, check=True, timeout=1700)
    assert "12 of 12 conversations run (0 already done)" in proc.stdout and "errored 0" in proc.stdout
    # 8 conversations at once on 2 shards at most: the pool is batched, and `auto` weights say so in each spec.
    from duologue.backends.embedded.weights import fastest, resolve_gguf

    conn = sqlite3.connect(tmp_path / "runs" / "duologue.db")
    kinds = {json.loads(spec)["participants"][0]["weights"] for (spec,) in conn.execute("SELECT spec FROM runs")}
    conn.close()
    assert kinds == {fastest(resolve_gguf("local/smollm2"), batched=True)}  # what the probe timed fastest here
    rep = run_cli("report", "self-talk", cwd=tmp_path, check=True)
    assert "experiment self-talk: 12 runs" in rep.stdout
    folder = tmp_path / "runs" / "reports" / "self-talk"
    plots = ("survival", "lengths", "attractors", "attractor-entry", "end-states")
    assert {p.name for p in folder.iterdir()} == {
        "self-talk-report.json",
        *(f"self-talk-{plot}{by}.png" for plot in plots for by in ("", "-by-opener", "-by-temperature")),
    }
    assert "attractor map by pairing" in rep.stdout
    out = run_cli("export", "self-talk", "--format", "csv", cwd=tmp_path, check=True)
    assert out.stdout.count("wrote ") == 3
    import pandas as pd

    runs = pd.read_csv(tmp_path / "runs" / "exports" / "self-talk" / "self-talk-runs.csv")
    messages = pd.read_csv(tmp_path / "runs" / "exports" / "self-talk" / "self-talk-messages.csv")
    assert len(runs) == 12 and len(messages) == int(runs.shape[0] and messages.shape[0])
    assert set(messages["run_id"]) == set(runs["run_id"])


def test_a_batch_checks_every_model_its_conversations_use_before_writing(tmp_path, scripted_models, monkeypatch):
    """Not only the pool's participants: a summarizer's model (or a change's) without its key stops the batch
    before the store is made, as it stops `run`."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    exp = experiment_from_dict(
        {
            "name": "summed",
            "max_messages": 4,
            "context": {"strategy": "summarize", "summarizer": "openrouter/qwen/qwen3-next-80b-a3b-instruct"},
            "participants": [{"name": "s", "model": "scripted/x"}],
            "pairings": "all_with_self",
        }
    )
    db = tmp_path / "d.db"
    with pytest.raises(UnknownModelError, match="OPENROUTER_API_KEY"):
        run_experiment(exp, db=db)
    assert not db.exists()
