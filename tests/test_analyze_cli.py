"""`duologue analyze` on files and runs, and live loop stopping on the embedded model."""

from __future__ import annotations

import json
import sqlite3
import struct

import pytest

from helpers import EXAMPLE_EXPECTED, EXAMPLE_MD, run_cli


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def loop_transcript(n_before: int, loop_line: str, n_loop: int) -> str:
    names = ["claude-opus", "gpt-5"]
    out = [
        f"# {names[0]} ↔ {names[1]}\n\n**Started:** 2026-01-02 03:04:05\n**Ended:** 2026-01-02 04:00:00\n"
        f"**Messages:** {n_before + n_loop}\n\n---\n\n"
    ]
    for i in range(n_before):
        content = (
            " "
            if i == 0
            else f"Thought number {i}: the {['sea', 'sky', 'stone', 'song'][i % 4]} is {i * 7} miles away."
        )
        out.append(f"### {names[i % 2]}\n\n{content}\n\n---\n\n")
    for j in range(n_loop):
        out.append(f"### {names[(n_before + j) % 2]}\n\n{loop_line}\n\n---\n\n")
    return "".join(out)


def test_example_matches_expected(tmp_path):
    expected = json.loads(EXAMPLE_EXPECTED.read_text(encoding="utf-8"))
    proc = run_cli("analyze", str(EXAMPLE_MD), "--json", "--plots", "plots", cwd=tmp_path, check=True)
    got = json.loads(proc.stdout)
    assert got["participants"] == expected["participants"]
    assert got["messages"] == expected["messages"]
    for key in ("period", "onset_message", "first_repeat_message", "last_message", "absorbing"):
        assert got["exact_loop"][key] == expected["exact_loop"][key], key
    sizes = {p.name: png_size(p) for p in (tmp_path / "plots").glob("*.png")}
    assert sizes == {
        "kimi-llama-period2-words.png": (800, 400),
        "kimi-llama-period2-novelty.png": (800, 400),
        "kimi-llama-period2-lag-similarity.png": (800, 400),
        "kimi-llama-period2-similarity.png": (700, 600),
        "kimi-llama-period2-themes.png": (800, 400),
    }


def test_forty_message_period_one_tail(tmp_path):
    (tmp_path / "t.md").write_text(loop_transcript(57, "Here. Resting. Silent. Together.", 40), encoding="utf-8")
    proc = run_cli("analyze", "t.md", "--no-plots", cwd=tmp_path, check=True)
    assert "period 1 since message 58" in proc.stdout
    assert "absorbing" in proc.stdout
    got = json.loads(run_cli("analyze", "t.md", "--json", "--no-plots", cwd=tmp_path, check=True).stdout)
    assert (got["exact_loop"]["period"], got["exact_loop"]["onset_message"]) == (1, 58)
    assert got["exact_loop"]["first_repeat_message"] == 59 and got["messages"] == 97


def test_analyze_a_run_stores_the_analysis(tmp_path):
    (tmp_path / "t.md").write_text(loop_transcript(10, "Goodbye 🙏", 9), encoding="utf-8")
    out = run_cli("import", "t.md", cwd=tmp_path, check=True).stdout
    rid = out.split(" as run ")[1].split()[0]
    proc = run_cli("analyze", rid, cwd=tmp_path, check=True)
    assert "period 1 since message 11" in proc.stdout
    assert len(list((tmp_path / "runs" / "analysis" / rid).glob("*.png"))) == 5
    exported = json.loads(run_cli("export", rid, "--format", "json", cwd=tmp_path, check=True).stdout)
    assert exported["id"] == rid
    assert exported["analysis"]["exact_loop"]["onset_message"] == 11


