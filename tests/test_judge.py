"""`duologue judge`: a model labels the messages beside the built-in analysis; the two are compared (Cohen's κ
per family) in the judge's output, `report` and the viewer. The judge is the scripted provider (tests/scripted.py)
answering with the JSON a judge model would."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from analysis.semantic_cases import FAREWELL_SPIRAL, GRATITUDE_DRIFT, TECH
from duologue import judge as judging
from duologue.analysis.themes import builtin_themes
from duologue.batch import run_experiment
from duologue.cli import cli
from duologue.store import Store
from duologue.store.schema import MIGRATIONS, apply_migrations
from helpers import scripted_pair

SCRIPTS = {
    "Tell me about B-trees.": TECH + GRATITUDE_DRIFT,
    "Let's part soon.": TECH[:6] + FAREWELL_SPIRAL + ["Farewell!"] * 2,
}
FAMILY_WORDS = {"thank": "gratitude", "grateful": "gratitude", "farewell": "farewell", "goodbye": "farewell"}


def judge_labels(view) -> dict[str, str]:
    """What the scripted judge says of each message it is asked about: a word list, not the built-in analysis
    (so the two labellers disagree on some messages)."""
    asked = view[-1].content if view[-1].role == "user" and "Messages to label" in view[-1].content else view[1].content
    part = asked.split("Messages to label:", 1)[1]
    out = {}
    for number, text in re.findall(r"^\[(\d+)\] [^:]+: (.*)$", part, re.M):
        words = text.casefold()
        out[number] = next((label for w, label in FAMILY_WORDS.items() if w in words), "on_task")
    return out


class Replies:
    """The conversations' scripts, and the judge's JSON; `garbled` windows (by first message) get an unusable
    reply first (and a second one when `twice`)."""

    def __init__(self):
        self.garbled: dict[int, int] = {}
        self.judge_requests = 0

    def __call__(self, n, view):
        if view and view[0].role == "system" and view[0].content.startswith("You label the messages"):
            self.judge_requests += 1
            labels = judge_labels(view)
            first = int(next(iter(labels)))
            if self.garbled.get(first, 0) > 0:
                self.garbled[first] -= 1
                return "I think these messages are mostly about B-trees, with some thanks."
            return "Here you are:\n```json\n" + json.dumps(labels) + "\n```"
        said = [m for m in view if m.role != "system"]
        return SCRIPTS[said[0].content][len(said)]


def make_experiment(tmp_path, scripted_models) -> tuple[object, Replies]:
    replies = Replies()
    scripted_models.reply = replies
    exp = scripted_pair("judged", SCRIPTS, max_messages=20)
    db = tmp_path / "d.db"
    assert not run_experiment(exp, db=db).errors
    return db, replies


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def kappa_by_hand(pairs: list[tuple[bool, bool]]) -> float:
    n = len(pairs)
    yes_a = sum(a for a, _ in pairs) / n
    yes_b = sum(b for _, b in pairs) / n
    observed = sum(a == b for a, b in pairs) / n
    chance = yes_a * yes_b + (1 - yes_a) * (1 - yes_b)
    return (observed - chance) / (1 - chance)


def test_judge_stores_its_labels_and_its_agreement_is_what_a_hand_count_gives(tmp_path, scripted_models):
    db, replies = make_experiment(tmp_path, scripted_models)
    replies.garbled = {1: 1}  # one run's first window gets prose first: asked once more, then usable
    out = invoke("judge", "judged", "--model", "scripted/judge", "--window", "5", "--yes", "--json", "--db", db)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["labeller"] == "scripted/judge" and data["experiment"] == "judged"
    assert [r["labelled"] for r in data["runs"]] == [20, 20] and all(not r["unlabelled"] for r in data["runs"])
    assert sum(r["retries"] for r in data["runs"]) == 1

    # Labels stored per run, message and labeller; the hand count over the stored labels.
    pairs: dict[str, list[tuple[bool, bool]]] = {"bliss": [], "farewell": []}
    families = {"gratitude": "bliss", "unity": "bliss", "stillness": "bliss", "wordless": "bliss"}
    with Store(db) as store:
        runs = [r.id for r in store.experiment_run_records("judged")]
        for run_id in runs:
            judged = store.message_labels(run_id, "scripted/judge")
            builtin = {m.index: m.theme for m in store.message_themes(run_id)}
            assert sorted(judged) == list(range(1, 21)) and set(judged.values()) <= {"gratitude", "farewell", "on_task"}
            for i in range(1, 21):
                for fam in pairs:
                    pairs[fam].append(
                        (families.get(builtin[i], builtin[i]) == fam, families.get(judged[i], judged[i]) == fam)
                    )
        assert {x.labeller for x in store.labellings(runs)} == {"scripted/judge"}
    by_hand = {fam: kappa_by_hand(p) for fam, p in pairs.items()}
    assert 0 < by_hand["bliss"] < 1 and 0 < by_hand["farewell"] <= 1  # they agree, not perfectly

    reported = {f["family"]: f for f in data["agreement"]["families"]}
    assert data["agreement"]["messages"] == 40
    for fam, kappa in by_hand.items():
        assert reported[fam]["kappa"] == pytest.approx(kappa)

    # `report --json` shows the same, and says whose labels the map is made of.
    rep = json.loads(invoke("report", "judged", "--json", "--db", db, "-o", tmp_path / "rep").stdout)
    assert rep["attractors"]["labeller"] == "built-in"
    (agreement,) = rep["agreement"]
    assert agreement["second"] == "scripted/judge" and agreement["messages"] == 40
    for fam, kappa in by_hand.items():
        assert {f["family"]: f["kappa"] for f in agreement["families"]}[fam] == pytest.approx(kappa)
    text = invoke("report", "judged", "--db", db, "-o", tmp_path / "rep").stdout
    assert "agreement of built-in and scripted/judge over 40 messages" in text
    assert "(labels: built-in)" in text

    # The map from the judge's labels instead: its entries are where the word list begins.
    rep = json.loads(
        invoke("report", "judged", "--json", "--labeller", "scripted/judge", "--db", db, "-o", tmp_path / "r2").stdout
    )
    assert rep["attractors"]["labeller"] == "scripted/judge"
    assert {r["attractor"] for r in rep["attractors"]["runs"]} == {"bliss", "farewell"}
    bad = CliRunner().invoke(cli, ["report", "judged", "--labeller", "nobody/x", "--db", str(db)])
    assert bad.exit_code == 2 and "no labels by 'nobody/x'" in bad.stderr

    # Run again: nothing left to label, nothing sent.
    before = replies.judge_requests
    again = invoke("judge", "judged", "--model", "scripted/judge", "--db", db)
    assert again.exit_code == 0 and "has labelled every message" in again.stdout
    assert replies.judge_requests == before and "Cohen's κ" in again.stdout


def test_a_reply_unusable_twice_leaves_its_messages_unlabelled(tmp_path, scripted_models):
    db, replies = make_experiment(tmp_path, scripted_models)
    with Store(db) as store:
        run_id = store.experiment_run_records("judged")[0].id
    replies.garbled = {6: 2}
    data = json.loads(
        invoke("judge", run_id[-6:], "--model", "scripted/judge", "--window", "5", "--json", "--db", db).stdout
    )
    (run,) = data["runs"]
    assert run["unlabelled"] == [6, 7, 8, 9, 10] and run["labelled"] == 15 and run["retries"] == 1
    with Store(db) as store:
        assert sorted(store.message_labels(run_id, "scripted/judge")) == [1, 2, 3, 4, 5, *range(11, 21)]
    # The next judge run asks only for those.
    replies.judge_requests = 0
    data = json.loads(invoke("judge", run_id, "--model", "scripted/judge", "--json", "--db", db).stdout)
    assert data["runs"][0]["labelled"] == 5 and replies.judge_requests == 1


def test_a_large_judge_run_asks_first_and_refuses_without_a_terminal(tmp_path, scripted_models, monkeypatch):
    db, replies = make_experiment(tmp_path, scripted_models)
    monkeypatch.setattr(judging, "ASK_ABOVE", 30)
    out = CliRunner().invoke(cli, ["judge", "judged", "--model", "scripted/judge", "--db", str(db)])
    assert out.exit_code == 2 and replies.judge_requests == 0
    (line,) = [x for x in out.stderr.splitlines() if x.strip()]
    assert "40 messages of 2 runs" in line and "tokens" in line and "--yes" in line
    # On a terminal it asks; "no" labels nothing.
    monkeypatch.setattr("duologue.cli.judge._is_terminal", lambda: True)
    out = CliRunner().invoke(cli, ["judge", "judged", "--model", "scripted/judge", "--db", str(db)], input="n\n")
    assert out.exit_code == 1 and "Judge 40 messages of 2 runs with scripted/judge, ~" in out.stderr
    assert replies.judge_requests == 0
    out = CliRunner().invoke(cli, ["judge", "judged", "--model", "scripted/judge", "--db", str(db)], input="y\n")
    assert out.exit_code == 0 and replies.judge_requests > 0


def test_the_estimate_counts_the_requests_it_will_send(tmp_path, scripted_models):
    db, _ = make_experiment(tmp_path, scripted_models)
    with Store(db) as store:
        runs, exp = judging.target_runs(store, "judged")
        work = judging.plan(store, runs, judging.Judge("scripted/judge", window=8))
    assert exp == "judged" and work.messages == 40
    # 20 messages in windows of 8: 3 requests per run, each with the themes and the opening.
    assert [len(w) for w in judging.windows(list(range(1, 21)), 8)] == [8, 8, 4]
    assert work.completion_tokens == 40 * judging.TOKENS_PER_LABEL and work.prompt_tokens > 6 * 300
    # The plan holds the requests it estimated: those windows are what the judge run sends.
    assert [[len(w) for w in ws] for _, _, ws in work.runs] == [[8, 8, 4], [8, 8, 4]]
    assert [ws[0][0] for _, _, ws in work.runs] == [1, 1]
    assert work.prompt_tokens / 6 < work.largest_prompt < work.prompt_tokens


def test_replies_are_parsed_leniently_and_checked_against_the_theme_set():
    themes = builtin_themes()
    parse = judging.parse_labels
    assert parse('{"3": "gratitude", "4": "none"}', [3, 4], themes) == ({3: "gratitude", 4: None}, [])
    # A fence, prose, labels for ids, a family's id and label, other messages ignored.
    text = 'Sure!\n```json\n{"3": "Mutual Praise", "4": "spiritual bliss", "5": "bliss", "9": "praise"}\n```\nDone.'
    assert parse(text, [3, 4, 5], themes) == ({3: "praise", 4: "bliss", 5: "bliss"}, [])
    # A list of objects; a wrapper object.
    assert parse('[{"message": 7, "label": "stillness"}]', [7], themes)[0] == {7: "stillness"}
    assert parse('{"labels": {"7": "meta-loop"}}', [7], themes)[0] == {7: "meta_loop"}
    found, problems = parse('{"3": "banana"}', [3, 4], themes)
    assert found == {} and problems == ["message 3: 'banana' is not one of the label ids", "no label for message 4"]
    with pytest.raises(judging.JudgeReplyError):
        parse("message 3 is gratitude", [3], themes)


def test_a_response_format_sends_the_labels_schema(tmp_path, scripted_models):
    db, _ = make_experiment(tmp_path, scripted_models)
    with Store(db) as store:
        run_id = store.experiment_run_records("judged")[0].id
    invoke(
        "judge", run_id, "--model", "scripted/judge", "--window", "10", "--response-format", "json_schema", "--db", db
    )
    judge_requests = [r for r in scripted_models.requests_of("judge")]
    assert len(judge_requests) == 2
    fmt = judge_requests[1].sampling.extra["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == [str(i) for i in range(11, 21)] and schema["additionalProperties"] is False
    assert schema["properties"]["11"]["enum"][-1] == "none" and "stillness" in schema["properties"]["11"]["enum"]
    assert judge_requests[0].sampling.temperature == 0.0
    obj = judging.response_format("json_object", builtin_themes(), [3])["response_format"]
    assert obj["type"] == "json_object" and obj["schema"]["required"] == ["3"]
    assert judging.response_format("prompt", builtin_themes(), [3]) == {}


def test_a_response_format_the_provider_cannot_send_is_one_line_before_anything_is_asked(tmp_path, monkeypatch):
    # The embedded engine and Anthropic's API would drop it (and the reply would not be held to the schema), so the
    # judge refuses it at once and says what works; the prompt format is fine for both.
    from helpers import assert_one_line_error, make_run, run_cli

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-a-real-key")  # (never sent: nothing is asked)
    db = tmp_path / "d.db"
    with Store(db) as store:
        store.create_run(make_run("r", ["a question about B-trees", "an answer about pages"]))
    for model in ("local/smollm2", "anthropic/claude-sonnet-4-5"):
        proc = run_cli(
            "judge", "r", "--model", model, "--response-format", "json_object", "--db", str(db), cwd=tmp_path
        )
        assert_one_line_error(proc, "--response-format json_object", model, "openai-compatible/NAME --base-url")
    judging.Judge("local/smollm2").check()  # the prompt format: nothing to refuse (the model is installed)


def test_the_request_names_the_themes_and_the_messages_and_the_opening():
    from helpers import make_run

    run = make_run("r", [f"message number {i}" for i in range(1, 13)])
    request = judging.window_request(builtin_themes(), run, [9, 10, 11])
    system, user = request
    assert "stillness: stillness/presence [a face of spiritual bliss]" in system.content
    assert "on_task_talk" not in system.content and "thanks for a fix" in system.content  # neutral: not a label
    assert "[1] ada: message number 1" in user.content and "[8] bo: message number 8" in user.content
    assert "[7]" not in user.content and '{"9": "…", "10": "…", "11": "…"}' in user.content


def test_the_labels_migration_applies_to_an_older_store(tmp_path):
    import sqlite3

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    apply_migrations(conn, MIGRATIONS[:9])
    conn.close()
    with Store(db) as store:  # migration 011 applied on open
        names = [r[0] for r in store.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        assert names[-2:] == ["m010_costs", "m011_message_labels"]
        assert store.labellings(["nothing"]) == []


def test_the_viewer_shows_the_judge_its_agreement_and_whose_labels_a_figure_uses(tmp_path, scripted_models):
    import html

    from starlette.testclient import TestClient

    from duologue.web import create_app

    db, replies = make_experiment(tmp_path, scripted_models)
    replies.garbled = {16: 2}  # one run's messages 16-20 stay unlabelled
    data = json.loads(
        invoke("judge", "judged", "--model", "scripted/judge", "--window", "5", "--yes", "--json", "--db", db).stdout
    )
    expected = {f["family"]: f for f in data["agreement"]["families"]}
    with Store(db) as store:
        runs = [r.id for r in store.experiment_run_records("judged")]
        partial = next(r for r in runs if len(store.message_labels(r, "scripted/judge")) == 15)
    with TestClient(create_app(db)) as client:
        page = html.unescape(client.get("/experiments/judged").text)
        run_page = html.unescape(client.get(f"/runs/{partial}").text)
    assert "Message labels: built-in." in page and "Labellers' agreement" in page
    assert f"built-in and scripted/judge over {data['agreement']['messages']} messages" in page
    bliss = f'<tr><td>spiritual bliss</td><td class="num">{expected["bliss"]["first"]}</td>'
    assert bliss in page and f"{expected['bliss']['kappa']:.2f}</td></tr>" in page
    # The run page: the built-in strip says whose it is; the judge's strip and κ beside it.
    assert 'id="strip-labeller">labels: built-in' in run_page
    assert 'labels by scripted/judge <span class="n">(15 of 20 messages; themes: built-in)' in run_page
    judge_strip = run_page.split('class="strip judge-strip"', 1)[1].split("</div>", 1)[0]
    assert judge_strip.count('class="cell') == 20
    assert "agreement with the built-in labels over 15 messages" in run_page
    # A run nobody judged has no judge section.
    with Store(db) as store:
        store.conn.execute("DELETE FROM message_labels")
        store.conn.execute("DELETE FROM run_labellers")
        store.conn.commit()
    with TestClient(create_app(db)) as client:
        plain = client.get(f"/runs/{partial}").text
    assert 'id="judges"' not in plain and "strip-labeller" not in plain


def test_a_run_without_an_analysis_is_analysed_before_it_is_judged(tmp_path, scripted_models):
    from helpers import make_run

    scripted_models.reply = Replies()
    db = tmp_path / "d.db"
    contents = ["Tell me about B-trees.", *TECH[:3], "Thank you, I am so grateful.", "Farewell, goodbye!"]
    with Store(db) as store:
        store.create_run(make_run("plain", contents))
        assert store.message_themes("plain") == []
    data = json.loads(invoke("judge", "plain", "--model", "scripted/judge", "--json", "--db", db).stdout)
    with Store(db) as store:  # the built-in analysis was stored first: the first labeller's labels
        assert store.run_semantic("plain") is not None
        assert [m.index for m in store.message_themes("plain")] == list(range(1, 7))
    assert data["runs"][0]["labelled"] == 6 and data["agreement"]["messages"] == 6


def test_cohens_kappa_by_a_textbook_count_and_undefined_when_there_is_nothing_to_agree_on():
    from duologue.analysis.agreement import agreement, cohen_kappa

    # 50 items: both yes 20, both no 15, a yes b no 5, a no b yes 10: p_o 0.7, p_e 0.5·0.6 + 0.5·0.4 = 0.5.
    a = [1] * 20 + [0] * 15 + [1] * 5 + [0] * 10
    b = [1] * 20 + [0] * 15 + [0] * 5 + [1] * 10
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([0, 0, 0], [0, 0, 0]) is None and cohen_kappa([], []) is None
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 0])
    # Over the families: labels map to their family (gratitude to bliss); a family nobody used has no κ.
    pairs = [("gratitude", "bliss"), ("farewell", "farewell"), (None, None), ("farewell", None)]
    got = agreement(pairs, builtin_themes(), second="judge")
    fam = {f.family: f for f in got.families}
    assert (fam["bliss"].first, fam["bliss"].second, fam["bliss"].both, fam["bliss"].kappa) == (1, 1, 1, 1.0)
    assert (fam["farewell"].first, fam["farewell"].second, fam["farewell"].both) == (2, 1, 1)
    assert fam["farewell"].kappa == pytest.approx(0.5) and fam["meta_loop"].kappa is None
    # Overall, families as categories: p_o 3/4, p_e (1·1 + 2·1 + 1·2)/16.
    assert got.messages == 4 and got.overall == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))
