"""Every bad input gets one clear line on stderr, exit status 2, no traceback, and the store untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli


def assert_store_untouched(folder: Path) -> None:
    assert not (folder / "runs").exists(), list((folder / "runs").iterdir())


def test_unknown_provider(tmp_path):
    proc = run_cli("run", "--a", "nosuch/model", cwd=tmp_path)
    assert_one_line_error(proc, "unknown provider 'nosuch'")
    assert_store_untouched(tmp_path)


def test_model_string_without_provider(tmp_path):
    proc = run_cli("run", "--b", "smollm2", cwd=tmp_path)
    assert_one_line_error(proc, "provider/model")
    assert_store_untouched(tmp_path)


def test_unknown_embedded_model(tmp_path):
    proc = run_cli("run", "--a", "local/nope", cwd=tmp_path)
    assert_one_line_error(proc, "local/nope", "not an embedded model")
    assert_store_untouched(tmp_path)


def test_missing_gguf(tmp_path):
    proc = run_cli("run", "--a", "local/models/missing.gguf", cwd=tmp_path)
    assert_one_line_error(proc, "no GGUF file at models/missing.gguf")
    assert_store_untouched(tmp_path)


def test_invalid_toml(tmp_path):
    (tmp_path / "bad.toml").write_text("max_messages = = 3\n")
    proc = run_cli("run", "-c", "bad.toml", cwd=tmp_path)
    assert_one_line_error(proc, "bad.toml", "invalid TOML")
    assert_store_untouched(tmp_path)


def test_missing_toml_file(tmp_path):
    proc = run_cli("run", "-c", "nowhere.toml", cwd=tmp_path)
    assert_one_line_error(proc, "nowhere.toml", "no such file")


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("max_messages = 0\n", "max_messages"),
        ("max_mesages = 4\n", "max_mesages: unknown field"),
        ('end_on = "sometimes"\n', "end_on"),
        ('[[participants]]\nname = "a"\ntemperature = "hot"\n', "participants.0.temperature"),
        ('[[participants]]\nname = "x"\n[[participants]]\nname = "x"\n', "names must differ"),
    ],
)
def test_invalid_field(tmp_path, toml, needle):
    (tmp_path / "conv.toml").write_text(toml)
    proc = run_cli("run", "-c", "conv.toml", cwd=tmp_path)
    assert_one_line_error(proc, "conv.toml", needle)
    assert_store_untouched(tmp_path)


def test_missing_api_key(tmp_path):
    proc = run_cli("run", "--a", "openrouter/qwen/qwen3-next-80b-a3b-instruct", cwd=tmp_path)
    assert_one_line_error(proc, "OPENROUTER_API_KEY")
    assert_store_untouched(tmp_path)


@pytest.mark.parametrize("command", [["show"], ["export"], ["resume"]])
def test_unknown_run_id_without_store(tmp_path, command):
    proc = run_cli(*command, "20990101-000000-abcdef", cwd=tmp_path)
    assert_one_line_error(proc, "no duologue store")
    assert_store_untouched(tmp_path)


def test_unknown_run_id_with_store(tmp_path):
    (tmp_path / "t.md").write_text(
        "# a ↔ b\n\n**Started:** 2026-01-01 10:00:00\n**Ended:** 2026-01-01 10:01:00\n**Messages:** 1\n\n---\n\n"
        "### a\n\nhello\n\n---\n\n"
    )
    run_cli("import", "t.md", cwd=tmp_path, check=True)
    db = tmp_path / "runs" / "duologue.db"
    before = db.read_bytes()
    for command in ("show", "export", "resume"):
        proc = run_cli(command, "nosuchrun", cwd=tmp_path)
        assert_one_line_error(proc, "no run 'nosuchrun'")
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty file"),
        ("hello world\n", "line 1"),
        ("# a ↔ b\n\n**Started:** yesterday\n", "line 3"),
        (
            "# a ↔ b\n\n**Started:** 2026-01-01 10:00:00\n**Ended:** 2026-01-01 10:01:00\n**Messages:** 2\n\n---\n\n"
            "### a\n\nhello\n\n---\n\n",
            "header says 2 messages",
        ),
        (
            "# a ↔ b\n\n**Started:** 2026-01-01 10:00:00\n**Ended:** 2026-01-01 10:01:00\n**Messages:** 1\n\n---\n\n"
            "### c\n\nhello\n\n---\n\n",
            "speaker 'c' is not in the title",
        ),
    ],
)
def test_malformed_transcript(tmp_path, text, needle):
    (tmp_path / "t.md").write_text(text)
    proc = run_cli("import", "t.md", cwd=tmp_path)
    assert_one_line_error(proc, "t.md", needle)
    assert_store_untouched(tmp_path)


def test_binary_transcript(tmp_path):
    (tmp_path / "t.md").write_bytes(b"\xff\xfe\x00garbage\x80")
    proc = run_cli("import", "t.md", cwd=tmp_path)
    assert_one_line_error(proc, "t.md", "not UTF-8")
    assert_store_untouched(tmp_path)


def test_export_unknown_format_is_a_usage_error(tmp_path):
    proc = run_cli("export", "x", "--format", "docx", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
