"""Every reading command laid out at 80 and 200 columns (--width) and piped (no terminal, no --width).

At a width, no line is wider than it, and ids, statuses and key states are printed whole (never cut
to `…`). Piped, nothing is wrapped: a long message, a plot's path and a table's row are each one line,
whatever COLUMNS says.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console, Group

from duologue.cli import cli
from duologue.progress import BatchProgressDisplay, BatchTotals
from scripted import scripted_provider

LONG = " ".join(f"word{i}" for i in range(60))  # a message far wider than 200 columns
MODES = ("80", "200", "piped")
ENV = {"COLUMNS": "80"}  # what a pipe must not be wrapped at


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env=ENV, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def width_args(mode: str) -> list[str]:
    return [] if mode == "piped" else ["--width", mode]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with a run that says long things, a fork of it, and a two-conversation experiment."""
    root = tmp_path_factory.mktemp("rendering")
    with scripted_provider() as models:
        db = str(root / "runs" / "duologue.db")
        models.reply = lambda n, view: LONG if n % 2 else f"a shorter reply number {n}"
        model_a = "scripted/a-model-with-a-rather-long-name-indeed"
        ran = invoke("run", "--a", model_a, "--b", "scripted/b", "--max-messages", "6", "--db", db, "-q").stdout
        (parent,) = json.loads(invoke("ls", "--json", "--db", db).stdout)
        invoke("fork", parent["id"], "--at", "3", "--db", db, "-q")
        models.reply = lambda n, view: "the same words every time"
        exp = root / "an-experiment-with-a-long-file-name.toml"
        exp.write_text(
            'name = "rendering"\nmax_messages = 4\nopeners = ["hello", "what is a river, and where does it go?"]\n'
            'pairings = "all"\n[[participants]]\nname = "x"\nmodel = "scripted/x"\n'
            '[[participants]]\nname = "y"\nmodel = "scripted/y"\n'
        )
        batch = {mode: None for mode in MODES}
        batch["piped"] = invoke("batch", str(exp), "--db", db)  # runs them; the others find them done
        for mode in ("80", "200"):
            batch[mode] = invoke("batch", str(exp), "--db", db, *width_args(mode))
    runs = json.loads(invoke("ls", "--json", "--db", db).stdout)
    # A folder for plots whose paths are longer than 80 columns.
    plots = root / ("plots-" + "deep" * 12)
    return {
        "root": root,
        "db": db,
        "ran": ran,
        "runs": runs,
        "parent": parent["id"],
        "exp": exp,
        "batch": batch,
        "plots": plots,
    }


def assert_fits(text: str, mode: str) -> None:
    if mode == "piped":
        assert "\x1b" not in text  # no colour, no cursor movement
        return
    wide = [line for line in text.splitlines() if cell_len(line) > int(mode)]
    assert not wide, f"wider than {mode} columns: {wide}"


@pytest.mark.parametrize("mode", MODES)
def test_ls(store, mode):
    out = invoke("ls", "--db", store["db"], *width_args(mode)).stdout
    assert_fits(out, mode)
    assert "…" not in out
    lines = out.splitlines()
    for run in store["runs"]:  # each run on a line of its own, its id and status whole
        (line,) = [ln for ln in lines if ln.startswith(f" {run['id']} ")]
        assert re.search(rf"\s{run['status']}\s+{run['stop_reason']}(\s|$)", line), line
    if mode != "80":  # room for every column: the parent, the experiment
        assert f"{store['parent']}@3" in out
        assert sum(" rendering " in ln or ln.endswith(" rendering") for ln in lines) == 2
    else:
        assert "left out at 80 columns:" in out and "parent" in out.split("left out at 80 columns:")[1]
        assert "cost" in out.split("left out at 80 columns:")[1]  # the cost column wraps away at 80 columns
        # What the stored analysis says of each run is kept at 80 columns: its loop and its end state.
        header = lines[0].split()
        assert "loop" in header and header[-2:] == ["end", "state"]


@pytest.mark.parametrize("mode", MODES)
def test_models_keeps_the_key_column(store, mode):
    from duologue.backends.registry import PROVIDERS

    out = invoke("models", *width_args(mode)).stdout
    assert_fits(out, mode)
    header = out.splitlines()[0].split()
    assert header[:4] == ["model", "string", "key", "variable"] and "key" in header[4:]
    for p in PROVIDERS.values():
        if p.api == "local" or not p.key_env:
            continue
        (line,) = [ln for ln in out.splitlines() if f" {p.name}/<model> " in ln]
        assert re.search(rf"\s{p.key_env}\s+(set|not set|optional)(\s|$)", line), line
    if mode == "piped":  # whole rows: the base URLs too
        assert "https://api.openai.com/v1" in out


@pytest.mark.parametrize("mode", MODES)
def test_show(store, mode):
    out = invoke("show", store["parent"], "--db", store["db"], *width_args(mode)).stdout
    assert_fits(out, mode)
    assert f"run {store['parent']}   status finished" in out
    if mode == "piped":
        assert LONG in out.splitlines()  # the message on one line, not wrapped
    else:
        assert LONG not in out and "word59" in out  # wrapped, not cut


