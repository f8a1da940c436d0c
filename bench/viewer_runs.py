"""How fast the viewer's runs page answers over a store of 10,000 runs.

Fills a temporary store through the Store API (each run with 12–60 messages and
its stored analysis, as `duologue run` leaves it), serves the viewer on
127.0.0.1, and times whole HTTP requests for the runs page: the default view,
filters, sorts and a deep page. Side by side it times the query the page would
need without the run summary columns (counting every run's messages and
reading every analysis to sort by message count), to show what they save.

    .venv/bin/python bench/viewer_runs.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from duologue.analysis import analyze
from duologue.records import Message, Run
from duologue.store import Store
from duologue.web import create_app, make_server

REPEATS = 7
PAGES = [
    ("default (newest first)", "/"),
    ("filter: participant", "/?participant=carol"),
    ("filter: model + looped", "/?model=openai/gpt-4o-mini&looped=yes"),
    ("filter: stop reason", "/?stop=loop"),
    ("sort: messages", "/?sort=messages&dir=desc"),
    ("sort: loop onset", "/?sort=onset&dir=asc"),
    ("sort: participants", "/?sort=participants&dir=asc"),
    ("deep page (?page=150)", "/?page=150"),
    ("filter + sort + page", "/?looped=no&sort=messages&dir=asc&page=20"),
    ("search: resting silent", "/?q=resting+silent"),
]
SEARCH = "resting silent"
# Endings some conversations drift into, so the search has messages to find across runs.
SILENT_ENDINGS = [
    "we are resting silent now, nothing more to say",
    "resting, silent, grateful",
    "silent and resting together in the quiet",
]
NAMES = ["alice", "bob", "carol", "dave"]
MODELS = [
    "local/smollm2",
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4-5",
    "openrouter/qwen/qwen3-next-80b-a3b-instruct",
]
PROSE = (
    "the river folds back on itself and we follow it down to where the maps run out, asking what a "
    "conversation is for and who is listening when nobody answers"
).split()


def conversation(rng: random.Random, n: int, loop_at: int | None) -> list[str]:
    out = []
    for i in range(n):
        if loop_at is not None and i >= loop_at:
            out.append(out[i - 2])  # a period-2 loop
        else:
            out.append(" ".join(rng.choice(PROSE) for _ in range(rng.randint(8, 40))))
    return out


def conversation_ending_silent(rng: random.Random, n: int) -> list[str]:
    out = conversation(rng, n - 4, None)
    return out + [rng.choice(SILENT_ENDINGS) for _ in range(4)]


def fill(db: Path, runs: int) -> None:
    rng = random.Random(7)
    # A few conversations analysed once and reused: the analysis is what makes rows big, not what varies.
    shapes = []
    for n, loop_at in [(12, None), (24, None), (40, 10), (60, 20), (30, 8), (48, None)]:
        contents = conversation(rng, n, loop_at)
        speakers = ["a", "b"] * (n // 2)
        analysis = analyze(speakers, contents, participants=["a", "b"])
        shapes.append((contents, analysis))
    contents = conversation_ending_silent(rng, 20)  # one run in seven ends resting silent
    shapes.append((contents, analyze(["a", "b"] * 10, contents, participants=["a", "b"])))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with Store(db) as store:
        store.conn.execute(
            "INSERT INTO experiments (id, name, spec, created_at) VALUES ('e1', 'sweep', '{}', ?)", (t0.isoformat(),)
        )
        store.conn.commit()
        for i in range(runs):
            names = rng.sample(NAMES, 2)
            models = [rng.choice(MODELS), rng.choice(MODELS)]
            contents, analysis = shapes[i % len(shapes)]
            started = t0 + timedelta(minutes=i)
            looped = analysis.exact_loop is not None
            run = Run(
                id=f"{started:%Y%m%d-%H%M%S}-{i:06x}",
                participants=names,
                started_at=started,
                spec={
                    "participants": [{"name": n, "model": m} for n, m in zip(names, models, strict=True)],
                    "max_messages": 60,
                },
                ended_at=started + timedelta(seconds=len(contents) * 3),
                status="finished",
                stop_reason="loop" if looped else rng.choice(["max_messages", "end_marker", "error"]),
                experiment_id="e1" if i % 10 == 0 else None,
                messages=[
                    Message(
                        index=k,
                        speaker=names[(k - 1) % 2],
                        content=c,
                        model=models[(k - 1) % 2],
                        latency=1.0,
                        completion_tokens=30,
                    )
                    for k, c in enumerate(contents, 1)
                ],
            )
            store.create_run(run)
            store.save_analysis(run.id, dataclasses.replace(analysis, participants=names))


@contextmanager
def running_viewer(db: Path) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = make_server(create_app(db))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()


def timed_get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
        assert r.status == 200
    return time.perf_counter() - start


def naive_seconds(db: Path) -> float:
    """The page's query without summary columns: count every run's messages, read every analysis."""
    conn = sqlite3.connect(db)
    start = time.perf_counter()
    conn.execute(
        """SELECT id, title, participants, models, started_at, status, stop_reason,
                  (SELECT COUNT(*) FROM messages m WHERE m.run_id = runs.id) AS message_count,
                  json_extract(analysis, '$.exact_loop.period') AS loop_period,
                  json_extract(analysis, '$.exact_loop.onset_message') AS loop_onset
           FROM runs ORDER BY message_count DESC, id DESC LIMIT 50"""
    ).fetchall()
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def search_row(db: Path) -> None:
    """`duologue search "resting silent"`: the store's query, and the whole command with Python's start-up."""
    with Store(db) as store:
        result = store.search_messages(SEARCH)
        query = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            store.search_messages(SEARCH)
            query.append(time.perf_counter() - start)
    command = [sys.executable, "-m", "duologue", "search", SEARCH, "--db", str(db)]
    whole = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        whole.append(time.perf_counter() - start)
    print(
        f"\nsearch {SEARCH!r}: {result.total} messages in {result.runs} runs; "
        f"store query (matches, count, best 20 with snippets) median {statistics.median(query) * 1000:.1f} ms, "
        f"max {max(query) * 1000:.1f} ms; whole `duologue search` command median {statistics.median(whole):.2f} s "
        f"(Python start-up and imports included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "duologue.db"
        start = time.perf_counter()
        fill(db, args.runs)
        with Store(db) as store:
            messages = store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        print(
            f"store: {args.runs} runs, {messages} messages, {db.stat().st_size / 1e6:.0f} MB "
            f"(filled in {time.perf_counter() - start:.0f} s)"
        )

        with running_viewer(db) as base:
            print(f"\n{'runs page':32} {'first':>8} {'median':>8} {'max':>8}   (seconds, whole HTTP request)")
            medians = []
            for label, path in PAGES:
                first = timed_get(base + path)
                times = [timed_get(base + path) for _ in range(REPEATS)]
                medians.append(statistics.median(times))
                print(f"{label:32} {first:8.3f} {medians[-1]:8.3f} {max([first, *times]):8.3f}")
            print(
                f"\nslowest median: {max(medians):.3f} s; every page under one second: "
                f"{'yes' if max(medians) < 1 else 'NO'}"
            )

        search_row(db)

        naive = statistics.median(naive_seconds(db) for _ in range(3))
        with sqlite3.connect(db) as conn:
            start = time.perf_counter()
            for _ in range(3):
                conn.execute("SELECT id FROM runs ORDER BY message_count DESC, id DESC LIMIT 50").fetchall()
            summary = (time.perf_counter() - start) / 3
        print(
            f"sort by messages, query only: summary columns {summary * 1000:.1f} ms, "
            f"counting messages and reading analyses {naive * 1000:.0f} ms ({naive / summary:.0f}x)"
        )


if __name__ == "__main__":
    main()
