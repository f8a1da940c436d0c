"""Where a lone embedded conversation's time goes, message by message, and engine against engine.

Runs one conversation through duologue's own API (`arun_conversation`: the
loop detectors, SQLite commits and the transcript included) on the embedded
model: 20 generated messages of at most 80 tokens, fixed seeds, on_loop and
on_convergence "continue" so every run has the same length. Each engine runs in
a fresh Python process (llama.cpp's OpenMP keeps a thread team per calling
thread), with DUOLOGUE_EMBEDDED_ENGINE set to it.

The child process times, from outside and for this benchmark only (nothing in
src/ changes), by wrapping functions at the module level:

- every `llama_decode` call: prompt evaluation until a request draws its first
  token, decoding after that (lookup drafts, when an engine sends them, count as
  decoding);
- every `llama_sampler_sample` call: sampling (llama.cpp's sampler chain);
- each participant backend's `complete` call, to attribute the calls above to
  the message being generated, and to split the rest, the harness, into what
  runs inside the backend call but outside llama.cpp (the engine's own Python:
  batches, text pieces, thread hand-offs) and what runs between backend calls
  (duologue: the context keeper, the detectors, the SQLite commit, the
  transcript, the event loop).

Loading the model is not counted (timed and subtracted; the older engine loads
one per participant inside the run). Prompt tokens, cached tokens and the time
to the first token come from the stored messages.

The engines sample with the same chain and seeds, but their texts part after
a few tokens: their logits differ a little (the shared engine runs llama.cpp
with flash attention, llama-cpp-python's `Llama` without it by default, and
their thread counts may differ), and at temperature 0.9 a small difference
soon picks another token. Measured on 2026-11-27 with `--threads 1`: the first
message already parts after a few words. So the script says from which message
the texts differ, and prints the time per completion token beside the wall
time: with texts of other lengths it is the fairer comparison. `--threads N`
fixes the thread count of every engine (the participants' `threads`).

`--engines` names the engines to compare, in order; an item is a value of
DUOLOGUE_EMBEDDED_ENGINE ("default" leaves it unset), optionally followed by
`+VAR=VALUE` settings for that run (`shared+VAR=VALUE+VAR2=VALUE2`). The wall-time
ratios are against the first engine.

    python bench/lone_breakdown.py [--engines shared,llama] [--messages 20] [--max-tokens 80] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ENGINE_ENV = "DUOLOGUE_EMBEDDED_ENGINE"


def make_spec(messages: int, max_tokens: int, threads: int | None = None):
    from duologue.spec import ConversationSpec, Participant

    common = dict(max_tokens=max_tokens, temperature=0.9, threads=threads)
    return ConversationSpec(
        participants=[
            Participant(name="a", system="You are a curious philosopher. Ask questions.", seed=11, **common),
            Participant(name="b", system="You are a patient scientist. Explain things.", seed=12, **common),
        ],
        opener="What is the most surprising thing you know?",
        max_messages=messages + 1,  # the opener is message 1
        on_loop="continue",
        on_convergence="continue",
    )


@dataclass
class Turn:
    """The time of one generated message, as the wrappers saw it."""

    enter: float = 0.0  # the backend's complete() called
    leave: float = 0.0  # and returned
    prompt_s: float = 0.0
    prompt_tokens: int = 0  # tokens sent to llama_decode before the first sample
    decode_s: float = 0.0
    decode_tokens: int = 0
    decode_calls: int = 0
    sample_s: float = 0.0
    samples: int = 0
    load_s: float = 0.0  # model loading inside this call (subtracted)


class Clock:
    """The wrappers' shared state: the turn being generated (a lone conversation has one at a time)."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.current: Turn | None = None
        self.loads: list[tuple[float, float]] = []  # (start, seconds) of each model load


