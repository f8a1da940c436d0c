"""The harness's own cost per message, against a server that answers instantly.

Starts bench/instant_server.py on 127.0.0.1 in another process, then runs an
experiment of 200 conversations of 20 messages through duologue's real path
(openai SDK streaming, engine, loop detectors, SQLite commits, transcript
files) with every conversation allowed in flight at once. Prints this
process's CPU time per message (the server's CPU is not counted), wall time
per message, and how many conversations were in flight.

    python bench/harness_overhead.py [--conversations 200] [--messages 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from duologue.batch import arun_experiment, cpu_seconds
from duologue.spec import ExperimentSpec, Participant

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(HERE / "instant_server.py"), "--port", str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the instant server did not start")


async def measure(conversations: int, messages: int, port: int, db: Path) -> dict:
    url = f"http://127.0.0.1:{port}/v1"
    exp = ExperimentSpec(
        name="harness", participants=[
            Participant(name="a", model="openai-compatible/instant", base_url=url, max_tokens=32),
            Participant(name="b", model="openai-compatible/instant", base_url=url, max_tokens=32),
        ],
        pairings=[("a", "b")], repeats=conversations, max_messages=messages,
        on_loop="continue", on_convergence="continue", concurrency={"openai-compatible": conversations},
    )
    in_flight: list[int] = []
    state = {}

    def on_progress(totals):
        state["totals"] = totals

    async def sample():
        while True:
            await asyncio.sleep(0.02)
            if "totals" in state:
                in_flight.append(state["totals"].running)

    sampler = asyncio.create_task(sample())
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    result = await arun_experiment(exp, db=db, on_progress=on_progress)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    sampler.cancel()
    busy = [n for n in in_flight if n > 0]
    return {
        "messages": result.totals.messages, "cpu": cpu, "wall": wall, "finished": result.finished,
        "peak": result.totals.max_running, "median_in_flight": statistics.median(busy) if busy else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversations", type=int, default=200)
    ap.add_argument("--messages", type=int, default=20)
    args = ap.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(measure(args.conversations, args.messages, port, Path(tmp) / "d.db"))
    finally:
        server.terminate()
        server.wait()
    per_cpu = r["cpu"] / r["messages"] * 1000
    per_wall = r["wall"] / r["messages"] * 1000
    print(f"{r['finished']} conversations finished, {r['messages']} messages in {r['wall']:.1f} s "
          f"(server in another process, {os.cpu_count()} cores)")
    print(f"harness CPU per message:   {per_cpu:.2f} ms   (goal < 2 ms)")
    print(f"wall time per message:     {per_wall:.2f} ms")
    print(f"conversations in flight:   peak {r['peak']}, median {r['median_in_flight']:.0f}   (goal >= 50)")


if __name__ == "__main__":
    main()
