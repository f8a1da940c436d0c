"""Issue 25, finding 7: the small wrongs, each with its test.

1. wordllama's import configured the root logger (INFO): every hosted request printed `INFO:httpx:…`.
2. A server that reports no usage: `tokens: 0 prompt, 0 completion, 0.0 tokens/s`, not "not reported".
3. `run --meta` printed no meta line for a message without token counts (a hosted one).
4. `export --all -o` and `--format parquet -o` wrote mode-0600 files; the other exports 0644.
5. `analyze nonexist.md` said there was no such run, not no such file.
6. `export --format xml` listed the formats without parquet.
7. An experiment file with `repeats = 0` and a bad `[vary]` value reported only the first problem.
8. A truncated JSONL file's error ended mid-sentence (`Unterminated string starting at`).
9. Imported runs: `temperature None seed None`, `imported ↔ imported` although the file names the models,
   and a start time from the file's mtime instead of the time in its name.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from duologue.cli import cli
from duologue.records import Message, Run
from helpers import cli_env


def invoke(*args, code=0, **kw):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, **kw)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


# 1 ------------------------------------------------------------------------------------------------------


def test_loading_the_embedder_leaves_the_root_logger_alone():
    probe = textwrap.dedent(
        """
        import logging
        from duologue.analysis.embeddings import get_embedder
        get_embedder().embed(["hello there"])
        root = logging.getLogger()
        print(len(root.handlers), logging.getLevelName(root.level))
        logging.getLogger("httpx").info("HTTP Request: POST http://x/v1/chat/completions")
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "WARNING"]
    assert "INFO:httpx" not in out.stderr


