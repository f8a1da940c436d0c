"""`duologue import`: detection, --format, duologue JSONL of many runs, one-line errors, one transaction per file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from duologue import api
from duologue.cli import cli
from duologue.errors import DuologueError
from duologue.importers import detect_format, import_formats
from duologue.store import Store
from helpers import EXAMPLE_MD, FIXTURES, assert_one_line_error, run_cli

FORMATS = {"md", "json", "jsonl", "backrooms", "resonant", "openai", "llm"}


def two_runs(tmp_path):
    """Two runs in a store: the example transcript and a three-party one with awkward content."""
    db = tmp_path / "src.db"
    (tmp_path / "three.md").write_text(
        "# a ↔ b ↔ c\n\n**Started:** 2026-01-01 10:00:00\n**Ended:** 2026-01-01 10:01:00\n**Messages:** 3\n\n---\n\n"
        '### a\n\nhi\n\n---\n\n### b\n\n---\n\n\u2028line\u2029 sep ✨\n\n---\n\n### c\n\n{"json": true}\n\n---\n\n',
        encoding="utf-8",
    )
    return [api.import_transcript(path, db=db) for path in (EXAMPLE_MD, tmp_path / "three.md")], db


def write_jsonl(tmp_path, runs, db):
    """The runs as duologue JSONL: each line the very object `export --format json` gives for one run."""
    lines = [json.dumps(json.loads(api.export_run(r.id, "json", db=db)), ensure_ascii=False) for r in runs]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_formats_are_listed():
    assert set(import_formats()) >= FORMATS
    result = CliRunner().invoke(cli, ["import", "--formats"])
    assert result.exit_code == 0
    assert {line.split()[0] for line in result.output.splitlines()} >= FORMATS


def test_duologue_files_are_detected(tmp_path):
    runs, db = two_runs(tmp_path)
    assert detect_format(EXAMPLE_MD).name == "md"
    (tmp_path / "one").write_text(api.export_run(runs[0].id, "json", db=db), encoding="utf-8")
    assert detect_format(tmp_path / "one").name == "json"
    assert detect_format(write_jsonl(tmp_path, runs, db)).name == "jsonl"


def test_jsonl_of_many_runs_round_trips(tmp_path):
    runs, db = two_runs(tmp_path)
    path = write_jsonl(tmp_path, runs, db)
    out = run_cli("import", path.name, "--db", "other.db", cwd=tmp_path, check=True).stdout.splitlines()
    assert [line.split(" as run ")[1].split()[0] for line in out] == [r.id for r in runs]  # ids are kept
    for run in runs:
        back = api.load_run(run.id, db=tmp_path / "other.db")
        original = api.load_run(run.id, db=db)
        assert back.messages == original.messages
        assert (back.participants, back.spec, back.status) == (original.participants, original.spec, original.status)
        assert api.export_run(run.id, "md", db=tmp_path / "other.db") == api.export_run(run.id, "md", db=db)


def test_a_jsonl_run_already_in_the_store_imports_nothing(tmp_path):
    runs, db = two_runs(tmp_path)
    path = write_jsonl(tmp_path, runs, db)
    other = tmp_path / "other.db"
    api.import_runs(tmp_path / "three.md", db=other)  # a run of another id, so the store exists
    (tmp_path / "second.jsonl").write_text(path.read_text(encoding="utf-8").split("\n")[1] + "\n", encoding="utf-8")
    api.import_runs(tmp_path / "second.jsonl", db=other)
    before = {r.id for r in Store(other).list_runs()}
    proc = run_cli("import", path.name, "--db", "other.db", cwd=tmp_path)
    assert_one_line_error(proc, f"run {runs[1].id} is already in")
    assert {r.id for r in Store(other).list_runs()} == before  # the file's first run was not stored either
    assert runs[0].id not in before


@pytest.mark.parametrize(
    "name, text, args, needles",
    [
        ("bad.jsonl", None, [], ["bad.jsonl", "not a valid jsonl file", "line 2"]),
        ("notes.xyz", "nothing to see\n", [], ["notes.xyz", "cannot tell its format", "--format"]),
        ("notes.txt", "nothing to see\n", [], ["not a valid backrooms file", "line 2"]),
        ("page.html", "<html><title>Resonant Chat</title></html>", [], ["not a valid resonant file", "no message"]),
        ("m.json", '[{"role": "user", "content": "hi"}]', ["--format", "docx"], ["unknown import format 'docx'"]),
        ("m.json", '[{"role": "user", "content": "hi"', ["--format", "openai"], ["not a valid openai file", "line 1"]),
        ("m.json", '[{"role": "user", "content": "hi"}]', ["--conversation", "x"], ["--conversation"]),
        ("missing.md", None, [], ["missing.md: no such file"]),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(tmp_path, name, text, args, needles):
    if name == "bad.jsonl":
        runs, db = two_runs(tmp_path)
        good = write_jsonl(tmp_path, runs, db).read_text(encoding="utf-8").split("\n")[0]
        text = good + "\n" + good[:-20] + "\n"
    if text is not None:
        (tmp_path / name).write_text(text, encoding="utf-8")
    proc = run_cli("import", name, *args, cwd=tmp_path)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "runs").exists()


def test_named_format_overrides_detection(tmp_path):
    # A Markdown transcript saved as .txt: detected by its contents.
    (tmp_path / "t.txt").write_text(EXAMPLE_MD.read_text(encoding="utf-8"), encoding="utf-8")
    assert detect_format(tmp_path / "t.txt").name == "md"
    result = CliRunner().invoke(cli, ["import", str(tmp_path / "t.txt"), "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 0 and "17 messages" in result.output
    result = CliRunner().invoke(
        cli, ["import", str(tmp_path / "t.txt"), "--format", "backrooms", "--db", str(tmp_path / "other.db")]
    )
    assert result.exit_code == 2 and "not a valid backrooms file" in result.output


def test_openai_names_from_the_command_line(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "import",
            str(FIXTURES / "importers" / "openai-chat.json"),
            "--names",
            "Ann, Bot",
            "--db",
            str(tmp_path / "d.db"),
        ],
    )
    assert result.exit_code == 0, result.output
    run_id = result.output.split(" as run ")[1].split()[0]
    assert api.load_run(run_id, db=tmp_path / "d.db").participants == ["Ann", "Bot"]


def test_analyze_reads_another_tools_file_of_one_conversation(tmp_path):
    run, name = api.load_target(
        str(FIXTURES / "importers" / "opus_sonnet_cli_20241018_131801.txt"), db=tmp_path / "d.db"
    )
    assert name == "opus_sonnet_cli_20241018_131801" and len(run.messages) == 5
    assert not (tmp_path / "d.db").exists()  # nothing stored
    runs, db = two_runs(tmp_path)
    with pytest.raises(DuologueError, match="holds 2 conversations"):
        api.load_target(str(write_jsonl(tmp_path, runs, db)), db=db)


def test_an_imported_running_run_has_no_writer_here(tmp_path):
    runs, db = two_runs(tmp_path)
    data = json.loads(api.export_run(runs[0].id, "json", db=db))
    data["status"], data["ended_at"] = "running", None
    (tmp_path / "running.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (run,) = api.import_runs(tmp_path / "running.json", db=tmp_path / "other.db")
    with Store(tmp_path / "other.db") as store:
        assert store.run_pid(run.id) is None  # no process here writes it: `ls` shows it as killed


def test_several_files_in_one_transaction_with_strict(tmp_path):
    here = FIXTURES / "importers"
    files = [here / "opus_sonnet_cli_20241018_131801.txt", here / "openai-chat.json", EXAMPLE_MD]
    out = run_cli("import", *map(str, files), "--db", "d.db", cwd=tmp_path, check=True).stdout.splitlines()
    assert [line.split(" as run ")[0] for line in out] == [f"imported {f}" for f in files]
    (tmp_path / "bad.md").write_text("not a transcript\n")
    proc = run_cli("import", *map(str, files), "bad.md", "--strict", "--db", "other.db", cwd=tmp_path)
    assert_one_line_error(proc, "bad.md", "not a valid md file", "line 1")
    assert not (tmp_path / "other.db").exists()
    runs, db = two_runs(tmp_path)
    (tmp_path / "one.json").write_text(api.export_run(runs[0].id, "json", db=db), encoding="utf-8")
    (tmp_path / "two.json").write_text(api.export_run(runs[0].id, "json", db=db) + "\n", encoding="utf-8")
    proc = run_cli("import", "one.json", "two.json", "--strict", "--db", "third.db", cwd=tmp_path)
    assert_one_line_error(proc, f"run {runs[0].id} comes twice")
    with Store(tmp_path / "third.db") as store:
        assert store.list_runs() == []


def test_several_files_without_strict_store_the_good_ones_and_list_the_others(tmp_path):
    here = FIXTURES / "importers"
    files = [here / "opus_sonnet_cli_20241018_131801.txt", here / "openai-chat.json", EXAMPLE_MD]
    (tmp_path / "bad.md").write_text("not a transcript\n")
    proc = run_cli("import", *map(str, files), "bad.md", "--db", "d.db", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert [line.split(" as run ")[0] for line in proc.stdout.splitlines()] == [f"imported {f}" for f in files]
    assert proc.stderr.splitlines() == [
        "skipped bad.md: not a valid md file: line 1: expected the title '# {name} ↔ {name}'",
        "3 files imported (3 runs); 1 skipped",
    ]
    with Store(tmp_path / "d.db") as store:
        assert sorted(r for (r,) in store.conn.execute("SELECT source FROM runs")) == sorted(map(str, files))


def test_a_program_adds_a_format(tmp_path):
    from duologue.importers import ImportFormat, register_import_format, unregister_import_format
    from duologue.importers.common import file_time, foreign_run, new_ids
    from duologue.records import Message

    def read(path, options):
        lines = path.read_text(encoding="utf-8").splitlines()
        messages = [Message(index=k, speaker=line.split(">", 1)[0], content=line.split(">", 1)[1]) for k, line in
                    enumerate(lines, 1)]  # fmt: skip
        speakers = list(dict.fromkeys(m.speaker for m in messages))
        return [foreign_run(new_ids(1)[0], path, speakers, messages, started_at=file_time(path))]

    fmt = ImportFormat("arrows", "a>b lines", (".arrows",), lambda p: p.read_bytes().startswith(b"a>"), read)
    register_import_format(fmt)
    try:
        (tmp_path / "chat.log").write_text("a>hi\nb>hello\na>bye\n", encoding="utf-8")
        assert detect_format(tmp_path / "chat.log") is fmt
        (run,) = api.import_runs(tmp_path / "chat.log", db=tmp_path / "d.db")
        assert [(m.speaker, m.content) for m in run.messages] == [("a", "hi"), ("b", "hello"), ("a", "bye")]
    finally:
        unregister_import_format("arrows")
    assert "arrows" not in import_formats()
