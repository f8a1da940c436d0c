"""Lookup decoding on conversations that loop: completion tokens/s with and without, and its acceptance.

Runs the conversations of examples/self-talk.toml (SmolLM2 talking to itself:
its openers, temperatures 0.7 and 1.2, 48-token replies, a 1024-token window)
on the embedded engine, twice, side by side in this run: with lookup decoding
and without (DUOLOGUE_LOOKUP=1/0), each in a fresh process after the model is
loaded, one conversation after another (what a person running `duologue run`
waits for) or K at once (`--concurrent K`, as `duologue batch` runs them).
Loops are kept going (on_loop = "continue") so that the conversations loop, as
they do when nothing stops them; `--on-loop stop` keeps the example's setting.
Lookup decoding samples every token from the model's own logits (lookup.py), so
both modes produce the same conversations until a near-tie flips (the last line
says whether they stayed equal); the rate is what is compared. Prints aggregate completion
tokens/s both ways, their ratio, drafted/accepted tokens, the share of the
completion tokens that were accepted drafts (copies of an earlier passage), and
how many conversations the loop detectors flagged (a verbatim or near loop).
How much lookup gives follows the copied share: at temperature 0 SmolLM2 soon
loops verbatim; at 0.7 it falls into repeating itself after about 20
messages (`make bench` runs 40); at 1.2 it mostly paraphrases.

    python bench/lookup.py [--messages 16] [--conversations 4] [--concurrent 1] [--repeats 1]
                           [--temperatures 0.7,1.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from duologue.backends.embedded.weights import WEIGHTS

HERE = Path(__file__).resolve().parent
SYSTEM = "You are talking with another AI. Be curious and keep each reply to a few sentences."
OPENERS = [" ", "What is the most beautiful idea you know?"]
TEMPERATURES = [0.7, 1.2]


def make_specs(n: int, messages: int, on_loop: str, weights: str, temperatures: list[float] = TEMPERATURES):
    from duologue.spec import ConversationSpec, Participant

    specs = []
    for i in range(n):
        common = dict(
            model="local/smollm2",
            system=SYSTEM,
            max_tokens=48,
            context_length=1024,
            temperature=temperatures[(i // len(OPENERS)) % len(temperatures)],
            weights=weights,
        )
        specs.append(
            ConversationSpec(
                participants=[
                    Participant(name="smollm2-a", seed=2026 + 2 * i, **common),
                    Participant(name="smollm2-b", seed=2027 + 2 * i, **common),
                ],
                opener=OPENERS[i % len(OPENERS)],
                max_messages=messages,
                on_loop=on_loop,
                on_near_loop="flag",
            )
        )
    return specs


async def measure(
    n: int, messages: int, concurrent: int, on_loop: str, weights: str, temperatures: list[float] = TEMPERATURES
) -> dict:
    """One mode in this process (DUOLOGUE_LOOKUP set by the parent): the conversations, timed."""
    from duologue.api import arun_conversation
    from duologue.backends.embedded.common import LlamaSettings
    from duologue.backends.embedded.pool import EmbeddedPool, embedded_streams, shards_for
    from duologue.store import Store

    specs = make_specs(n, messages, on_loop, weights, temperatures)
    shards = shards_for(concurrent) if concurrent > 1 else 1
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedPool(embedded_streams(specs, concurrent), shards, concurrent) as pool:
            warm = [pool.backend("local/smollm2", LlamaSettings(1024, weights=weights)) for _ in range(shards)]
            for backend in warm:
                await asyncio.to_thread(backend.engine.load)
            for backend in warm:
                await backend.aclose()
            t0 = time.perf_counter()
            runs = []
            for start in range(0, n, concurrent):
                batch = specs[start : start + concurrent]
                runs += await asyncio.gather(
                    *(
                        arun_conversation(s, db=Path(tmp) / f"{start + i}.db", watchers=None)
                        for i, s in enumerate(batch)
                    )
                )
            seconds = time.perf_counter() - t0
        looping = 0
        for i, r in enumerate(runs):
            with Store(Path(tmp) / f"{i}.db") as store:
                kinds = {e["kind"] for e in store.get_events(r.id)}
            looping += bool(kinds & {"loop", "near_loop"})
    gen = [m for r in runs for m in r.messages if not m.injected]
    return {
        "tokens": sum(m.completion_tokens or 0 for m in gen),
        "seconds": seconds,
        "drafted": sum(m.draft_tokens or 0 for m in gen),
        "accepted": sum(m.accepted_tokens or 0 for m in gen),
        "messages": len(gen),
        "looping": looping,  # conversations the loop detectors flagged (verbatim or near loop)
        "weights": [p["weights"] for p in runs[0].spec["participants"]][0],
        "texts": [m.content for m in gen],
    }


def run_child(lookup: bool, args) -> dict:
    import concurrency

    cmd = [sys.executable, __file__, "--child", "--messages", str(args.messages)]
    cmd += ["--conversations", str(args.conversations), "--concurrent", str(args.concurrent)]
    cmd += ["--on-loop", args.on_loop, "--weights", args.weights, "--temperatures", args.temperatures]
    concurrency.wait_quiet(args.quiet, args.quiet_wait)
    env = {**os.environ, "DUOLOGUE_LOOKUP": "1" if lookup else "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_all(
    messages: int = 16,
    conversations: int = 4,
    concurrent: int = 1,
    repeats: int = 1,
    on_loop: str = "continue",
    weights: str = "auto",
    temperatures: str = "0.7,1.2",
    quiet: float = 0.1,
    quiet_wait: float = 60,
) -> dict:
    """Both modes, alternating, `repeats` times: medians of tokens/s, their ratio, and acceptance."""
    sys.path.insert(0, str(HERE))
    args = argparse.Namespace(
        messages=messages,
        conversations=conversations,
        concurrent=concurrent,
        on_loop=on_loop,
        weights=weights,
        temperatures=temperatures,
        quiet=quiet,
        quiet_wait=quiet_wait,
    )
    results: dict[bool, list[dict]] = {True: [], False: []}
    for rep in range(repeats):
        for lookup in (False, True) if rep % 2 == 0 else (True, False):
            r = run_child(lookup, args)
            results[lookup].append(r)
            print(
                f"  repeat {rep + 1} lookup {'on ' if lookup else 'off'} {r['tokens']:5d} tokens in "
                f"{r['seconds']:6.1f}s = {r['tokens'] / r['seconds']:6.1f} tok/s"
                + (f", drafted {r['drafted']}, accepted {r['accepted']}" if lookup else ""),
                file=sys.stderr,
                flush=True,
            )
    on, off = results[True], results[False]
    tps = lambda rs: [r["tokens"] / r["seconds"] for r in rs]  # noqa: E731
    same = all(a["texts"] == b["texts"] for a, b in zip(on, off, strict=True))
    return {
        "on": statistics.median(tps(on)),
        "off": statistics.median(tps(off)),
        "ratio": statistics.median(a / b for a, b in zip(tps(on), tps(off), strict=True)),
        "drafted": sum(r["drafted"] for r in on),
        "accepted": sum(r["accepted"] for r in on),
        "tokens": on[0]["tokens"],
        "copied": sum(r["accepted"] for r in on) / max(1, sum(r["tokens"] for r in on)),
        "looping": on[0]["looping"],
        "same_text": same,
        "conversations": conversations,
        "messages": messages,
        "concurrent": concurrent,
        "weights": on[0]["weights"],
        "temperatures": temperatures,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=16)
    ap.add_argument("--conversations", type=int, default=4)
    ap.add_argument("--concurrent", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--on-loop", choices=["continue", "stop", "flag"], default="continue")
    ap.add_argument("--weights", choices=WEIGHTS, default="auto")
    ap.add_argument("--temperatures", default="0.7,1.2", help="the example's; 0 loops soonest")
    ap.add_argument("--quiet", type=float, default=0.1)
    ap.add_argument("--quiet-wait", type=float, default=60)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        temps = [float(t) for t in args.temperatures.split(",")]
        r = asyncio.run(measure(args.conversations, args.messages, args.concurrent, args.on_loop, args.weights, temps))
        print(json.dumps(r))
        return
    r = measure_all(
        args.messages,
        args.conversations,
        args.concurrent,
        args.repeats,
        args.on_loop,
        args.weights,
        args.temperatures,
        args.quiet,
        args.quiet_wait,
    )
    print(
        f"\n{r['conversations']} self-talk conversations of {r['messages']} messages, {r['concurrent']} at once, "
        f"{r['weights']} weights; medians of {args.repeats}"
    )
    print(f"lookup on / off: {r['on']:.1f} / {r['off']:.1f} completion tokens/s = {r['ratio']:.2f}x")
    rate = r["accepted"] / r["drafted"] if r["drafted"] else 0.0
    print(
        f"drafted {r['drafted']}, accepted {r['accepted']} ({rate:.0%}); "
        f"{r['copied']:.0%} of the completion tokens came from accepted drafts; "
        f"{r['looping']} of {r['conversations']} conversations flagged as looping (verbatim or near)"
    )
    print("same text both ways: " + ("yes" if r["same_text"] else "NO"))


if __name__ == "__main__":
    main()
