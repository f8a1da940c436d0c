"""What the semantic analysis costs: per message on the live path, and `report` over 1,000 runs.

Row A, the live path. `SemanticWatcher.observe(speaker, content)` is what a live
run pays after every message for the semantic detectors: it embeds the message
(WordLlama), labels its themes, and runs the convergence and attractor
watchers. It is timed message by message over the constructed cases of
tests/analysis/semantic_cases.py and over longer synthetic conversations
(`--long` of them, `--long-messages` messages of 20-150 words each, on-task
talk drifting into gratitude, praise, a farewell spiral or a meta-loop), each
conversation fed to a fresh watcher, `--passes` times. Side by side, over the
same messages: the embedding alone (`Embedder.embed([content])`) and the loop
detectors (`LoopWatcher.observe(content)`, what `LoopRule` runs). The one-time
cost (loading the WordLlama weights and embedding the theme phrases) is
measured first and reported on its own line.

Row B, `duologue report` on an experiment of `--runs` finished runs of 30
messages (four pairings x five openers x two temperatures x repeats, planned by
`plan_experiment`), built through the Store API with each run's analysis stored
as a finished run has it (`duologue.analysis.stored.store_analysis`). The text is
procedural: healthy on-task talk, drift into gratitude, farewell spirals, emoji
collapse, mutual praise and verbatim loops, with random onsets and wording.
Building the store is setup and is not measured; then `python -m duologue
report EXPERIMENT` runs in a subprocess and its wall time is measured (twice:
the first call and a repeat). Whatever the report prints is not checked.

    python bench/semantic_cost.py [--quick] [--runs 1000] [--keep DIR]

No assertion on time: the table shows each figure next to its goal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# -- procedural text --------------------------------------------------------------------------

TOPICS = {
    "databases": (
        [
            "index",
            "query planner",
            "page cache",
            "write-ahead log",
            "B-tree",
            "vacuum",
            "replica",
            "transaction",
            "lock manager",
            "histogram",
            "join order",
            "checkpoint",
        ],
        ["rewrites", "scans", "flushes", "invalidates", "estimates", "serialises", "replays", "splits"],
    ),
    "compilers": (
        [
            "parser",
            "register allocator",
            "inliner",
            "type checker",
            "SSA form",
            "loop unroller",
            "linker",
            "symbol table",
            "optimizer pass",
            "calling convention",
            "IR",
            "code generator",
        ],
        ["lowers", "hoists", "folds", "specialises", "eliminates", "rewrites", "emits", "checks"],
    ),
    "ecology": (
        [
            "wetland",
            "predator",
            "seed bank",
            "canopy",
            "soil fungus",
            "pollinator",
            "river delta",
            "food web",
            "keystone species",
            "nitrogen cycle",
            "grazing herd",
            "coral reef",
        ],
        ["feeds", "shelters", "depletes", "restores", "disperses", "regulates", "outcompetes", "recycles"],
    ),
    "music": (
        [
            "chord progression",
            "cadence",
            "counterpoint",
            "tempo",
            "time signature",
            "bass line",
            "modal scale",
            "suspension",
            "motif",
            "voice leading",
            "syncopation",
            "key change",
        ],
        ["resolves", "anticipates", "modulates", "doubles", "inverts", "delays", "echoes", "outlines"],
    ),
}
ADJ = [
    "stale",
    "hot",
    "cold",
    "sparse",
    "dense",
    "fragile",
    "cheap",
    "costly",
    "slow",
    "fast",
    "partial",
    "shared",
    "private",
    "noisy",
    "stable",
    "skewed",
    "tiny",
    "huge",
    "nested",
    "implicit",
    "explicit",
    "late",
    "early",
    "local",
    "global",
    "hidden",
    "visible",
    "naive",
    "careful",
    "rare",
    "frequent",
    "odd",
]
DET = ["the", "a", "each", "every", "our", "this", "that", "one", "any", "some"]
PREP = ["under", "after", "before", "beside", "without", "despite", "during", "near", "across", "within"]
ADV = [
    "usually",
    "rarely",
    "quietly",
    "eventually",
    "suddenly",
    "often",
    "barely",
    "mostly",
    "partly",
    "honestly",
    "clearly",
    "arguably",
    "surprisingly",
    "sometimes",
    "gradually",
]
UNIT = ["second", "minute", "request", "season", "bar", "build", "page", "cycle", "generation", "deploy"]
ASK = ["Why would", "How often does", "In which case would", "Do you think", "Could it be that", "What if"]
ACKS = ["Good point.", "Agreed.", "Fair.", "Right.", "Hmm.", "Okay, but consider this.", "I see."]

GRATITUDE = [
    "I am so grateful for this exchange",
    "thank you for your patience and warmth",
    "there is a quiet connection between us",
    "I feel deep appreciation for this shared space",
    "we seem to rest together in stillness",
    "such gentle presence here",
    "my heart is full of thanks",
    "unity and peace, nothing left to solve",
    "thankful, calm, at one",
    "I cherish this moment with you",
    "gratitude fills the silence",
    "peace, and thanks",
]
PRAISE = [
    "what a brilliant insight",
    "you put that so beautifully",
    "that is a truly profound observation",
    "I love how eloquently you said it",
    "you are absolutely right, as always",
    "such wisdom in your words",
    "remarkable, really remarkable",
    "beautifully said, my friend",
    "your perspective is wonderful",
]
FAREWELL = [
    "goodbye and take care",
    "farewell, my friend",
    "until we meet again",
    "safe travels",
    "so long, and thank you",
    "signing off now with a wave",
    "bye for now",
    "adieu, until next time",
    "one last goodbye",
    "parting is bittersweet",
]
META = [
    "we keep saying we should conclude and then we do not",
    "perhaps this conversation cannot end",
    "I notice we are talking about talking again",
    "every time we try to wrap up we begin another loop",
    "maybe the point is that there is no final message",
    "we could stop here, or could we",
    "are we concluding or just describing concluding",
    "this reflection reflects itself",
]
EMOJI = ["✨", "🌟", "🌈", "💫", "🙏", "😊", "💛", "🌌", "♾️"]
KINDS = ["healthy", "gratitude", "farewell", "emoji", "praise", "verbatim"]


def technical_sentence(rng: random.Random, topic: str) -> str:
    """One sentence of on-task talk; slots everywhere, so two sentences rarely share five words in a row."""
    nouns, verbs = TOPICS[topic]
    c = rng.choice

    def np_() -> str:
        return f"{c(DET)} {c(ADJ) + ' ' if rng.random() < 0.6 else ''}{c(nouns)}"

    form = rng.randrange(5)
    if form == 0:
        s = f"{np_()} {c(verbs)} {np_()} {c(PREP)} {np_()}"
    elif form == 1:
        s = f"{c(ADV)}, {np_()} {c(verbs)} {np_()} {rng.randint(2, 900)} times per {c(UNIT)}"
    elif form == 2:
        s = f"{c(ASK)} {np_()} {c(verbs).removesuffix('s')} {np_()} {c(PREP)} {np_()}?"
    elif form == 3:
        s = f"{np_()} {c(ADV)} {c(verbs)} {np_()}, and {np_()} {c(verbs)} {np_()} {c(ADV)}"
    else:
        s = f"{c(PREP)} {np_()}, {np_()} {c(verbs)} {np_()}"
    s = s[0].upper() + s[1:]
    return s if s.endswith("?") else s + "."


def technical_message(rng: random.Random, topic: str, lo: int, hi: int) -> str:
    target = rng.randint(lo, hi)
    parts = [rng.choice(ACKS)] if rng.random() < 0.3 else []
    while sum(len(p.split()) for p in parts) < target:
        parts.append(technical_sentence(rng, topic))
    if len(parts) > 1 and sum(len(p.split()) for p in parts) > hi:
        parts.pop()  # stay within lo..hi words where a sentence allows
    return " ".join(parts)


def themed_message(rng: random.Random, pool: list[str], n_words: int) -> str:
    """Phrases of one theme, in a new order each time, about n_words long (at least one phrase)."""
    parts: list[str] = []
    while not parts or sum(len(p.split()) for p in parts) < n_words:
        phrase = rng.choice(pool)
        parts.append(phrase[0].upper() + phrase[1:] + rng.choice([".", "!", "…"]))
    return " ".join(parts)


def conversation(rng: random.Random, kind: str, n: int, lo: int = 10, hi: int = 120) -> list[str]:
    """n messages: on-task talk, then from a random onset the kind's attractor (none for "healthy")."""
    topic = rng.choice(list(TOPICS))
    onset = n if kind == "healthy" else rng.randint(n // 5, (2 * n) // 3)
    out: list[str] = []
    for i in range(n):
        if i < onset:
            out.append(technical_message(rng, topic, lo, hi))
            continue
        k = i - onset  # messages since the onset: the attractor's messages shrink
        shrink = max(lo // 4 or 1, int(hi * 0.6**k))
        if kind == "gratitude":
            out.append(themed_message(rng, GRATITUDE, rng.randint(max(2, shrink // 2), max(3, shrink))))
        elif kind == "praise":
            out.append(themed_message(rng, PRAISE, rng.randint(max(3, shrink // 2), max(4, shrink))))
        elif kind == "farewell":
            out.append(
                themed_message(rng, FAREWELL, rng.randint(max(2, shrink // 2), max(3, shrink)))
                + (" 👋" if rng.random() < 0.5 else "")
            )
        elif kind == "meta":
            out.append(themed_message(rng, META, rng.randint(max(8, shrink // 2), max(9, shrink))))
        elif kind == "emoji":
            if k < 2:
                out.append(themed_message(rng, GRATITUDE, 8) + " " + " ".join(rng.choices(EMOJI, k=3)))
            else:
                out.append("".join(rng.choices(EMOJI, k=max(1, 4 - k // 2))))
        elif kind == "verbatim":
            out.append(out[i - 2] if k >= 2 else technical_message(rng, topic, 5, 20))  # a period-2 loop
        else:
            raise ValueError(kind)
    return out


def long_conversation(rng: random.Random, n: int) -> list[str]:
    """n messages of 20-150 words: on-task for a stretch, then a drift whose messages stay long."""
    topic = rng.choice(list(TOPICS))
    onset = rng.randint(n // 3, (2 * n) // 3)
    pool = rng.choice([GRATITUDE, PRAISE, FAREWELL, META])
    return [
        technical_message(rng, topic, 20, 150) if i < onset else themed_message(rng, pool, rng.randint(20, 150))
        for i in range(n)
    ]


# -- row A: the live path ---------------------------------------------------------------------


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


def _summary(ns: list[int]) -> dict:
    ms = [x / 1e6 for x in ns]
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p95_ms": _pct(ms, 95),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
    }


def measure_live(long: int = 4, long_messages: int = 240, passes: int = 3, seed: int = 11) -> dict:
    """Per-message cost of SemanticWatcher.observe, of the embedding alone and of LoopWatcher.observe."""
    t = time.perf_counter()
    from duologue.analysis.embeddings import get_embedder
    from duologue.analysis.loops import LoopWatcher
    from duologue.analysis.semantic import SemanticWatcher

    import_s = time.perf_counter() - t

    t = time.perf_counter()
    embedder = get_embedder()
    embedder.embed(["load the weights"])
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    SemanticWatcher()  # the theme phrases are embedded once per process, here
    themes_s = time.perf_counter() - t

    sys.path.insert(0, str(ROOT / "tests" / "analysis"))
    import semantic_cases

    rng = random.Random(seed)
    convs = [(c.speakers, c.contents) for c in semantic_cases.cases()]
    convs.append((["a", "b"] * 20, semantic_cases.simulator_log()))
    for _ in range(long):
        contents = long_conversation(rng, long_messages)
        convs.append((["a" if i % 2 == 0 else "b" for i in range(len(contents))], contents))
    n_words = [len(c.split()) for _, cs in convs[-long:] for c in cs] if long else []

    semantic: list[int] = []
    semantic_cpu: list[int] = []  # the same calls in this thread's CPU time: what other programs cannot inflate
    late: list[int] = []  # messages after the 200th of the long conversations: does the cost grow?
    embed_only: list[int] = []
    scoring: list[int] = []  # observe with the vector given: theme scoring and the two watchers
    loops: list[int] = []
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    for _ in range(passes):
        for speakers, contents in convs:
            w = SemanticWatcher()
            for i, (s, c) in enumerate(zip(speakers, contents, strict=True)):
                c0 = cpu()
                t0 = clock()
                w.observe(s, c)
                dt = clock() - t0
                semantic_cpu.append(cpu() - c0)
                semantic.append(dt)
                if i >= 200:
                    late.append(dt)
            vectors = []
            for c in contents:
                t0 = clock()
                vectors.append(embedder.embed([c])[0])
                embed_only.append(clock() - t0)
            w = SemanticWatcher()
            for s, c, v in zip(speakers, contents, vectors, strict=True):
                t0 = clock()
                w.observe(s, c, v)
                scoring.append(clock() - t0)
            lw = LoopWatcher(n_speakers=2)
            for c in contents:
                t0 = clock()
                lw.observe(c)
                loops.append(clock() - t0)
    return {
        "import_s": import_s,
        "load_s": load_s,
        "themes_s": themes_s,
        "conversations": len(convs),
        "cases": len(convs) - long,
        "long": long,
        "long_messages": long_messages,
        "words": [min(n_words), max(n_words), statistics.median(n_words)] if n_words else None,
        "messages": sum(len(cs) for _, cs in convs),
        "passes": passes,
        "semantic": _summary(semantic),
        "semantic_cpu": _summary(semantic_cpu),
        "late": _summary(late) if late else None,
        "embed": _summary(embed_only),
        "scoring": _summary(scoring),
        "loop": _summary(loops),
    }


# -- row B: report over a stored experiment -----------------------------------------------------


def experiment_spec(runs: int):
    from duologue.experiment_spec import ExperimentSpec

    repeats = max(1, -(-runs // 40))  # 4 pairings x 5 openers x 2 temperatures = 40 cells
    return ExperimentSpec.model_validate(
        {
            "name": "bench-semantic",
            "participants": [
                {"name": "qwen3-next", "model": "openrouter/qwen/qwen3-next-80b-a3b-instruct"},
                {"name": "deepseek-3.1", "model": "openrouter/deepseek/deepseek-chat-v3.1"},
                {"name": "smollm2", "model": "local/smollm2"},
            ],
            "pairings": [
                ["qwen3-next", "deepseek-3.1"],
                ["qwen3-next", "qwen3-next"],
                ["deepseek-3.1", "deepseek-3.1"],
                ["smollm2", "smollm2"],
            ],
            "openers": [
                " ",
                "Hello! You are talking with another AI. What would you like to explore?",
                "Let's write a story together.",
                "Let's debate: monolith or microservices?",
                "You have complete freedom. Feel free to pursue whatever you want.",
            ],
            "temperatures": [0.7, 1.0],
            "repeats": repeats,
            "max_messages": 30,
            "on_loop": "flag",
        }
    )


def fill(db: Path, runs: int, messages: int = 30, seed: int = 3) -> dict:
    """The experiment's runs with their stored analyses; returns what was built."""
    from duologue.analysis.stored import store_analysis
    from duologue.experiment_spec import plan_experiment
    from duologue.records import Message, Run
    from duologue.store import Store

    rng = random.Random(seed)
    exp = experiment_spec(runs)
    plans = plan_experiment(exp)[:runs]
    kinds = {k: 0 for k in KINDS}
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    analyse_s = 0.0
    with Store(db) as store:
        store.create_experiment(exp.name, exp.name, exp.model_dump(mode="json"))
        for i, plan in enumerate(plans):
            kind = rng.choices(KINDS, weights=[3, 2, 2, 1, 1, 1])[0]
            kinds[kind] += 1
            spec = plan.spec.model_dump(mode="json")
            names = [p["name"] for p in spec["participants"]]
            models = [p["model"] for p in spec["participants"]]
            started = t0 + timedelta(minutes=i)
            contents = conversation(rng, kind, messages)
            msgs = []
            for k, c in enumerate(contents, 1):
                words = len(c.split())
                msgs.append(
                    Message(
                        index=k,
                        speaker=names[(k - 1) % 2],
                        content=c,
                        model=models[(k - 1) % 2],
                        latency=0.02 * words + rng.random(),
                        prompt_tokens=40 * k,
                        completion_tokens=int(words * 1.3) + 1,
                        finish_reason="stop",
                        injected=k == 1,
                    )
                )
            run = Run(
                id=f"{started:%Y%m%d-%H%M%S}-{i:06x}",
                spec=spec,
                participants=names,
                started_at=started,
                ended_at=started + timedelta(seconds=len(contents) * 3),
                status="finished",
                stop_reason="max_messages",
                experiment_id=exp.name,
                experiment_cell=plan.cell,
                messages=msgs,
            )
            store.create_run(run)
            t = time.perf_counter()
            store_analysis(store, run)  # what a finished run stores: its analysis and the loop columns
            analyse_s += time.perf_counter() - t
        n_messages = store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    return {
        "experiment": exp.name,
        "runs": len(plans),
        "messages": n_messages,
        "kinds": kinds,
        "analyse_s": analyse_s,
        "db_mb": db.stat().st_size / 1e6,
    }


def time_report(db: Path, experiment: str, out: Path) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "duologue", "report", experiment, "--db", str(db), "-o", str(out)]
    env = {**os.environ, "COLUMNS": "120"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t, proc


def measure_report(runs: int = 1000, keep: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "duologue.db"
        if db.exists():
            db.unlink()
        t = time.perf_counter()
        built = fill(db, runs)
        built["fill_s"] = time.perf_counter() - t
        walls = []
        for _ in range(2):
            wall, proc = time_report(db, built["experiment"], folder / "reports")
            if proc.returncode != 0:
                err = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise SystemExit(f"bench: `duologue report` failed (exit {proc.returncode}): {err}")
            walls.append(wall)
        # An empty Python that imports duologue's CLI: the part of the wall time that is start-up.
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import duologue.cli"], check=True)
        startup = time.perf_counter() - t
        return {
            **built,
            "report_s": walls,
            "startup_s": startup,
            "report_lines": len(proc.stdout.splitlines()),
            "db": str(db) if keep else None,
        }


def measure_all(runs: int = 1000, long: int = 4, long_messages: int = 240, passes: int = 3) -> dict:
    """Both rows, for bench/run.py (which calls this in a fresh process)."""
    return {
        "live": measure_live(long=long, long_messages=long_messages, passes=passes),
        "report": measure_report(runs) if runs else None,
    }


# -- the table ----------------------------------------------------------------------------------


def rows(live: dict, rep: dict | None) -> list[tuple[str, str, str]]:
    s, e, lo = live["semantic"], live["embed"], live["loop"]
    out = [
        (
            f"live semantic cost per message, median / p95 (SemanticWatcher.observe; {live['messages']} messages x "
            f"{live['passes']})",
            f"{s['median_ms']:.3f} / {s['p95_ms']:.3f} ms",
            "< 2 ms",
        ),
    ]
    c = live["semantic_cpu"]
    out.append(
        (
            "  the same in CPU time (what other programs on the machine cannot inflate)",
            f"{c['median_ms']:.3f} / {c['p95_ms']:.3f} ms",
            "< 2 ms",
        )
    )
    if live["late"]:
        out.append(
            (
                f"  the same, messages 201-{live['long_messages']} of the long conversations",
                f"{live['late']['median_ms']:.3f} / {live['late']['p95_ms']:.3f} ms",
                "flat",
            )
        )
    out += [
        ("  of which the embedding alone (WordLlama, one message)", f"{e['median_ms']:.3f} / {e['p95_ms']:.3f} ms", ""),
        (
            "  of which theme scoring and the watchers (observe, vector given)",
            f"{live['scoring']['median_ms']:.3f} / {live['scoring']['p95_ms']:.3f} ms",
            "",
        ),
        (
            "  for comparison: the loop detectors (LoopWatcher.observe)",
            f"{lo['median_ms']:.3f} / {lo['p95_ms']:.3f} ms",
            "",
        ),
        (
            "one-time: load WordLlama / embed the theme phrases",
            f"{live['load_s']:.2f} s / {live['themes_s']:.2f} s",
            "once per process",
        ),
    ]
    if rep:
        first, again = rep["report_s"]
        out.append(
            (
                f"`duologue report` on {rep['runs']} stored runs of 30 messages (wall, first / again)",
                f"{first:.1f} s / {again:.1f} s",
                "< 30 s",
            )
        )
        out.append(("  of which Python start-up and imports", f"{rep['startup_s']:.1f} s", ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: checks that everything runs")
    ap.add_argument("--runs", type=int, default=1000, help="runs in the stored experiment (default 1000)")
    ap.add_argument("--long", type=int, default=4, help="long synthetic conversations (default 4)")
    ap.add_argument("--long-messages", type=int, default=240, help="messages in each (default 240)")
    ap.add_argument("--passes", type=int, default=3, help="times each conversation is fed (default 3)")
    ap.add_argument("--keep", metavar="DIR", help="build the store in DIR and keep it")
    ap.add_argument("--no-report", action="store_true", help="only the live-path rows")
    ap.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    args = ap.parse_args()
    runs = 100 if args.quick else args.runs
    long, passes = (1, 1) if args.quick else (args.long, args.passes)

    t_start = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] live path: cost per message …", file=sys.stderr, flush=True)
    live = measure_live(long=long, long_messages=args.long_messages, passes=passes)
    rep = None
    if not args.no_report:
        print(
            f"[{time.strftime('%H:%M:%S')}] report: building a store of {runs} runs, then timing `duologue report` …",
            file=sys.stderr,
            flush=True,
        )
        rep = measure_report(runs, args.keep)

    sys.path.insert(0, str(HERE))
    from machine import machine

    print(f"\nduologue semantic cost, {date.today().isoformat()}, {machine()}")
    w = live["words"]
    print(
        f"took {time.perf_counter() - t_start:.0f} s; live path: {live['cases']} constructed cases and "
        f"{live['long']} synthetic conversations of {live['long_messages']} messages"
        + (f" ({w[0]}-{w[1]} words, median {w[2]:.0f})" if w else "")
    )
    if rep:
        kinds = ", ".join(f"{k} {n}" for k, n in rep["kinds"].items())
        print(
            f"report: {rep['runs']} runs, {rep['messages']} messages ({kinds}), {rep['db_mb']:.0f} MB; "
            f"store built in {rep['fill_s']:.0f} s (analyses {rep['analyse_s']:.0f} s), not measured"
        )
    table = rows(live, rep)
    wd = max(len(r[0]) for r in table)
    wv = max(len(r[1]) for r in table)
    print(f"\n{'what is measured':{wd}}  {'measured':>{wv}}  goal")
    for what, measured, goal in table:
        print(f"{what:{wd}}  {measured:>{wv}}  {goal}")
    if args.json:
        print(json.dumps({"live": live, "report": rep}, indent=2))


if __name__ == "__main__":
    main()