def test_a_logging_setup_of_the_programs_own_is_kept():
    probe = textwrap.dedent(
        """
        import logging
        logging.basicConfig(level=logging.DEBUG)
        from duologue.analysis.embeddings import get_embedder
        get_embedder().embed(["hello there"])
        root = logging.getLogger()
        print(len(root.handlers), logging.getLevelName(root.level))
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.stdout.split() == ["1", "DEBUG"], out.stderr


# 2, 3 ---------------------------------------------------------------------------------------------------


def unreported_run() -> Run:
    msgs = [
        Message(1, "a", "Hello.", injected=True),
        Message(2, "b", "Hi.", model="openai-compatible/m", latency=0.5, ttft=0.1, finish_reason="stop"),
        Message(3, "a", "Well.", model="openai-compatible/m", latency=0.5, ttft=0.1, finish_reason="stop"),
    ]
    return Run(id="r1", participants=["a", "b"], spec={}, started_at=datetime(2026, 12, 4, tzinfo=UTC), messages=msgs)


def test_totals_of_a_run_whose_server_reported_no_usage_say_so():
    from duologue.queries import run_totals

    totals = run_totals(unreported_run())
    assert (totals.prompt_tokens, totals.completion_tokens, totals.tokens_per_second) == (None, None, None)
    run = unreported_run()
    run.messages[1].completion_tokens = 4  # one message counted: the known ones are summed
    assert run_totals(run).completion_tokens == 4


def test_meta_is_printed_for_a_message_without_token_counts():
    from io import StringIO

    from rich.console import Console

    from duologue.terminal import TerminalRenderer

    out = StringIO()
    renderer = TerminalRenderer(Console(file=out, width=200), show_meta=True)
    run = unreported_run()
    renderer.message_done(run, run.messages[0])  # the opener: no meta
    renderer.message_done(run, run.messages[1])
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    assert lines[-1] == "tokens not reported · ttft 0.10s · latency 0.50s · finish stop"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_hosted_run_without_usage_prints_no_log_lines_and_says_tokens_are_not_reported(tmp_path):
    from backends.fakes import Said, ScriptedOpenAI
    from faultproxy import running

    with running(ScriptedOpenAI(lambda n, body: Said([f"answer {n}"]))) as url:
        args = ["run", "--a", "openai-compatible/m", "--b", "openai-compatible/m", "--max-messages", "3", "--meta"]
        args += ["--base-url-a", url + "/v1", "--base-url-b", url + "/v1"]
        proc = subprocess.run(
            [sys.executable, "-m", "duologue", *args], cwd=tmp_path, capture_output=True, text=True, env=cli_env()
        )
    assert proc.returncode == 0, proc.stderr
    assert "INFO:" not in proc.stderr and "HTTP Request" not in proc.stderr, proc.stderr
    assert "tokens: not reported by the server" in proc.stdout
    assert proc.stdout.count("tokens not reported · ttft ") == 2  # a meta line for each generated message


# 4, 6 ---------------------------------------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path, scripted_models):
    db = str(tmp_path / "d.db")
    invoke("run", "--a", "scripted/a", "--b", "scripted/b", "--max-messages", "4", "--db", db, "-q")
    return db


def test_every_export_file_gets_the_same_mode(tmp_path, stored):
    made = {
        "md": ["export", "@last", "--format", "md"],
        "jsonl": ["export", "--all"],
        "parquet-one": ["export", "@last", "--format", "parquet"],
        "parquet-all": ["export", "--all", "--format", "parquet"],
    }
    modes = {}
    before = os.umask(0o022)  # the process's umask, set back after: other tests run in this process too
    try:
        for name, args in made.items():
            path = tmp_path / f"{name}.out"
            invoke(*args, "-o", str(path), "--db", stored)
            modes[name] = stat.S_IMODE(path.stat().st_mode)
    finally:
        os.umask(before)
    assert set(modes.values()) == {0o644}, {k: oct(v) for k, v in modes.items()}


def test_an_unknown_export_format_lists_every_format(stored):
    err = invoke("export", "@last", "--format", "xml", "--db", stored, code=2).stderr
    for fmt in ("html", "json", "md", "parquet"):
        assert fmt in err, err


# 5 ------------------------------------------------------------------------------------------------------


def test_analyze_a_missing_file_says_no_such_file(tmp_path, stored):
    err = invoke("analyze", str(tmp_path / "nonexist.md"), "--db", stored, code=2).stderr
    assert err.strip() == f"duologue: error: {tmp_path / 'nonexist.md'}: no such file"
    err = invoke("analyze", "nonexist.md", "--db", stored, code=2).stderr
    assert "nonexist.md: no such file" in err and "no run" not in err
    # A run id that is not in the store is still named as a run.
    err = invoke("analyze", "20990101-000000-abcdef", "--db", stored, code=2).stderr
    assert "no run" in err


# 7 ------------------------------------------------------------------------------------------------------


def test_an_experiment_file_reports_every_problem(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text(
        'name = "bad"\nrepeats = 0\n[[participants]]\nname = "x"\nmodel = "scripted/x"\n'
        '[vary]\ntemperature = [0.5, "hot"]\n'
    )
    err = invoke("batch", str(exp), "--dry-run", code=2).stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert any("repeats" in ln for ln in lines) and any("temperature" in ln for ln in lines), err
    assert all(ln.startswith("duologue: error: ") for ln in lines)


# 8 ------------------------------------------------------------------------------------------------------


def test_a_truncated_jsonl_error_is_a_whole_sentence(tmp_path, stored):
    whole = tmp_path / "runs.jsonl"
    invoke("export", "--all", "-o", str(whole), "--db", stored)
    cut = tmp_path / "cut.jsonl"
    cut.write_text(whole.read_text()[:-40])
    err = invoke("import", str(cut), "--db", str(tmp_path / "other.db"), code=2).stderr
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert "line 1" in line and "column" in line, line  # where, in whole words
    assert not line.rstrip().endswith(("at", "at:", "starting at")), line


# 9 ------------------------------------------------------------------------------------------------------

BACKROOMS = """\
### Claude 1 ###
Hello from the first model.

### Claude 2 ###
And hello from the second.

### Claude 1 ###
Shall we explore?
"""


def test_an_imported_run_names_its_models_and_starts_when_its_file_says(tmp_path):
    log = tmp_path / "logs"
    log.mkdir()
    path = log / "opus_sonnet_dreamsim3_20240703_140509.txt"  # UniversalBackrooms names its logs so
    path.write_text(BACKROOMS)
    os.utime(path, (1_800_000_000, 1_800_000_000))  # an mtime far from the time in the name
    db = str(tmp_path / "d.db")
    invoke("import", str(path), "--db", db)
    (row,) = json.loads(invoke("ls", "--json", "--db", db).stdout)
    # The name's time is the writer's local time, as UniversalBackrooms writes it.
    named = datetime(2024, 7, 3, 14, 5, 9).astimezone().astimezone(UTC)
    assert datetime.fromisoformat(row["started_at"]) == named
    assert row["models"] == ["opus", "sonnet"], row["models"]
    shown = invoke("show", row["id"], "--db", db).stdout
    assert "Claude 1: opus" in shown and "Claude 2: sonnet" in shown, shown
    assert "None" not in shown and "temperature none" not in shown and "seed none" not in shown, shown
