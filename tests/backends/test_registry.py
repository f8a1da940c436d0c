"""The provider registry: one way in for built-in and plugin providers, and no backend imported to list them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from duologue.backends import registry
from duologue.backends.provider import Provider
from duologue.errors import DuologueError, UnknownModelError
from duologue.spec import Participant
from helpers import cli_env

PLUGIN = """
from duologue.backends.base import Reply, Usage
from duologue.backends.provider import Provider
from duologue.records import utcnow


class Echo:
    def __init__(self, model):
        self.model = model

    async def complete(self, messages, sampling, on_event=None):
        now = utcnow()
        return Reply(text=f"echo of {len(messages)} messages", usage=Usage(1, 4), finish_reason="stop",
                     started_at=now, ended_at=now, latency=0.0)

    async def aclose(self):
        pass


PROVIDER = Provider("echo", "echo", description="says how many messages it was sent",
                    make=lambda p, provider, name: Echo(p.model))
"""


def install_plugin(folder, module: str, source: str, entry: str) -> None:
    """A package as pip would leave it: the module, and a dist-info whose entry point names it."""
    (folder / f"{module}.py").write_text(source)
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[duologue.providers]\n{entry}\n")


def plugin_env(folder) -> dict[str, str]:
    env = cli_env()
    env["PYTHONPATH"] = f"{folder}:{env.get('PYTHONPATH', '')}"
    return env


def test_listing_the_providers_imports_no_backend():
    code = textwrap.dedent("""
        import sys
        from duologue.backends.registry import PROVIDERS, check_participant
        from duologue.spec import Participant
        names = list(PROVIDERS)
        check_participant(Participant(name="a", model="ollama/llama3"))
        loaded = [m for m in sys.modules if m.split(".")[0] in ("openai", "anthropic", "llama_cpp")
                  or m.startswith(("duologue.backends.embedded", "duologue.backends.openai_compat",
                                   "duologue.backends.anthropic"))]
        print(",".join(names)); print(loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    names, loaded = out.stdout.splitlines()
    assert names.split(",")[:2] == ["local", "openai"] and "openai-compatible" in names.split(",")
    assert loaded == "[]"


def cli_with(site, *args: str, cwd) -> subprocess.CompletedProcess:
    """`duologue ARGS` in a subprocess whose Python also finds the packages in `site`."""
    return subprocess.run(
        [sys.executable, "-m", "duologue", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=plugin_env(site),
        timeout=120,
    )


def test_a_plugin_provider_is_listed_and_runs_a_conversation(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "duologue_echo", PLUGIN, "echo = duologue_echo:PROVIDER")
    models = cli_with(site, "models", cwd=tmp_path)
    assert models.returncode == 0 and "echo/<model>" in models.stdout, models.stderr
    assert "says how many messages it was sent" in models.stdout
    run = cli_with(site, "run", "--a", "echo/one", "--b", "echo/two", "--max-messages", "3", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    transcript = next((tmp_path / "runs").glob("*.md")).read_text()
    assert "echo of 2 messages" in transcript and "echo of 3 messages" in transcript


def test_a_broken_plugin_is_named_in_a_one_line_error_and_spares_the_others(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "duologue_broken", "raise ImportError('no such SDK')\n", "broken = duologue_broken:PROVIDER")
    proc = cli_with(site, "run", "--a", "broken/x", "--b", "broken/y", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "broken" in proc.stderr and "no such SDK" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    models = cli_with(site, "models", cwd=tmp_path)
    assert models.returncode == 0 and "openrouter/<model>" in models.stdout and "broken/" not in models.stdout


def test_register_provider_refuses_a_taken_name_and_unregister_removes_it():
    with pytest.raises(DuologueError, match="already registered"):
        registry.register_provider(Provider("openai", "openai"))
    made = []
    registry.register_provider(Provider("fake", "fake", make=lambda p, provider, name: made.append(name) or name))
    try:
        assert registry.make_backend(Participant(name="a", model="fake/some/model")) == "some/model"
        assert made == ["some/model"]
    finally:
        registry.unregister_provider("fake")
    with pytest.raises(UnknownModelError, match="unknown provider 'fake'"):
        registry.parse_model_string("fake/x")
