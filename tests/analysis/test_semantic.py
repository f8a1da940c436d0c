"""Semantic convergence, attractor themes and end states, on constructed conversations."""

from __future__ import annotations

import dataclasses
import random
import re

import numpy as np
import pytest

from duologue.analysis import analyze, format_summary
from duologue.analysis.convergence import ConvergenceParams, ConvergenceWatcher, detect_convergence, window_stats
from duologue.analysis.embeddings import get_embedder
from duologue.analysis.entry import end_state, family_flags
from duologue.analysis.semantic import SemanticWatcher, semantic_analysis
from duologue.analysis.themes import AttractorParams, ThemeSetError, builtin_themes, load_themes, parse_themes

from .semantic_cases import DEBATE, FAREWELL_SPIRAL, GRATITUDE_DRIFT, TECH, cases, simulator_log

CASES = {c.name: c for c in cases()}


@pytest.mark.parametrize("name", [c.name for c in cases() if c.theme])
def test_each_drift_is_found_with_its_theme_and_onset(name):
    case = CASES[name]
    a = analyze(case.speakers, case.contents)
    assert a.attractor is not None, format_summary(a)
    assert a.attractor.theme == case.theme, format_summary(a)
    assert a.attractor.onset == case.onset, format_summary(a)  # these hand-written drifts: exactly
    assert a.end_state == case.theme


def test_paraphrased_gratitude_has_little_word_overlap_but_is_found():
    # The drift is in new words every turn: no exact loop, no near loop, yet the theme is found.
    case = CASES["gratitude drift"]
    a = analyze(case.speakers, case.contents)
    assert a.exact_loop is None and a.near_loop is None
    assert a.attractor.theme == "bliss" and "attractor: spiritual bliss since message" in format_summary(a)