def instrument(clock: Clock) -> None:
    """Wrap llama_decode, llama_sampler_sample, the backends' complete() and the model loads."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    from duologue.backends.embedded.backend import BatchedLlamaBackend
    from duologue.backends.embedded.engine import SharedLlamaEngine
    from duologue.backends.embedded.simple import LlamaCppBackend

    perf = time.perf_counter
    decode, sample = low.llama_decode, low.llama_sampler_sample

    def timed_decode(ctx, batch):
        t = perf()
        status = decode(ctx, batch)
        took = perf() - t
        turn = clock.current
        if turn is not None:
            if turn.samples == 0:
                turn.prompt_s += took
                turn.prompt_tokens += batch.n_tokens
            else:
                turn.decode_s += took
                turn.decode_tokens += batch.n_tokens
                turn.decode_calls += 1
        return status

    def timed_sample(smpl, ctx, idx):
        t = perf()
        token = sample(smpl, ctx, idx)
        turn = clock.current
        if turn is not None:
            turn.sample_s += perf() - t
            turn.samples += 1
        return token

    # The shared engine calls them through the package, llama-cpp-python's Llama through its submodule.
    for module in (llama_cpp, low):
        module.llama_decode = timed_decode
        module.llama_sampler_sample = timed_sample

    def wrap_complete(cls) -> None:
        original = cls.complete

        async def complete(self, messages, sampling, on_event=None):
            turn = Turn(enter=perf())
            clock.turns.append(turn)
            clock.current = turn
            try:
                return await original(self, messages, sampling, on_event)
            finally:
                turn.leave = perf()
                clock.current = None

        cls.complete = complete

    def wrap_load(cls, name: str, loaded) -> None:
        original = getattr(cls, name)

        def load(self):
            if loaded(self):
                return original(self)
            t = perf()
            try:
                return original(self)
            finally:
                took = perf() - t
                clock.loads.append((t, took))
                if clock.current is not None:
                    clock.current.load_s += took

        setattr(cls, name, load)

    wrap_complete(BatchedLlamaBackend)
    wrap_complete(LlamaCppBackend)
    wrap_load(SharedLlamaEngine, "load", lambda e: e._model is not None and not e._closed)
    wrap_load(LlamaCppBackend, "_load", lambda b: b._llm is not None and b._formatter is not None)


def child(engine: str, messages: int, max_tokens: int, threads: int | None = None) -> dict:
    """One conversation in this process, instrumented; what the parent prints."""
    import llama_cpp  # noqa: F401  (imported before the clock starts, by either engine)

    from duologue.api import arun_conversation

    clock = Clock()
    instrument(clock)
    spec = make_spec(messages, max_tokens, threads)
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = os.times()
        t0 = time.perf_counter()
        run = asyncio.run(arun_conversation(spec, db=Path(tmp) / "d.db"))
        t1 = time.perf_counter()
        cpu1 = os.times()
    gen = [m for m in run.messages if not m.injected]
    if run.status != "finished" or len(gen) != len(clock.turns):
        raise SystemExit(f"lone_breakdown: the run ended {run.status} ({run.stop_detail}) with {len(gen)} messages")
    load = sum(s for _, s in clock.loads)
    rows = []
    previous = t0
    for m, turn in zip(gen, clock.turns, strict=True):
        window = turn.leave - previous  # from the end of the previous backend call to the end of this one
        outside_load = sum(s for start, s in clock.loads if previous <= start < turn.enter)
        backend = turn.leave - turn.enter - turn.load_s
        llama = turn.prompt_s + turn.decode_s + turn.sample_s
        rows.append(
            {
                "index": m.index,
                "speaker": m.speaker,
                "completion_tokens": m.completion_tokens or 0,
                "accepted_tokens": m.accepted_tokens or 0,  # lookup decoding's drafts that were kept
                "stored_prompt_tokens": m.prompt_tokens or 0,
                "cached_tokens": m.cached_tokens or 0,
                "ttft": m.ttft,
                "finish": m.finish_reason,
                "text_hash": hashlib.sha256(m.content.encode()).hexdigest()[:16],
                **asdict(turn),
                "engine_py_s": backend - llama,  # inside the backend call, outside llama.cpp
                "duologue_s": window - outside_load - turn.load_s - backend,  # between backend calls
                "total_s": window - outside_load - turn.load_s,
            }
        )
        previous = turn.leave
    wall = t1 - t0 - load
    return {
        "engine": engine,
        "wall": wall,
        "tail_s": t1 - previous,  # after the last message: the run's end, its final commit
        "load_s": load,
        "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "process_cpu_s": cpu1.user + cpu1.system,  # imports included: what the parent's look at the machine saw
        "messages": rows,
    }


def parse_engine(item: str) -> dict[str, str | None]:
    """`shared+VAR=VALUE+...`: the environment changes this engine's run needs (None: unset)."""
    name, *settings = item.split("+")
    env: dict[str, str | None] = {ENGINE_ENV: None if name == "default" else name}
    for setting in settings:
        var, eq, value = setting.partition("=")
        if not eq or not var:
            raise SystemExit(f"lone_breakdown: {setting!r} in --engines: expected VAR=VALUE")
        env[var] = value
    return env


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def run_engine(item: str, messages: int, max_tokens: int, threads: int | None = None) -> dict:
    env = dict(os.environ)
    for var, value in parse_engine(item).items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    cmd = [sys.executable, __file__, "--child", item, "--messages", str(messages), "--max-tokens", str(max_tokens)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    b0, j0 = cpu_jiffies()
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    b1, j1 = cpu_jiffies()
    if out.returncode != 0:
        raise SystemExit(f"lone_breakdown: the {item} run failed (exit {out.returncode})")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # The share of the machine's CPU time other programs used meanwhile (jiffies are 1/100 s).
    result["others"] = max(0.0, (b1 - b0 - result["process_cpu_s"] * 100) / max(1, j1 - j0))
    return result


def summary(r: dict) -> dict:
    """Totals of one engine's run: seconds per part (the harness is all the rest of the wall time)."""
    ms = r["messages"]
    prompt = sum(m["prompt_s"] for m in ms)
    decode = sum(m["decode_s"] for m in ms)
    sample = sum(m["sample_s"] for m in ms)
    engine_py = sum(m["engine_py_s"] for m in ms)
    return {
        "engine": r["engine"],
        "wall": r["wall"],
        "prompt_s": prompt,
        "prompt_tokens": sum(m["prompt_tokens"] for m in ms),
        "decode_s": decode,
        "decode_tokens": sum(m["decode_tokens"] for m in ms),
        "sample_s": sample,
        "samples": sum(m["samples"] for m in ms),
        "completion_tokens": sum(m["completion_tokens"] for m in ms),
        "accepted_tokens": sum(m.get("accepted_tokens", 0) for m in ms),
        "engine_py_s": engine_py,
        "harness_s": r["wall"] - prompt - decode - sample,
        "messages": len(ms),
        "others": r.get("others", 0.0),
        "hashes": [m["text_hash"] for m in ms],
    }


def diverges(a: dict, b: dict) -> int | None:
    """The first message two runs' summaries differ in (their engines wrote other text), else None."""
    for i, (x, y) in enumerate(zip(a["hashes"], b["hashes"], strict=False)):
        if x != y:
            return i + 2  # message 1 is the opener
    return None if len(a["hashes"]) == len(b["hashes"]) else min(len(a["hashes"]), len(b["hashes"])) + 2


def measure(
    engines: list[str] | None = None, messages: int = 20, max_tokens: int = 80, threads: int | None = None
) -> dict:
    """Each engine's run and its totals (what `make bench`'s row needs); the first engine is the reference."""
    runs = [run_engine(item, messages, max_tokens, threads) for item in engines or ["shared", "llama"]]
    return {"runs": runs, "summaries": [summary(r) for r in runs]}


def print_breakdown(r: dict) -> None:
    s = summary(r)
    print(
        f"\n{r['engine']}: {s['messages']} messages, {s['completion_tokens']} completion tokens, "
        f"{r['wall']:.2f} s wall (model load {r['load_s']:.1f} s not counted), "
        f"other programs {r['others']:.0%} of the CPUs"
    )
    head = (
        f"{'msg':>3} {'who':3} {'cmpl':>4} {'cached':>6} {'ttft':>6} | {'prompt tok':>10} {'s':>6} | "
        f"{'decode tok':>10} {'s':>6} | {'samples':>7} {'s':>6} | {'engine py':>9} {'duologue':>8} | {'total':>6}"
    )
    print(head)
    print("-" * len(head))
    for m in r["messages"]:
        ttft = f"{m['ttft']:6.2f}" if m["ttft"] is not None else f"{'-':>6}"
        print(
            f"{m['index']:>3} {m['speaker'][:3]:3} {m['completion_tokens']:>4} {m['cached_tokens']:>6} {ttft} | "
            f"{m['prompt_tokens']:>10} {m['prompt_s']:6.2f} | {m['decode_tokens']:>10} {m['decode_s']:6.2f} | "
            f"{m['samples']:>7} {m['sample_s']:6.3f} | {m['engine_py_s']:9.3f} {m['duologue_s']:8.3f} | "
            f"{m['total_s']:6.2f}"
        )
    wall = r["wall"]
    duologue = s["harness_s"] - s["engine_py_s"]  # between backend calls, the run's end included
    print("-" * len(head))
    print(
        f"{'all':>3} {'':3} {s['completion_tokens']:>4} {'':>6} {'':>6} | {s['prompt_tokens']:>10} "
        f"{s['prompt_s']:6.2f} | {s['decode_tokens']:>10} {s['decode_s']:6.2f} | {s['samples']:>7} "
        f"{s['sample_s']:6.3f} | {s['engine_py_s']:9.3f} {duologue:8.3f} | {wall:6.2f}"
    )
    parts = [
        ("prompt evaluation", s["prompt_s"], f"{s['prompt_tokens'] / max(s['prompt_s'], 1e-9):.0f} tok/s"),
        ("decoding", s["decode_s"], f"{s['decode_tokens'] / max(s['decode_s'], 1e-9):.0f} tok/s"),
        ("sampling", s["sample_s"], f"{s['sample_s'] / max(1, s['samples']) * 1e3:.3f} ms per sample"),
        ("harness: engine's Python", s["engine_py_s"], "inside the backend call, outside llama.cpp"),
        ("harness: duologue", duologue, "detectors, SQLite, transcript, context, event loop"),
    ]
    for label, seconds, note in parts:
        print(f"  {label:26} {seconds:7.2f} s {seconds / wall:6.1%}   {note}")
    share = s["accepted_tokens"] / max(1, s["completion_tokens"])
    print(f"  completion tokens that were accepted lookup drafts: {s['accepted_tokens']} ({share:.0%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="shared,llama", help="comma-separated, the reference first")
    ap.add_argument("--messages", type=int, default=20, help="generated messages (the opener not counted)")
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument(
        "--threads", type=int, help="llama.cpp threads for every engine (default: each engine picks its own)"
    )
    ap.add_argument("--quick", action="store_true", help="8 messages of at most 48 tokens: checks that it runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.messages, args.max_tokens = 8, 48
    if args.child:
        print(json.dumps(child(args.child, args.messages, args.max_tokens, args.threads)))
        return
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines:
        raise SystemExit("lone_breakdown: --engines names no engine")
    for item in engines:
        parse_engine(item)  # a malformed item fails before anything runs
    load = os.getloadavg()
    print(
        f"a lone conversation: {args.messages} messages x {args.max_tokens} max tokens, engines {', '.join(engines)}; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    result = measure(engines, args.messages, args.max_tokens, args.threads)
    for r in result["runs"]:
        print_breakdown(r)
    ref = result["summaries"][0]
    print(f"\nwall time against {ref['engine']} ({ref['wall']:.2f} s):")
    for s in result["summaries"][1:]:
        print(
            f"  {s['engine']:24} {s['wall']:7.2f} s   {s['engine']} / {ref['engine']}: {s['wall'] / ref['wall']:.2f}x "
            f"(per completion token: {s['wall'] / max(1, s['completion_tokens']) * 1e3:.1f} ms against "
            f"{ref['wall'] / max(1, ref['completion_tokens']) * 1e3:.1f} ms)"
        )
        at = diverges(ref, s)
        if at is not None:
            print(
                f"  {'':24} its text differs from message {at} on ({s['completion_tokens']} completion tokens "
                f"against {ref['completion_tokens']}): compare the time per completion token too"
            )


if __name__ == "__main__":
    main()
