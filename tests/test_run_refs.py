"""Naming a run: a prefix of its id or of its random suffix, @last, @last~N; and `ls` before any run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from duologue.errors import RunNotFoundError
from duologue.records import Message, Run
from duologue.store import Store
from helpers import run_cli

T0 = datetime(2026, 11, 27, 15, 39, 56, tzinfo=UTC)
# Oldest first. Two started in the same second (a batch does that), two suffixes share "ab".
IDS = [
    "20261127-153956-76c430",
    "20261127-154001-ab1200",
    "20261127-154001-ab3400",
    "20261127-160000-2026ff",
]


def add(store: Store, run_id: str, started: datetime) -> None:
    spec = {"participants": [{"name": "a", "model": "scripted/a"}, {"name": "b", "model": "scripted/b"}]}
    run = Run(id=run_id, spec=spec, participants=["a", "b"], started_at=started, status="finished")
    run.messages = [Message(index=1, speaker="a", content=f"hello from {run_id}", injected=True)]
    store.create_run(run)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "runs" / "duologue.db") as s:
        for i, rid in enumerate(IDS):
            add(s, rid, T0 + timedelta(seconds=i))
        yield s


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (IDS[0], IDS[0]),  # a full id
        ("20261127-1539", IDS[0]),  # a prefix of the id
        ("76c4", IDS[0]),  # a prefix of the random suffix
        ("76c430", IDS[0]),
        ("ab12", IDS[1]),
        ("20261127-154001-ab3", IDS[2]),
        (" 2026f ", IDS[3]),  # the suffix 2026ff (no id starts 2026f)
        ("@last", IDS[3]),
        ("@last~0", IDS[3]),
        ("@last~1", IDS[2]),
        ("@last~3", IDS[0]),
    ],
)
def test_references_name_one_run(store, ref, expected):
    assert store.resolve_run_id(ref) == expected
    assert store.get_run(ref).id == expected


@pytest.mark.parametrize(
    ("ref", "needles"),
    [
        ("ab", ["'ab' is ambiguous", "2 runs match", IDS[1], IDS[2]]),
        ("2026", ["'2026' is ambiguous", "4 runs match", "and 1 more"]),  # every id, and a suffix
        ("20261127-154001", ["ambiguous", IDS[1], IDS[2]]),
        ("ffff", ["no run 'ffff'"]),
        ("1539", ["no run '1539'"]),  # the time inside an id is not a suffix
        ("@last~4", ["no run '@last~4'", "holds 4 runs"]),
        ("@first", ["@last or @last~N"]),
        ("@last~x", ["@last or @last~N"]),
        ("", ["no run ''"]),
    ],
)
def test_bad_references_say_why_in_one_line(store, ref, needles):
    with pytest.raises(RunNotFoundError) as err:
        store.resolve_run_id(ref)
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_at_last_in_an_empty_store(tmp_path):
    with Store(tmp_path / "d.db") as s, pytest.raises(RunNotFoundError, match="no runs yet"):
        s.resolve_run_id("@last")


def test_every_command_takes_a_reference(store, tmp_path):
    shown = run_cli("show", "76c4", cwd=tmp_path, check=True).stdout
    assert f"run {IDS[0]}" in shown and f"hello from {IDS[0]}" in shown
    exported = json.loads(run_cli("export", "@last~1", "-f", "json", cwd=tmp_path, check=True).stdout)
    assert exported["id"] == IDS[2]
    ambiguous = run_cli("show", "ab", cwd=tmp_path)
    assert ambiguous.returncode == 2 and ambiguous.stderr.count("\n") == 1
    assert "ambiguous" in ambiguous.stderr and IDS[1] in ambiguous.stderr and "Traceback" not in ambiguous.stderr


def test_ls_without_a_store_says_there_are_no_runs_yet(tmp_path):
    proc = run_cli("ls", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no runs yet" in proc.stdout and "duologue run" in proc.stdout and proc.stderr == ""
    as_json = run_cli("ls", "--json", cwd=tmp_path)
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
    assert not (tmp_path / "runs").exists()  # looking created nothing
    other = run_cli("show", "@last", cwd=tmp_path)  # a command that needs a run keeps its one-line error
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "no duologue store" in other.stderr


def test_ls_with_an_empty_store_says_the_same(tmp_path):
    Store(tmp_path / "runs" / "duologue.db").close()
    proc = run_cli("ls", cwd=tmp_path)
    assert proc.returncode == 0 and "no runs yet" in proc.stdout
    assert json.loads(run_cli("ls", "--json", cwd=tmp_path, check=True).stdout) == []