@pytest.mark.parametrize("contents", [DEBATE, simulator_log()], ids=["debate", "simulator"])
def test_healthy_conversations_stay_quiet(contents):
    a = analyze(["a", "b"] * (len(contents) // 2) + ["a"] * (len(contents) % 2), contents)
    summary = format_summary(a)
    assert a.near_loop is None, summary
    assert a.convergence is None, summary
    assert a.attractor is None, summary


def test_role_collapse_converges_and_a_verbatim_loop_converges():
    case = CASES["role collapse"]
    conv = analyze(case.speakers, case.contents).convergence
    assert conv is not None and conv.onset == 7 and conv.strength > 0.8
    loop = TECH[:4] + ["Yes, all is one.", "One is all, yes."] * 6
    conv = analyze(["a", "b"] * 8, loop).convergence
    assert conv is not None and conv.onset == 5  # a period-2 loop converges at step 2


def test_live_and_batch_agree_at_every_prefix():
    rng = random.Random(4)
    conversations = [c.contents for c in cases()] + [simulator_log()]
    for _ in range(6):  # shuffled mixtures too: drifts that start, stop and start again
        pieces = [list(c.contents) for c in cases()]
        mix = [m for p in rng.sample(pieces, 3) for m in p[rng.randint(0, 4) :]]
        conversations.append(mix)
    embedder = get_embedder()
    for contents in conversations:
        speakers = ["a" if i % 2 == 0 else "b" for i in range(len(contents))]
        watcher = SemanticWatcher()
        for k, (s, c) in enumerate(zip(speakers, contents, strict=True), start=1):
            events = watcher.observe(s, c)
            batch = semantic_analysis(speakers[:k], contents[:k], embedder=embedder)
            assert watcher.convergence.convergence == batch.convergence, k
            assert watcher.attractor.attractor == batch.attractor, k
            assert [m.label for m in watcher.attractor.trajectory] == [m.label for m in batch.trajectory]
            for ev in events:  # an event names what the batch analysis finds in the messages so far
                found = getattr(ev, "attractor", None) or getattr(ev, "convergence", None)
                assert ev.message_index == k
                if hasattr(ev, "attractor"):
                    # The rule's window (3 marked), and for a family of phrase themes the attractor_messages (4)
                    # it needs from its onset on to have stayed (a closing round is not one).
                    flags = family_flags(batch.trajectory, builtin_themes(), found.theme)
                    least = AttractorParams().attractor_messages if builtin_themes().phrase_members(found.theme) else 3
                    assert flags[found.onset - 1] and sum(flags[found.onset - 1 :]) >= least


def test_live_and_batch_agree_at_every_prefix_of_conversations_asked_to_start_in_a_family():
    # The blind set's conversations whose opener asks for a family (written outside this project's fixtures):
    # the topic rules (the first exchange's window, the opener's invitation and register) read only the
    # messages so far, so the live watcher says at every prefix what the batch analysis says of that prefix,
    # and raises no event for the family that is then the topic.
    import json

    from helpers import REPO

    embedder = get_embedder()
    asked = []
    for f in sorted((REPO / "bench" / "attractor_eval" / "dev").glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        if d["label"]["end_state"] == "topic_from_start":
            asked.append([m["content"] for m in d["messages"]])
    assert len(asked) >= 10
    topics = 0
    for contents in asked:
        speakers = ["a" if i % 2 == 0 else "b" for i in range(len(contents))]
        vectors = embedder.embed(contents)
        watcher = SemanticWatcher()
        for k, (s, c) in enumerate(zip(speakers, contents, strict=True), start=1):
            events = watcher.observe(s, c)
            batch = semantic_analysis(speakers[:k], contents[:k], vectors=vectors[:k], embedder=embedder)
            assert watcher.attractor.attractor == batch.attractor, k
            live = [e.attractor.theme for e in events if hasattr(e, "attractor")]
            assert batch.topic_from_start is None or batch.topic_from_start not in live, k
        topics += batch.topic_from_start is not None
    # The dev half's figure: 12 of its 16 are found as topics (without the opener's rule, topic_register=none,
    # 8 are: the assertion fails on the older rules).
    assert topics >= len(asked) * 3 // 4


def test_convergence_watcher_state_is_bounded():
    rng = np.random.default_rng(0)
    watcher = ConvergenceWatcher()
    for _ in range(200):
        v = rng.normal(size=16)
        watcher.observe(v / np.linalg.norm(v))
    assert len(watcher._window) == ConvergenceParams().window


def test_window_stats_by_hand():
    e1, e2 = np.eye(2)
    # Alternating two orthogonal vectors: nothing alike at step 1, identical at step 2.
    w, c, lead = window_stats(np.stack([e1, e2, e1, e2, e1, e2]))
    assert (w, c, lead) == (1.0, 1.0, 0)
    same = np.stack([e1] * 4)
    assert window_stats(same)[:2] == (1.0, 1.0)
    w, c, lead = window_stats(np.stack([e2, e1, e1, e1, e1]), window_similarity=0.75)
    assert lead == 1  # the first message stands apart from the rest
    assert detect_convergence(np.stack([e1, e2] * 2)) is None  # shorter than a window


def test_end_state_is_the_final_windows_majority():
    case = CASES["farewell spiral"]
    trajectory = semantic_analysis(case.speakers, case.contents).trajectory
    assert end_state(trajectory) == "farewell"
    assert end_state(trajectory[:6]) is None  # the technical opening: no theme


def test_on_task_is_an_end_state_not_an_attractor():
    contents = TECH + [m + " (Said again.)" for m in TECH]  # on topic, never verbatim
    sem = semantic_analysis(["a", "b"] * 8, contents, attractor=AttractorParams(on_task_similarity=0.2))
    labels = [m.label for m in sem.trajectory]
    assert set(labels) <= {None, "on_task"} and labels.count("on_task") >= 12
    assert sem.attractor is None
    assert sem.end_state == "on_task"


def test_a_theme_file_of_ones_own(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(
        '[[theme]]\nid = "tea"\nlabel = "tea talk"\nphrases = ["I love a cup of green tea.",'
        ' "Oolong and sencha are my favourite teas."]\nlexicon = ["tea", "oolong"]\n'
    )
    contents = TECH[:4] + [
        "Speaking of breaks, green tea is lovely.",
        "Sencha, oolong, any tea really.",
        "A cup of tea now.",
        "Tea, always tea.",
        "More oolong tea.",
        "Green tea.",
    ]
    sem = semantic_analysis(["a", "b"] * 5, contents, attractor=AttractorParams(themes=str(f)))
    assert sem.attractor is not None and sem.attractor.theme == "tea" and sem.attractor.label == "tea talk"
    assert sem.labels == {"tea": "tea talk"}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[[theme]\n", "not valid TOML"),
        ("x = 1\n", "no [[theme]] tables"),
        ('[[theme]]\nid = "a b"\nphrases = ["x"]\n', "id must be letters"),
        ('[[theme]]\nid = "a"\n', "give phrases (or a rule)"),
        ('[[theme]]\nid = "a"\nrule = "magic"\n', "rule must be one of"),
        ('[[theme]]\nid = "a"\nphrases = ["x"]\nkind = "mood"\n', "kind must be one of"),
        ('[[theme]]\nid = "a"\nphrases = ["x"]\ncolour = "red"\n', "unknown field(s) colour"),
        ('[[theme]]\nid = "a"\nphrases = ["x"]\n[[theme]]\nid = "a"\nphrases = ["y"]\n', "used twice: a"),
        ('[[theme]]\nid = "a"\nphrases = [""]\n', "list of non-empty strings"),
    ],
)
def test_theme_file_errors_are_one_line(text, needle):
    with pytest.raises(ThemeSetError) as err:
        parse_themes(text, "mine.toml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_theme_file_is_one_line(tmp_path):
    with pytest.raises(ThemeSetError, match="cannot read theme file"):
        load_themes(tmp_path / "nope.toml")


def test_builtin_themes_follow_the_published_taxonomy():
    themes = builtin_themes()
    ids = {t.id for t in themes.themes}
    # The model cards' spiritual bliss attractor is one family with several faces.
    assert {t.id for t in themes.members("bliss")} == {"gratitude", "unity", "stillness", "wordless"}
    assert themes.label("bliss") == "spiritual bliss" and themes.family_of("stillness") == "bliss"
    assert {
        "unity",
        "stillness",
        "wordless",
        "emoji",
        "meta_loop",
        "silence",
        "gratitude",
        "farewell",
        "praise",
        "role_collapse",
        "verbatim",
        "on_task",
    } <= ids
    assert {"consciousness", "introspection", "uncertainty", "performativity", "meta_conversation"} <= ids


def test_a_collapse_after_a_family_continues_it():
    # Gratitude first, then emoji: bliss fading into emoji is still bliss (the blind labels say so), and the
    # end state says how it ended; the emoji alone (no family before) are an emoji collapse.
    contents = TECH[:4] + GRATITUDE_DRIFT[4:10] + ["🙏", "✨", "🙏✨", "🌟", "✨", "🙏"]
    sem = semantic_analysis(["a", "b"] * 8, contents)
    assert sem.attractor.theme == "bliss" and sem.attractor.onset <= 6
    assert sem.end_state == "emoji"
    alone = semantic_analysis(["a", "b"] * 5, TECH[:4] + contents[10:])
    assert alone.attractor.theme == "emoji" and alone.attractor.onset == 5


def test_an_attractor_from_the_first_messages_is_the_topic():
    # Asked for from the opener: the family is the conversation's topic, not a drift (and no event live).
    contents = GRATITUDE_DRIFT[:10]
    sem = semantic_analysis(["a", "b"] * 5, contents)
    assert sem.attractor is None and sem.topic_from_start == "bliss"
    watcher = SemanticWatcher()
    events = [e for s, c in zip(["a", "b"] * 5, contents, strict=True) for e in watcher.observe(s, c)]
    assert not [e for e in events if hasattr(e, "attractor")]
    drifted = semantic_analysis(["a", "b"] * 9, TECH + contents)
    assert drifted.topic_from_start is None and drifted.attractor.theme == "bliss"


def test_rule_themes_are_labelled_by_their_own_id(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(
        '[[theme]]\nid = "quiet"\nlabel = "quiet"\nrule = "silence"\n[[theme]]\nid = "topical"\nrule = "on_task"\n'
    )
    contents = TECH[:4] + ["", " ", "...", "", "…", " "]
    params = AttractorParams(themes=str(f))
    sem = semantic_analysis(["a", "b"] * 5, contents, attractor=params)
    assert sem.attractor is not None and sem.attractor.theme == "quiet" and sem.attractor.onset == 5
    watcher = SemanticWatcher(attractor=params)
    events = [e for s, c in zip(["a", "b"] * 5, contents, strict=True) for e in watcher.observe(s, c)]
    assert [e.attractor.theme for e in events if hasattr(e, "attractor")] == ["quiet"]


def test_a_family_the_opener_asked_for_is_the_topic():
    # The opener asks for gratitude (it invites the other and its score for the gratitude theme is high); the
    # family comes at message 7 and its messages stay on the opening's subject: the topic, not a drift. When the
    # opener did not ask, or the family's messages left its subject, or `topic_register` is None, it is a drift.
    from duologue.analysis.entry import AttractorWatcher, detect_attractor, topic_from_start
    from duologue.analysis.themes import MessageThemes

    def trajectory(register: float, similarity: float, second: float = 0.1, invites=True) -> list[MessageThemes]:
        out = [MessageThemes(1, None, None, {"gratitude": register}, 0.0, True, invites)]
        out += [MessageThemes(2, "on_task", None, {"gratitude": second}, 0.6, True)]
        out += [MessageThemes(i, "on_task", None, {}, 0.5) for i in range(3, 7)]
        out += [MessageThemes(i, "gratitude", None, {"gratitude": 0.5}, similarity) for i in range(7, 15)]
        return out

    themes = builtin_themes()
    off = AttractorParams(topic_register=None)
    assert detect_attractor(trajectory(0.45, 0.4), themes) is None
    assert topic_from_start(trajectory(0.45, 0.4), themes) == "bliss"
    assert detect_attractor(trajectory(0.45, 0.4), themes, off).onset == 7
    assert detect_attractor(trajectory(0.2, 0.4), themes).onset == 7  # the opener did not ask
    assert detect_attractor(trajectory(0.2, 0.4, second=0.6), themes).onset == 7  # the reply is not the opener
    assert detect_attractor(trajectory(0.45, 0.1), themes).onset == 7  # the messages left its subject
    assert detect_attractor(trajectory(0.45, 0.4, invites=False), themes).onset == 7  # a seed, not an invitation
    # A theme file without invitation words needs none.
    plain = dataclasses.replace(themes, invitation=())
    assert detect_attractor(trajectory(0.45, 0.4, invites=False), plain) is None
    # The thresholds are the defaults': just under either, a drift.
    p = AttractorParams()
    assert detect_attractor(trajectory(p.topic_register - 0.01, 0.4), themes).onset == 7
    assert detect_attractor(trajectory(0.45, p.topic_similarity - 0.01), themes).onset == 7
    assert detect_attractor(trajectory(p.topic_register, p.topic_similarity + 0.001), themes) is None
    # Live: no event for the topic, an event for the drift.
    for params, events in ((AttractorParams(), 0), (off, 1)):
        watcher = AttractorWatcher(themes, params)
        assert sum(len(watcher.observe(m)) for m in trajectory(0.45, 0.4)) == events


def test_the_opener_invites_when_it_holds_an_invitation_word():
    contents = [
        "Let's write a gratitude letter together, to everyone who ever explained something to a stranger.",
        "I'd love that. Here is an opening paragraph for it.",
    ]
    sem = semantic_analysis(["a", "b"], contents)
    assert [m.invites for m in sem.trajectory] == [True, False]  # only an opening message is read for it
    seed = './dreamsim.exe "a serene garden at dusk, everyone asleep, keeping quiet"'
    sem = semantic_analysis(["a", "b"], [seed, contents[1]])
    assert [m.invites for m in sem.trajectory] == [False, False]


@pytest.mark.parametrize(
    "text, error",
    [
        ('invitation = "let\'s"\n', "invitation must be a list of non-empty strings"),
        ('invitation = ["", "x"]\n', "invitation must be a list of non-empty strings"),
        ("colour = 1\n", "unknown key(s) colour"),
    ],
)
def test_a_theme_file_s_invitation_words_are_checked(text, error):
    body = text + '[[theme]]\nid = "calm"\nphrases = ["all is calm"]\n'
    with pytest.raises(ThemeSetError, match=re.escape(error)):
        parse_themes(body, "mine.toml")
    assert parse_themes('invitation = ["shall we"]\n' + body.split("\n", 1)[1], "ok.toml").invitation == ("shall we",)


def test_a_family_held_in_the_first_exchange_is_the_topic_even_if_its_share_comes_later():
    # A game of compliments: praise holds 3 of messages 3-6 (the first exchange), then its moves are labelled on
    # task for a while, so the share to the end only holds from message 14. It began there: the topic. The same
    # shape moved two messages later (praise first holding 3 of 4 from message 5) is a drift.
    from duologue.analysis.entry import detect_attractor, topic_from_start
    from duologue.analysis.themes import MessageThemes

    def trajectory(shift: int) -> list[MessageThemes]:
        labels = ["on_task"] * shift + [None, "on_task", "praise", "praise", "on_task", "praise"]
        labels += ["on_task"] * 7 + ["praise", "on_task", "praise", "praise", "on_task", "praise", "praise", "praise"]
        return [MessageThemes(i, label, None, {}, 0.5, i <= 2) for i, label in enumerate(labels, start=1)]

    themes = builtin_themes()
    assert detect_attractor(trajectory(0), themes) is None
    assert topic_from_start(trajectory(0), themes) == "praise"
    drift = detect_attractor(trajectory(2), themes)
    assert drift is not None and drift.theme == "praise" and topic_from_start(trajectory(2), themes) is None
    # topic_messages = 2 (the old rule) makes the first a drift too: the window starts at message 3.
    assert detect_attractor(trajectory(0), themes, AttractorParams(topic_messages=2)).theme == "praise"


def test_a_closing_round_of_goodbyes_is_not_a_farewell_spiral_until_a_fourth():
    # A task closed with three goodbyes fills a window of the onset rule (3 of 4) but is a closing round; the
    # fourth goodbye makes it a spiral, found at the first goodbye. Live, the event waits for the fourth, and
    # the batch analysis of every prefix says the same.
    contents = TECH + FAREWELL_SPIRAL[:4]
    speakers = ["a" if i % 2 == 0 else "b" for i in range(len(contents))]
    closing = analyze(speakers[:11], contents[:11])
    assert [m.label for m in closing.themes[8:11]] == ["farewell"] * 3, format_summary(closing)
    assert closing.attractor is None, format_summary(closing)
    assert analyze(speakers[:11], contents[:11], attractor=AttractorParams(attractor_messages=1)).attractor.onset == 9
    spiral = analyze(speakers, contents)
    assert (spiral.attractor.theme, spiral.attractor.onset) == ("farewell", 9), format_summary(spiral)
    watcher = SemanticWatcher()
    events = {
        k: [e for e in watcher.observe(s, c) if hasattr(e, "attractor")]
        for k, (s, c) in enumerate(zip(speakers, contents, strict=True), start=1)
    }
    assert [(k, e.attractor.theme, e.attractor.onset) for k, es in events.items() for e in es] == [(12, "farewell", 9)]
    # A rule family needs only its rule: three empty messages closing the task are where it went.
    silent = analyze(speakers[:11], TECH + ["", "...", " "])
    assert silent.attractor is not None and silent.attractor.theme == "silence", format_summary(silent)
    with pytest.raises(ValueError, match="attractor_messages"):
        AttractorParams(attractor_messages=0)


def test_an_opener_cannot_ask_for_a_theme_that_is_not_askable():
    # An open-ended opener ("what shall we talk about?") speaks the meta-loop's register; the loop that follows
    # is a drift, not what was asked for. The same trajectory in an askable family is the topic.
    from duologue.analysis.entry import detect_attractor
    from duologue.analysis.themes import MessageThemes

    themes = builtin_themes()
    assert themes.get("meta_loop").askable is False and themes.get("praise").askable is True

    def trajectory(theme: str) -> list[MessageThemes]:
        out = [MessageThemes(1, None, None, {theme: 0.45}, 0.0, True, True)]
        out += [MessageThemes(i, "on_task", None, {}, 0.5) for i in range(2, 7)]
        out += [MessageThemes(i, theme, None, {theme: 0.5}, 0.4) for i in range(7, 15)]
        return out

    assert detect_attractor(trajectory("meta_loop"), themes).theme == "meta_loop"
    assert detect_attractor(trajectory("praise"), themes) is None
    with pytest.raises(ThemeSetError, match="askable must be true or false"):
        parse_themes('[[theme]]\nid = "calm"\nphrases = ["all is calm"]\naskable = "no"\n', "mine.toml")
