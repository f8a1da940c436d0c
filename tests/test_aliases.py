"""Model aliases: `duologue alias set/ls/rm`, kept in aliases.toml in the config folder (DUOLOGUE_CONFIG_DIR
here), usable wherever a model string is, and resolved into the stored spec."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from duologue.cli import cli
from duologue.experiment_spec import load_experiment_spec
from duologue.spec import spec_from_dict
from duologue.spec_checks import entering_experiment, entering_spec


@pytest.fixture
def config(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    monkeypatch.setenv("DUOLOGUE_CONFIG_DIR", str(folder))
    return folder


def duologue(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_set_list_and_remove(config):
    assert "no aliases yet" in duologue("alias", "ls").output
    r = duologue(
        "alias", "set", "fast", "openrouter/qwen/qwen3-next", "--base-url", "http://127.0.0.1:9/v1",
        "--api-key-env", "MY_ROUTER_KEY", "--extra", "provider.sort=throughput", "--extra", "top_k=20",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (config / "aliases.toml").exists()
    listed = json.loads(duologue("alias", "ls", "--json").output)
    assert listed == {
        "fast": {
            "model": "openrouter/qwen/qwen3-next",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "MY_ROUTER_KEY",
            "extra": {"provider": {"sort": "throughput"}, "top_k": 20},
        }
    }
    table = duologue("alias", "ls").output
    assert "fast" in table and "openrouter/qwen/qwen3-next" in table and "MY_ROUTER_KEY" in table
    assert duologue("alias", "set", "fast", "local/smollm2").exit_code == 0  # replaced
    assert json.loads(duologue("alias", "ls", "--json").output) == {
        "fast": {"model": "local/smollm2", "base_url": None, "api_key_env": None, "extra": {}}
    }
    assert duologue("alias", "rm", "fast").exit_code == 0
    assert json.loads(duologue("alias", "ls", "--json").output) == {}


@pytest.mark.parametrize(
    "args, message",
    [
        (("set", "a/b", "local/smollm2"), "alias name 'a/b': use letters, digits"),
        (("set", "ok", "nope/model"), "model 'nope/model': unknown provider 'nope'"),
        (("set", "ok", "smollm2"), "model 'smollm2' is neither a model string of the form provider/model"),
        (("set", "ok", "local/"), "model 'local/' is not of the form provider/model"),
        (("set", "imported", "local/smollm2"), "alias name 'imported' is reserved"),
        (("set", "ok", "local/smollm2", "--extra", "novalue"), "--extra 'novalue': expected KEY=VALUE"),
        (("rm", "missing"), "no alias named 'missing' (none set yet"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(config, args, message):
    r = duologue("alias", *args)
    assert r.exit_code == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (config / "aliases.toml").exists()


def test_a_broken_aliases_file_is_one_line(config):
    config.mkdir()
    (config / "aliases.toml").write_text("[aliases.fast]\nmodel = 3\n")
    r = duologue("alias", "ls")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "alias fast: model" in r.stderr


def test_an_alias_works_wherever_a_model_string_does_and_the_spec_keeps_what_it_stood_for(
    config, scripted_models, tmp_path, monkeypatch
):
    monkeypatch.setenv("MY_KEY_VAR", "sk-never-stored-1234")
    args = ("--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "MY_KEY_VAR", "--extra", "top_k=3")
    assert duologue("alias", "set", "fast", "scripted/x", *args).exit_code == 0
    db = tmp_path / "runs" / "d.db"
    r = duologue("run", "--a", "fast", "--b", "scripted/y", "--max-messages", "3", "--quiet", "--db", db)
    assert r.exit_code == 0, r.output + r.stderr
    shown = json.loads(duologue("show", "@last", "--json", "--db", db).output)
    a, b = shown["spec"]["participants"]
    assert (a["name"], a["model"], a["alias"]) == ("fast", "scripted/x", "fast")
    assert (a["base_url"], a["api_key_env"], a["extra"]) == ("http://127.0.0.1:9/v1", "MY_KEY_VAR", {"top_k": 3})
    assert b["alias"] is None and b["model"] == "scripted/y"
    assert [m["model"] for m in shown["messages"]] == [None, "scripted/y", "scripted/x"]
    assert all(b"sk-never-stored-1234" not in f.read_bytes() for f in db.parent.iterdir() if f.is_file())
    # A fork that gives the aliased side another model does not keep the alias's name.
    r = duologue("fork", "@last", "--at", "2", "--a", "scripted/z", "--max-messages", "3", "--quiet", "--db", db)
    assert r.exit_code == 0, r.output + r.stderr
    forked = json.loads(duologue("show", "@last", "--json", "--db", db).output)["spec"]["participants"][0]
    assert (forked["model"], forked["alias"]) == ("scripted/z", None)
    # The alias can go; the run keeps what it stood for.
    duologue("alias", "rm", "fast")
    first = json.loads(duologue("ls", "--json", "--db", db).output)[-1]["id"]
    assert json.loads(duologue("show", first, "--json", "--db", db).output)["spec"]["participants"][0]["alias"] == (
        "fast"
    )


def test_toml_participants_changes_and_experiment_pools_take_aliases(config, tmp_path):
    assert (
        duologue("alias", "set", "fast", "openai/gpt-4o", "--extra", "top_k=3", "--extra", "seed_mode=1").exit_code == 0
    )
    data = {
        "participants": [
            {"name": "a", "model": "fast", "extra": {"top_k": 9}, "base_url": "http://own/v1"},
            {"name": "b"},
        ],
        "changes": [{"at": 4, "participant": "b", "model": "fast"}],
    }
    # A spec is data: validating it reads no aliases file; where it enters a run the aliases are resolved.
    assert spec_from_dict(data).participants[0].model == "fast"
    spec = entering_spec(spec_from_dict(data))
    a = spec.participants[0]
    assert (a.model, a.alias, a.base_url) == ("openai/gpt-4o", "fast", "http://own/v1")  # its own base URL wins
    assert a.extra == {"top_k": 9, "seed_mode": 1}  # its own extra keys win over the alias's
    assert spec.changes[0].model == "openai/gpt-4o"
    # A stored spec always loads, whatever aliases are set now: a name that is no alias stays as it is.
    gone = spec_from_dict({"participants": [{"name": "a", "model": "gone"}, {"name": "b"}]})
    assert entering_spec(gone).participants[0].model == "gone"
    exp = tmp_path / "exp.toml"
    exp.write_text('[[participants]]\nname = "p"\nmodel = "fast"\n[[participants]]\nname = "q"\n')
    pool = entering_experiment(load_experiment_spec(exp)).participants
    assert (pool[0].model, pool[0].alias) == ("openai/gpt-4o", "fast")


def test_an_unknown_alias_is_one_line_naming_the_known_ones(config, tmp_path):
    duologue("alias", "set", "fast", "local/smollm2")
    r = duologue("run", "--a", "fsat", "--db", tmp_path / "d.db")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "error: model 'fsat' is neither a model string of the form provider/model" in r.stderr
    assert "nor an alias (known: fast)" in r.stderr
    assert not (tmp_path / "d.db").exists()
