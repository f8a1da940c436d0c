"""Every command's output piped keeps each row and hint on one line (issue 25, finding 6).

Run as `duologue CMD | cat` would: stdout and stderr are not terminals and COLUMNS is unset (rich would lay
the output out for 80 columns). Each command is given long values — an opener of 200 characters, a long
title, a run of 70 messages — and each must come out whole, on one line, uncut.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from duologue.cli import cli
from helpers import REPO, cli_env

LONG_OPENER = (
    "What is the most beautiful idea you know, and why does it move you? Take your time: tell me where you "
    "first met it, who showed it to you, and what it changed in the way you see the world afterwards."
)
assert len(LONG_OPENER) > 160


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": None}, catch_exceptions=False)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def line_with(out: str, needle: str) -> str:
    """The one line holding `needle` whole."""
    lines = [ln for ln in out.splitlines() if needle in ln]
    assert lines, f"{needle!r} is not on one line of:\n{out}"
    return lines[0]


def numbered(n, view):
    said = [m for m in view if m.role != "system"]
    return f"reply {len(said) + 1}: something new about rivers and the sea, number {len(said) * 7}"


@pytest.fixture
def store(tmp_path, scripted_models):
    scripted_models.reply = numbered
    db = str(tmp_path / "d.db")
    run = invoke(
        "run", "--a", "scripted/a", "--b", "scripted/b", "--opener", LONG_OPENER, "--max-messages", "70", "--db", db
    )
    run_id = json.loads(invoke("ls", "--json", "--db", db).stdout)[0]["id"]
    return {"db": db, "run": run, "run_id": run_id, "tmp": tmp_path}


def test_run_ls_show_and_search_piped(store):
    db, run_id = store["db"], store["run_id"]
    line_with(store["run"].stdout, LONG_OPENER)  # the streamed transcript
    line_with(store["run"].stdout, f"transcript: {store['tmp']}")  # the summary's path
    line_with(store["run"].stdout, "analysis: ")
    line_with(invoke("ls", "--db", db).stdout, f" {run_id} ")
    shown = invoke("show", run_id, "--db", db).stdout
    line_with(shown, f"opener: {LONG_OPENER}")
    line_with(shown, "system: You are talking with another AI, not a human. Say what you think")
    line_with(invoke("search", "beautiful idea", "--db", db).stdout, "most beautiful idea")


def test_analyze_piped_prints_the_whole_theme_strip(store):
    out = invoke("analyze", store["run_id"], "--db", store["db"], "--no-plots").stdout
    strip = line_with(out, "theme strip: ").removeprefix("theme strip: ")
    assert not strip.startswith("…")
    assert len(strip.split("  (")[0]) == 70  # a mark for each of the 70 messages


def test_batch_dry_run_report_and_the_summary_piped(store, scripted_models):
    tmp, db = store["tmp"], store["db"]
    exp = tmp / "exp.toml"
    exp.write_text(
        f'name = "piped"\nmax_messages = 6\npairings = "all"\nopeners = [{json.dumps(LONG_OPENER)}, "short"]\n'
        '[[participants]]\nname = "x"\nmodel = "scripted/x"\n[[participants]]\nname = "y"\nmodel = "scripted/y"\n'
    )
    line_with(invoke("batch", str(exp), "--dry-run", "--db", db).stdout, LONG_OPENER)
    result = invoke("batch", str(exp), "--db", db)
    line_with(result.stdout, "its 2 runs by their analyses: loop or near loop ")
    line_with(result.stderr, "piped: 2/2 finished ")
    report = invoke("report", "piped", "--db", db, "-o", str(tmp / "rep")).stdout
    assert len([ln for ln in report.splitlines() if LONG_OPENER in ln]) == 2  # by opener, and its attractor map
    line_with(report, "wall time ")


def test_themes_models_and_alias_piped(tmp_path, monkeypatch):
    from duologue.analysis.themes import builtin_themes

    out = invoke("themes").stdout
    for t in builtin_themes().themes:
        if t.description:
            assert re.search(rf"^ {re.escape(t.id)} .*{re.escape(t.description)}$", out, re.M), t.id
    line_with(invoke("models").stdout, "local/path/to/any.gguf")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    url = "https://a-rather-long-host-name.example.org/openai/deployments/some-deployment/v1/with/a/long/path"
    invoke("alias", "set", "far", "openai-compatible/some-long-model-name", "--base-url", url)
    line_with(invoke("alias", "ls").stdout, url)


def test_export_and_import_piped(store):
    tmp, db, run_id = store["tmp"], store["db"], store["run_id"]
    out = tmp / "a-folder-with-a-rather-long-name-so-that-the-path-passes-eighty-columns" / "run.md"
    out.parent.mkdir()
    exported = invoke("export", run_id, "--format", "md", "-o", str(out), "--db", db)
    line_with(exported.stdout + exported.stderr, str(out))
    imported = invoke("import", str(out), "--db", str(tmp / "other.db"))
    line_with(imported.stdout + imported.stderr, str(out))


DRIVER = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from scripted import ScriptedBackend
from duologue.backends import registry
from duologue.backends.base import TextDelta
from duologue.backends.provider import Provider
from duologue.cli import main

class Slow(ScriptedBackend):
    async def complete(self, messages, sampling, on_event=None):
        await asyncio.sleep(0.05)
        if on_event is not None:
            on_event(TextDelta("some words "))
        return await super().complete(messages, sampling)

registry.register_provider(Provider("scripted", "scripted", description="tests",
    make=lambda p, provider, name: Slow(p.model, name=p.name), check=lambda p, provider, name: None))
sys.argv[0] = "duologue"
main()
"""


def test_the_ctrl_c_hint_stays_on_one_line_in_a_file(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(tests=str(REPO / "tests")))
    env = {k: v for k, v in cli_env().items() if k != "COLUMNS"}
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(driver), "run", "--a", "scripted/a", "--b", "scripted/b", "--max-messages", "400"],
            cwd=tmp_path,
            stdout=out,
            stderr=err,
            env=env,
        )
        deadline = time.monotonic() + 60
        while "### " not in (tmp_path / "out.txt").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    err_text = (tmp_path / "err.txt").read_text()
    hint = line_with(err_text, "interrupted: run ")
    assert re.fullmatch(r"interrupted: run (\S+) kept; continue it with `duologue resume \1`", hint), err_text
