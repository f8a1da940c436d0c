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

from duologue.batch import arun_experiment
from duologue.spec import ExperimentSpec, Participant

HERE = Path(__file__).resolve().parent


def cpu_seconds() -> float:
    """This process's CPU time: what the harness itself costs, the servers excluded."""
    t = os.times()
    return t.user + t.system


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
        name="harness",
        participants=[
            Participant(name="a", model="openai-compatible/instant", base_url=url, max_tokens=32),
            Participant(name="b", model="openai-compatible/instant", base_url=url, max_tokens=32),
        ],
        pairings=[("a", "b")],
        repeats=conversations,
        max_messages=messages,
        on_loop="continue",
        on_convergence="continue",
        concurrency={"openai-compatible": conversations},
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
        "messages": result.totals.messages,
        "cpu": cpu,
        "wall": wall,
        "finished": result.finished,
        "peak": result.totals.max_running,
        "median_in_flight": statistics.median(busy) if busy else 0,
    }


async def bare_client(conversations: int, messages: int, port: int, fast: bool) -> dict:
    """The floor: the same streamed requests with the bare openai SDK, nothing stored or checked.

    fast=False: chat.completions.create, as most code calls it. fast=True: client.post with a
    plain JSON body, the path duologue's backend takes (it skips the SDK's per-request walk
    over the whole history).
    """
    from openai import AsyncOpenAI, AsyncStream
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    client = AsyncOpenAI(api_key="no-key", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)

    async def conversation() -> int:
        history = [{"role": "user", "content": " "}]
        for _ in range(messages - 1):
            body = dict(
                model="instant", messages=history, stream=True, max_tokens=32, stream_options={"include_usage": True}
            )
            if fast:
                stream = await client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=ChatCompletion,
                    stream=True,
                    stream_cls=AsyncStream[ChatCompletionChunk],
                )
            else:
                stream = await client.chat.completions.create(**body)
            text = []
            async for chunk in stream:
                for choice in chunk.choices:
                    text.append(choice.delta.content or "")
            history = history + [{"role": "assistant", "content": "".join(text)}]
        return messages - 1

    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    done = sum(await asyncio.gather(*(conversation() for _ in range(conversations))))
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    await client.close()
    return {"requests": done, "cpu": cpu, "wall": wall}


def measure_all(conversations: int = 200, messages: int = 20) -> dict:
    """duologue and the bare SDK against the same instant server, side by side."""
    port = free_port()
    server = start_server(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(measure(conversations, messages, port, Path(tmp) / "d.db"))
        floor = asyncio.run(bare_client(conversations, messages, port, fast=True))
        usual = asyncio.run(bare_client(conversations, messages, port, fast=False))
    finally:
        server.terminate()
        server.wait()
    return {
        **r,
        "per_cpu_ms": r["cpu"] / r["messages"] * 1000,
        "sdk_ms": floor["cpu"] / floor["requests"] * 1000,
        "sdk_usual_ms": usual["cpu"] / usual["requests"] * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversations", type=int, default=200)
    ap.add_argument("--messages", type=int, default=20)
    args = ap.parse_args()
    r = measure_all(args.conversations, args.messages)
    per_cpu, sdk, sdk_usual = r["per_cpu_ms"], r["sdk_ms"], r["sdk_usual_ms"]
    per_wall = r["wall"] / r["messages"] * 1000
    print(
        f"{r['finished']} conversations finished, {r['messages']} messages in {r['wall']:.1f} s "
        f"(server in another process, {os.cpu_count()} cores)"
    )
    print(f"duologue, CPU per message:            {per_cpu:.2f} ms  (everything in this process)")
    print(f"bare openai SDK, CPU per request:     {sdk:.2f} ms  (client.post, as duologue; nothing stored or checked)")
    print(f"  the same with chat.completions.create: {sdk_usual:.2f} ms  (how most loops call it)")
    print(f"harness's own cost per message:       {per_cpu - sdk:.2f} ms  (duologue − bare SDK; goal < 2 ms)")
    print(f"duologue / bare SDK:                  {per_cpu / sdk:.2f}x")
    print(f"wall time per message:                {per_wall:.2f} ms")
    print(f"conversations in flight:              peak {r['peak']}, median {r['median_in_flight']:.0f}  (goal >= 50)")


if __name__ == "__main__":
    main()
