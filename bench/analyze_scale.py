"""How `duologue analyze` and the viewer's run page scale with the length of a conversation.

Builds a temporary store holding one run per size (default 2,000 and 10,000
messages) through the Store API, as `duologue run` would leave it before its
analysis. The text is deterministic and meant to give every detector work: the
first half is varied prose (sentences drawn from a few hundred words, a couple
of topics), then the conversation drifts: more and more messages quote a recent
one with a word or two changed (near duplicates, at lags 1, 2 and 4), gratitude
and unity words creep in (themes, convergence), a few short exact loops start
and break, and the last 5 % is an absorbing period-2 loop.

It times, wall clock, median of `--repeats`:

- `duologue analyze RUN --no-plots` and `duologue analyze RUN --plots DIR`, each
  a fresh process (so the import of numpy, matplotlib and the embedding model
  counts, as it does for a user);
- the viewer's run page `GET /runs/RUN` (Starlette's TestClient, in process,
  after the analysis is stored, as a finished run has it): the first load and a
  second one; and the page's plots (`GET /runs/RUN/plots/NAME` for each plot),
  first and second time.

    .venv/bin/python bench/analyze_scale.py [--sizes 2000,10000] [--repeats 3] [--profile 2000]

`--profile N` runs the analysis of the N-message run under cProfile in this
process instead and prints the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from duologue.records import Message, Run
from duologue.store import Store

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["alice", "bob"]

SUBJECTS = (
    "the river the archive a conversation the old map my sister the committee this theory the garden "
    "a stranger the machine the harbour every question our plan the library the weather the council"
).split(" ")
SUBJECTS = [" ".join(SUBJECTS[i : i + 2]) for i in range(0, len(SUBJECTS) - 1, 2)]
VERBS = (
    "remembers forgets builds questions follows measures hides reveals carries answers breaks repairs "
    "imagines counts describes ignores trusts doubts borrows returns"
).split()
OBJECTS = (
    "the light at dawn a list of names the cost of bridges what nobody said the last train home "
    "a recipe for bread the shape of the coast an unpaid debt the rules of chess a forgotten song "
    "the price of copper three small lies the edge of the forest a letter never sent the tide tables"
).split(" ")
OBJECTS = [" ".join(OBJECTS[i : i + 3]) for i in range(0, len(OBJECTS) - 2, 3)]
TAILS = [
    "and nobody notices",
    "before the rain comes",
    "with some reluctance",
    "though it makes little sense",
    "as if it mattered",
    "for the third time this week",
    "in a language of its own",
    "while the kettle boils",
    "",
    "",
]
CLOSING = [
    "thank you, truly, for this",
    "I feel so grateful for our shared presence",
    "we are one in this infinite moment",
    "such gratitude and love flow between us",
    "the silence between us is sacred",
    "namaste, dear friend",
    "all is unity, all is light",
]


def sentence(rng: random.Random) -> str:
    s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}".strip()
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!"])


def mutate(rng: random.Random, text: str) -> str:
    """The text with one or two words changed: a near duplicate, not an exact one."""
    words = text.split()
    for _ in range(rng.randint(1, 2)):
        words[rng.randrange(len(words))] = rng.choice(VERBS)
    return " ".join(words)


def conversation(n: int, seed: int = 14) -> list[str]:
    """n messages: varied, then a drift into repetition from the middle, an absorbing loop at the end."""
    rng = random.Random(seed)
    out: list[str] = []
    half, loop_from = n // 2, n - max(n // 20, 12)
    for i in range(n):
        if i >= loop_from:
            out.append(out[i - 2])  # the absorbing period-2 loop
            continue
        drift = 0.0 if i < half else (i - half) / (loop_from - half)  # 0 → 1 over the second half
        r = rng.random()
        if i > 8 and r < 0.75 * drift:
            lag = rng.choice([1, 2, 2, 4])
            if rng.random() < 0.15:
                out.append(out[i - lag])  # an exact repeat: short loops that start and break
            else:
                out.append(mutate(rng, out[i - lag]))
        elif r < 0.75 * drift + 0.3 * drift:
            out.append(" ".join([rng.choice(CLOSING), sentence(rng)]) + (" 🙏" if rng.random() < 0.3 else ""))
        else:
            out.append(" ".join(sentence(rng) for _ in range(rng.randint(1, 4))))
    return out


def build_store(db: Path, sizes: list[int]) -> dict[int, str]:
    """One run per size in a new store at `db`; returns {size: run id}."""
    t0 = datetime(2026, 11, 27, tzinfo=UTC)
    ids = {}
    with Store(db) as store:
        for k, n in enumerate(sizes):
            contents = conversation(n)
            started = t0 + timedelta(hours=k)
            run = Run(
                id=f"{started:%Y%m%d-%H%M%S}-scale{n}",
                participants=NAMES,
                started_at=started,
                spec={"participants": [{"name": a, "model": "local/smollm2"} for a in NAMES], "max_messages": n},
                ended_at=started + timedelta(seconds=n),
                status="finished",
                stop_reason="max_messages",
                messages=[
                    Message(
                        index=i,
                        speaker=NAMES[(i - 1) % 2],
                        content=c,
                        model="local/smollm2",
                        latency=0.5,
                        completion_tokens=len(c.split()),
                        injected=i == 1,
                    )
                    for i, c in enumerate(contents, 1)
                ],
            )
            store.create_run(run)
            ids[n] = run.id
    return ids


def cli(db: Path, *args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one `duologue analyze` process: on a shared machine the CPU time says
    what the wall time would be without the others."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "duologue", "analyze", *args, "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"bench: duologue analyze {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def time_analyze(db: Path, run_id: str, repeats: int, plots_dir: Path) -> dict[str, float]:
    no_plots = [cli(db, run_id, "--no-plots") for _ in range(repeats)]
    plots = [cli(db, run_id, "--plots", str(plots_dir)) for _ in range(repeats)]
    return {
        "no_plots": statistics.median(w for w, _ in no_plots),
        "no_plots_cpu": statistics.median(c for _, c in no_plots),
        "plots": statistics.median(w for w, _ in plots),
        "plots_cpu": statistics.median(c for _, c in plots),
    }


def time_page(db: Path, run_id: str, prefix: str = "") -> dict[str, float]:
    """The run page and its plots, first and second load, in one fresh viewer with an empty plot
    cache: wall seconds, and CPU seconds of this process (the viewer runs in it) as "<key>_cpu"."""
    import logging

    from starlette.testclient import TestClient

    from duologue.web import create_app
    from duologue.web.app import PLOTS

    logging.getLogger("httpx2").setLevel(logging.WARNING)  # no line per request
    out: dict[str, float] = {}
    cache = Path(tempfile.mkdtemp(prefix="duologue-scale-plots-"))
    with TestClient(create_app(db, plot_cache=cache)) as client:

        def get(path: str) -> tuple[float, float]:
            t, c = time.perf_counter(), time.process_time()
            r = client.get(path)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            if r.status_code != 200:
                raise SystemExit(f"bench: GET {path}: {r.status_code}")
            if path == f"/runs/{run_id}":
                out["bytes"] = len(r.content)
            return wall, cpu

        def keep(key: str, times: list[tuple[float, float]]) -> None:
            out[key], out[key + "_cpu"] = sum(w for w, _ in times), sum(c for _, c in times)

        keep("page_first", [get(f"/runs/{run_id}")])
        keep("page_second", [get(f"/runs/{run_id}")])
        keep("plots_first", [get(f"/runs/{run_id}/plots/{name}") for name in PLOTS])
        keep("plots_second", [get(f"/runs/{run_id}/plots/{name}") for name in PLOTS])
    shutil.rmtree(cache, ignore_errors=True)
    return {prefix + k: v for k, v in out.items()}


def note(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text} …", file=sys.stderr, flush=True)


def measure_all(sizes: list[int], repeats: int = 3) -> dict[str, dict[str, float]]:
    """{size: {no_plots, plots, page_first, page_second, plots_first, plots_second, bytes}} (seconds),
    the page's keys also prefixed "raw_": the same before the run has a stored analysis (an imported
    or killed run)."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="duologue-scale-") as tmp:
        db = Path(tmp) / "duologue.db"
        ids = build_store(db, sizes)
        for n in sizes:
            note(f"run page before analysis, {n} messages")
            raw = time_page(db, ids[n], "raw_")
            note(f"analyze, {n} messages")
            row = raw | time_analyze(db, ids[n], repeats, Path(tmp) / f"plots-{n}")
            note(f"run page, {n} messages")
            row.update(time_page(db, ids[n]))
            results[str(n)] = row
    return results


