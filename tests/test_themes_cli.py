"""`duologue themes`, `analyze --themes` and the open-ended example, as a user runs them."""

from __future__ import annotations

import dataclasses
import json
import tomllib

from duologue.analysis.themes import builtin_themes, parse_themes
from helpers import REPO, run_cli


def test_themes_lists_the_builtin_set_and_prints_its_file(tmp_path):
    listed = run_cli("themes", cwd=tmp_path, check=True).stdout
    for theme in builtin_themes().themes:
        assert theme.id in listed
    assert '"take turns"' in listed  # the invitation words the topic rule reads
    printed = run_cli("themes", "--toml", cwd=tmp_path, check=True).stdout
    builtin = builtin_themes()
    assert parse_themes(printed, "printed") == dataclasses.replace(builtin, source="printed")
    assert tomllib.loads(printed)["theme"][0]["id"] == "gratitude"


def test_a_bad_theme_file_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text('[[theme]]\nid = "a b"\nphrases = ["x"]\n')
    for args in (
        ("themes", "--file", "bad.toml"),
        ("analyze", str(REPO / "examples" / "gratitude-drift.md"), "--themes", "bad.toml", "--no-plots"),
    ):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
        assert "id must be letters" in proc.stderr


def test_analyze_with_a_theme_file_of_ones_own(tmp_path):
    # The built-in gratitude theme's phrases and lexicon, under a name of one's own.
    gratitude = builtin_themes().get("gratitude")
    phrases = json.dumps(list(gratitude.phrases), ensure_ascii=False)
    lexicon = json.dumps(list(gratitude.lexicon), ensure_ascii=False)
    (tmp_path / "mine.toml").write_text(
        f'[[theme]]\nid = "thanks"\nlabel = "thankfulness"\nphrases = {phrases}\nlexicon = {lexicon}\n'
    )
    drift = str(REPO / "examples" / "gratitude-drift.md")
    proc = run_cli("analyze", drift, "--themes", "mine.toml", "--json", "--no-plots", cwd=tmp_path, check=True)
    found = json.loads(proc.stdout)
    assert found["attractor"]["theme"] == "thanks" and found["attractor"]["label"] == "thankfulness"
    builtin = json.loads(run_cli("analyze", drift, "--json", "--no-plots", cwd=tmp_path, check=True).stdout)
    assert builtin["attractor"]["theme"] == "bliss" and builtin["attractor"]["onset_message"] == 9


def test_the_open_ended_example_plans_the_published_protocol(tmp_path):
    proc = run_cli("batch", str(REPO / "examples" / "open-ended.toml"), "--dry-run", "--json", cwd=tmp_path, check=True)
    plan = json.loads(proc.stdout)
    text = json.dumps(plan)
    assert "freedom" in text and "explore" in text and "open" in text
    assert "12" in run_cli("batch", str(REPO / "examples" / "open-ended.toml"), "--dry-run", cwd=tmp_path).stdout