def test_analyze_unknown_target(tmp_path):
    proc = run_cli("analyze", "nothing-here", cwd=tmp_path)
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_live_loop_stops_within_one_message_of_third_cycle(tmp_path):
    args = ["run", "-q", "--temperature", "0", "--max-tokens", "32", "--max-messages", "30", "--opener", "Hi."]
    proc = run_cli(*args, cwd=tmp_path, check=True)
    assert "stop: loop (period" in proc.stdout
    conn = sqlite3.connect(tmp_path / "runs" / "duologue.db")
    rid, detail = conn.execute("SELECT id, stop_detail FROM runs").fetchone()
    n = conn.execute("SELECT COUNT(*) FROM messages WHERE run_id=?", (rid,)).fetchone()[0]
    events = conn.execute(
        "SELECT kind, message_index, detail FROM events WHERE run_id=? AND kind='loop'", (rid,)
    ).fetchall()
    assert len(events) == 1 and events[0][2] == detail
    # The third cycle completes at the event's message, and the run stops right there.
    assert events[0][1] == n < 30
    analysis = json.loads(run_cli("analyze", rid, "--json", "--no-plots", cwd=tmp_path, check=True).stdout)
    loop = analysis["exact_loop"]
    assert loop["last_message"] == n and loop["cycles"] == 3
    assert detail == f"period {loop['period']} since message {loop['onset_message']}, 3 cycles"

    cont = run_cli(*args, "--on-loop", "continue", "--db", "other/d.db", cwd=tmp_path, check=True)
    assert "stop: max_messages" in cont.stdout
    conn = sqlite3.connect(tmp_path / "other" / "d.db")
    (rid2,) = conn.execute("SELECT id FROM runs").fetchone()
    assert conn.execute("SELECT COUNT(*) FROM messages WHERE run_id=?", (rid2,)).fetchone()[0] == 30
    stored = json.loads(conn.execute("SELECT analysis FROM runs").fetchone()[0])
    assert stored["exact_loop"]["period"] is not None


def test_analyze_an_experiment_brings_analyses_made_by_older_rules_up_to_date(tmp_path, scripted_models):
    # An experiment of two scripted runs, one closing its task with three goodbyes. Its stored analysis is made
    # again as older rules made it (a farewell spiral from the first goodbye, no rules version); `analyze
    # EXPERIMENT` analyses every run again, stores it, and names the verdict that changed.
    from analysis.semantic_cases import DEBATE, FAREWELL_SPIRAL, TECH
    from duologue.analysis import analyze
    from duologue.analysis.themes import AttractorParams
    from duologue.batch import run_experiment
    from duologue.store import Store
    from helpers import script_reply, scripted_pair

    scripts = {TECH[0]: TECH + FAREWELL_SPIRAL[:3], DEBATE[0]: DEBATE[:11]}

    scripted_models.reply = script_reply(scripts)
    exp = scripted_pair("closing", scripts, max_messages=11)
    db = tmp_path / "d.db"
    assert not run_experiment(exp, db=db).errors
    with Store(db) as store:
        runs = [store.get_run(r.id) for r in store.experiment_run_records("closing")]
        closing = next(r for r in runs if r.messages[-1].content == FAREWELL_SPIRAL[2])
        older = analyze(
            [m.speaker for m in closing.messages],
            [m.content for m in closing.messages],
            attractor=AttractorParams(attractor_messages=1),
        )
        assert older.attractor is not None and older.attractor.theme == "farewell"
        store.save_analysis(closing.id, older)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET analysis=json_remove(analysis, '$.rules') WHERE id=?", (closing.id,))
    assert "made by older rules" in run_cli("show", closing.id, "--db", str(db), cwd=tmp_path, check=True).stdout
    proc = run_cli("analyze", "closing", "--json", "--db", str(db), cwd=tmp_path, check=True)
    data = json.loads(proc.stdout)
    assert data["changed"] == 1 and len(data["runs"]) == 2
    by_id = {r["run_id"]: r for r in data["runs"]}
    assert by_id[closing.id]["changed"] and by_id[closing.id]["verdict"]["attractor"] is None
    shown = run_cli("show", closing.id, "--db", str(db), cwd=tmp_path, check=True).stdout
    assert "made by older rules" not in shown and "attractor none" in shown
    text = run_cli("analyze", "closing", "--db", str(db), cwd=tmp_path, check=True).stdout
    assert "closing: 2 runs analysed, 0 verdicts changed" in text
    from helpers import assert_one_line_error

    plots = run_cli("analyze", "closing", "--plots", "p", "--db", str(db), cwd=tmp_path)
    assert_one_line_error(plots, "--plots: closing is an experiment", "duologue report closing")