@pytest.mark.parametrize("mode", MODES)
def test_analyze(store, mode):
    folder = store["plots"] / mode
    out = invoke("analyze", store["parent"], "--db", store["db"], "--plots", str(folder), *width_args(mode)).stdout
    assert_fits(out, mode)
    plots = sorted(folder.glob("*.png"))
    assert plots
    if mode == "piped":
        for path in plots:
            assert f"plot: {path}" in out.splitlines()
    assert "exact loop: " in out and f"participants: {store['runs'][-1]['participants'][0]} ↔ b" in out


@pytest.mark.parametrize("mode", MODES)
def test_report(store, mode):
    out = invoke("report", "rendering", "--db", store["db"], "-o", str(store["root"] / "rep"), *width_args(mode)).stdout
    assert_fits(out, mode)
    assert "experiment rendering: 2 runs" in out and "…" not in out.replace("(local/…", "")
    if mode != "80":
        assert "what is a river, and where does it go?" in out  # the opener's text, whole
        assert "loop or near loop" in out  # headers on one line when there is room
    if mode == "piped":
        for path in sorted((store["root"] / "rep").glob("*.png")):
            assert f"plot: {path}" in out.splitlines()


@pytest.mark.parametrize("mode", MODES)
def test_batch_summary_and_progress_lines(store, mode):
    result = store["batch"][mode]
    assert_fits(result.stdout, mode)
    assert_fits(result.stderr, mode)
    assert "\x1b" not in result.stderr  # stderr is not a terminal: plain lines, no control codes
    if mode == "piped":  # the first run: a line as each conversation ended
        assert "rendering: 2 of 2 conversations run (0 already done)" in result.stdout
        progress = [ln for ln in result.stderr.splitlines() if ln.startswith("rendering: ")]
        assert progress[-1] == "rendering: 2/2 finished 0 · stopped early 2 · errored 0"
    else:
        assert "(2 already done)" in result.stdout


@pytest.mark.parametrize("width", [80, 200])
def test_the_live_progress_bar_and_its_counts_fit_on_a_line(width):
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    display = BatchProgressDisplay("an-experiment", console)
    totals = BatchTotals(total=120, skipped=4, done=60, running=8, messages=1234, finished=40, stopped_early=15)
    totals.errored, totals.loops = 5, 12
    display.update(totals)
    with console.capture() as captured:
        console.print(Group(*display.progress.get_renderables()))
    lines = captured.get().splitlines()
    assert all(cell_len(line) <= width for line in lines), lines
    assert lines[0].startswith("an-experiment")  # beside the bar, or above it when it leaves the bar no room
    (bar,) = [line for line in lines if "64/120" in line]
    assert "━" in bar and "finished 40 · stopped early 15 · errored 5" in bar
    assert any("loop 12 · near loop 0" in line for line in lines[1:])


def test_ls_filters(store):
    db = store["db"]

    def ids(*args: str) -> set[str]:
        return {r["id"] for r in json.loads(invoke("ls", "--json", "--db", db, *args).stdout)}

    runs = store["runs"]
    in_exp = {r["id"] for r in runs if r["experiment_id"] == "rendering"}
    assert len(in_exp) == 2 and ids("--experiment", "rendering") == in_exp
    assert ids("--model", "RATHER-LONG") == {r["id"] for r in runs if r["experiment_id"] is None}
    assert ids("--model", "scripted/x") == in_exp
    assert ids("--status", "finished") == {r["id"] for r in runs}
    assert ids("--status", "error") == set()
    looped = ids("--loop")
    assert in_exp <= looped  # "the same words every time": stopped on a loop
    assert ids("--no-loop") == {r["id"] for r in runs} - looped
    assert ids("--experiment", "rendering", "--no-loop") == set()
    out = invoke("ls", "--db", db, "--status", "interrupted").stdout
    assert out.startswith("no runs in ") and "match" in out
    bad = invoke("ls", "--db", db, "--experiment", "nope", code=2)
    assert bad.stderr.startswith("duologue: error: no experiment 'nope'") and bad.stderr.count("\n") == 1


def test_a_bad_width_is_one_line(store):
    bad = invoke("ls", "--db", store["db"], "--width", "10", code=2)
    assert "--width" in bad.stderr and "Traceback" not in bad.stderr


def test_plot_folder_paths_are_long_enough_to_wrap(store):
    """The piped checks above would pass on a wrapping console only if the paths were short."""
    # Plots of its own, so that the check holds (and has paths to check) when this test runs alone.
    invoke("analyze", store["parent"], "--db", store["db"], "--plots", str(store["plots"] / "wrap"))
    paths = list(Path(store["plots"]).glob("*/*.png"))
    assert paths and all(len(f"plot: {p}") > 80 for p in paths)


def test_the_run_summary_keeps_the_transcript_path_on_one_line_when_piped(store):
    path = Path(store["db"]).parent / f"{store['parent']}.md"
    assert len(f"transcript: {path}") > 80 and f"transcript: {path}" in store["ran"].splitlines()
