"""`report --help` names the files `report` really writes."""

from __future__ import annotations

import re

from click.testing import CliRunner

from duologue.batch import run_experiment
from duologue.cli import cli
from duologue.experiment_spec import ExperimentSpec
from duologue.spec import Participant


def test_report_help_names_the_files_it_writes(tmp_path, scripted_models):
    exp = ExperimentSpec(
        name="tiny",
        participants=[Participant(name="a", model="scripted/a"), Participant(name="b", model="scripted/b")],
        max_messages=4,
    )
    db = tmp_path / "d.db"
    assert not run_experiment(exp, db=db).errors
    runner = CliRunner()
    help_text = " ".join(runner.invoke(cli, ["report", "--help"], terminal_width=200).output.split())
    named = set(re.findall(r"\bEXPERIMENT-[\w.-]*\.json\b|(?<![\w-])report\.json\b", help_text))
    assert named == {"EXPERIMENT-report.json"}, help_text
    result = runner.invoke(cli, ["report", "tiny", "--db", str(db), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert [n for n in written if n.endswith(".json")] == ["tiny-report.json"]
    assert all(n.startswith("tiny-") for n in written), written  # "named EXPERIMENT-…"
    assert "beside the store" in help_text and "runs/reports/EXPERIMENT" in help_text