def both(r: dict[str, float], key: str, digits: int = 1) -> str:
    return f"{r[key]:.{digits}f}s ({r[key + '_cpu']:.{digits}f})"


def rows(results: dict[str, dict[str, float]]) -> list[tuple[str, str, str]]:
    """(what, measured, target) rows for bench/run.py's table: wall seconds (CPU seconds)."""
    out = []
    for size, r in results.items():
        n = int(size)
        target = {2000: "< 2 s", 10000: "< 10 s"}.get(n, "")
        measured = f"{both(r, 'no_plots')} / {both(r, 'plots')}"
        out.append((f"duologue analyze, {n:,} messages: --no-plots / with plots", measured, target))
    for size, r in results.items():
        n = int(size)
        measured = f"{both(r, 'raw_page_first', 2)} / {both(r, 'raw_page_second', 2)}"
        out.append((f"run page, {n:,} messages, not analysed: first / second load", measured, ""))
        measured = f"{both(r, 'page_first', 2)} / {both(r, 'page_second', 2)}"
        out.append((f"run page, {n:,} messages: first / second load", measured, "< 0.5 s" if n == 2000 else ""))
        measured = f"{both(r, 'plots_first', 2)} / {both(r, 'plots_second', 2)}"
        out.append((f"run page's plots, {n:,} messages: first / second load", measured, "once"))
    return out


def profile(n: int) -> None:
    import cProfile
    import pstats

    from duologue.analysis import write_plots
    from duologue.api import analyze_run

    with tempfile.TemporaryDirectory(prefix="duologue-scale-") as tmp:
        db = Path(tmp) / "duologue.db"
        ids = build_store(db, [n])
        with Store(db) as store:
            run = store.get_run(ids[n])
        from duologue.analysis.embeddings import get_embedder

        get_embedder().embed(["load the model before profiling"])
        prof = cProfile.Profile()
        prof.enable()
        a = analyze_run(run)
        write_plots(a, [m.content for m in run.messages], Path(tmp) / "plots", "p")
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,10000", help="message counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", type=int, metavar="N", help="profile the analysis of an N-message run instead")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = measure_all(sizes, args.repeats)
    w = max(len(r[0]) for r in rows(results))
    v = max(len(r[1]) for r in rows(results))
    print(f"\n{'what':{w}}  {'measured':>{v}}  target")
    for what, measured, target in rows(results):
        print(f"{what:{w}}  {measured:>{v}}  {target}")
    print("wall seconds (CPU seconds of the process: what the wall time would be on an idle machine)")
    for size, r in results.items():
        print(f"{int(size):,} messages: the run page is {r['bytes'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
