"""Concurrent embedded conversations against the same conversations one after another.

For K = 1, 2, 4, 8 runs K real duologue conversations on the embedded model
(two participants each, different seeds) three ways, side by side in this run:
all K at once in one `EmbeddedPool` (their tokens decoded together by the
shared engine, with the weights `auto` picks for such a pool: BF16 where
several conversations share a shard and the CPU has BF16 instructions, else
Q8_0), and the same K one after another with each of the three weight files
(the shipped Q4_1, Q8_0 and BF16; each with lookup decoding as it defaults
for them). The ratio is against the fastest of the three one-after-another
configurations, repeat by repeat. Prints aggregate completion tokens per
second, the ratio, memory per conversation (the KV cache the shared context
holds divided by K, and the growth of the process's peak RSS), and the share
of the concurrent steps a shard ran on the cores of shards whose
conversations had ended.

Each measurement runs in a fresh Python process (so peak RSS is its own) after
the model is loaded, and is repeated; the table shows medians and the spread
(min–max). Other programs may be using the CPUs (llama.cpp's threads then wait
on each other and slow down many times over): each measurement waits for a
quiet moment first, and the share of the CPUs others used meanwhile is shown.
`--engine llama` adds the older backend (a llama-cpp-python `Llama` per
participant) one after another, for reference; `--unborrowed` adds the K at
once with each shard on its own core only (no shard borrowing the core of
one whose conversations ended), and prints the ratio repeat by repeat.

    python bench/concurrency.py [--ks 1,2,4,8] [--repeats 3] [--messages 10] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_specs(k: int, messages: int, max_tokens: int, n_ctx: int, weights: str = "auto"):
    from duologue.spec import ConversationSpec, Participant

    topics = [
        "the sea",
        "old maps",
        "bees",
        "clocks",
        "rivers",
        "glass",
        "mushrooms",
        "winter",
        "bridges",
        "comets",
        "salt",
        "owls",
        "paper",
        "volcanoes",
        "violins",
        "deserts",
    ]
    specs = []
    for i in range(k):
        common = dict(max_tokens=max_tokens, context_length=n_ctx, temperature=0.8, weights=weights)
        specs.append(
            ConversationSpec(
                participants=[
                    Participant(
                        name="a", system="You are a curious philosopher. Ask questions.", seed=100 + i, **common
                    ),
                    Participant(
                        name="b", system="You are a patient scientist. Explain things.", seed=200 + i, **common
                    ),
                ],
                opener=f"What do you find most interesting about {topics[i % len(topics)]}?",
                max_messages=messages,
            )
        )
    return specs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def measure(mode: str, k: int, messages: int, max_tokens: int, n_ctx: int) -> dict:
    """One measurement, in this process: K conversations concurrently or one after another."""
    from duologue.api import arun_conversation
    from duologue.backends.embedded.common import LlamaSettings
    from duologue.backends.embedded.pool import EmbeddedPool, embedded_streams, shards_for
    from duologue.backends.embedded.weights import file_type

    # One after another on each weight file (the fastest counts); concurrent with what `auto` picks.
    weights = {"sequential": "q4_1", "sequential-q8_0": "q8_0", "sequential-bf16": "bf16"}.get(mode, "auto")
    specs = make_specs(k, messages, max_tokens, n_ctx, weights)
    loads, loaded = [0.0], ""
    if mode == "llama":  # the older engine loads a model per participant inside the run: not counted
        from duologue.backends.embedded.simple import LlamaCppBackend

        original = LlamaCppBackend._load

        def timed_load(self):
            if self._llm is not None:
                return original(self)
            t = time.perf_counter()
            llm = original(self)
            loads[0] += time.perf_counter() - t
            return llm

        LlamaCppBackend._load = timed_load
    os.environ["DUOLOGUE_EMBEDDED_ENGINE"] = "llama" if mode == "llama" else "shared"
    together = mode.startswith("concurrent")  # "concurrent-unborrowed": each shard on its own core only
    streams = embedded_streams(specs, k if together else 1)
    shards = shards_for(k) if together else 1  # as `duologue batch` does
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedPool(streams, shards, k if together else 1) as pool:
            if mode != "llama":  # load the model before the clock starts (the older engine loads per participant)
                warm = [pool.backend("local/smollm2", LlamaSettings(n_ctx, weights=weights)) for _ in range(shards)]
                loaded = file_type(warm[0].path) or "q4_1"
                for backend in warm:
                    await asyncio.to_thread(backend.engine.load)
                for backend in warm:
                    await backend.aclose()
            if mode == "concurrent-unborrowed":
                for engine in pool.engines:
                    engine.siblings = []  # no shard decodes on the core of a shard whose conversations ended
            base_rss = peak_rss_mb()
            t0 = time.perf_counter()
            if together:
                runs = await asyncio.gather(
                    *(arun_conversation(s, db=Path(tmp) / f"{i}.db", watchers=[]) for i, s in enumerate(specs))
                )
            else:
                runs = [await arun_conversation(s, db=Path(tmp) / f"{i}.db", watchers=[]) for i, s in enumerate(specs)]
            seconds = time.perf_counter() - t0 - loads[0]
            kv = sum(e.kv_bytes for e in pool.engines)
            stats = [e.stats for e in pool.engines]
    tokens = sum(m.completion_tokens or 0 for r in runs for m in r.messages if not m.injected)
    errors = [r.stop_detail for r in runs if r.status != "finished"]
    return {
        "mode": mode,
        "k": k,
        "weights": loaded if mode != "llama" else "",
        "tokens": tokens,
        "seconds": seconds,
        "kv_mb": kv / 2**20,
        "rss_mb": peak_rss_mb(),
        "base_rss_mb": base_rss,
        "stats": stats,
        "errors": errors,
    }


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_quiet(busy_max: float, timeout: float) -> float:
    """Wait (up to `timeout` s) until the machine is mostly idle; returns the busy share last seen."""
    deadline = time.monotonic() + timeout
    while True:
        b0, t0 = cpu_jiffies()
        time.sleep(2)
        b1, t1 = cpu_jiffies()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy <= busy_max or time.monotonic() > deadline:
            return busy


def run_child(mode: str, k: int, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--k",
        str(k),
        "--messages",
        str(args.messages),
        "--max-tokens",
        str(args.max_tokens),
        "--context-length",
        str(args.context_length),
    ]
    wait_quiet(args.quiet, args.quiet_wait)
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, t0 = cpu_jiffies()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    b1, t1 = cpu_jiffies()
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # What other programs used meanwhile, as a share of the machine: the noise in this measurement.
    own = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) * os.sysconf("SC_CLK_TCK")
    result["others"] = max(0.0, (b1 - b0 - own) / max(1, t1 - t0))
    return result


def summary(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.1f} ({min(xs):.0f}–{max(xs):.0f})"


def measure_all(
    ks: list[int],
    repeats: int,
    messages: int,
    max_tokens: int,
    context_length: int,
    llama: bool = False,
    quiet: float = 0.1,
    unborrowed: bool = False,
    quiet_wait: float = 300,
) -> dict:
    """Every measurement of the table, each in a child process: {(mode, K): [result, ...]}."""
    args = argparse.Namespace(
        messages=messages, max_tokens=max_tokens, context_length=context_length, quiet=quiet, quiet_wait=quiet_wait
    )
    modes = ["sequential", "sequential-q8_0", "sequential-bf16", "concurrent"] + (["llama"] if llama else [])
    modes += ["concurrent-unborrowed"] if unborrowed else []
    results: dict[tuple[str, int], list[dict]] = {}
    for rep in range(repeats):
        for k in ks:
            # Alternate the order, so that a slow spell on the machine does not always hit the same mode.
            for mode in modes if rep % 2 == 0 else list(reversed(modes)):
                if mode == "llama" and k != 1:
                    continue  # the older engine one conversation at a time: K does not change its rate
                r = run_child(mode, k, args)
                results.setdefault((mode, k), []).append(r)
                print(
                    f"  repeat {rep + 1} K={k} {mode:15} {r['tokens']:5d} tokens in {r['seconds']:6.1f}s "
                    f"= {r['tokens'] / r['seconds']:6.1f} tok/s, other programs {r['others']:4.0%} of the CPUs"
                    + (f"  ERRORS {r['errors']}" if r["errors"] else ""),
                    file=sys.stderr,
                    flush=True,
                )
    return results


def tps(results: dict, mode: str, k: int) -> list[float]:
    return [r["tokens"] / r["seconds"] for r in results[(mode, k)]]


def rows(results: dict) -> list[dict]:
    """Per K: medians of aggregate tokens/s both ways, their ratio, and memory per conversation."""
    ks = sorted({k for mode, k in results if mode == "concurrent"})
    out = []
    base_rss = statistics.median(r["rss_mb"] for r in results[("concurrent", ks[0])])
    llama = statistics.median(tps(results, "llama", 1)) if ("llama", 1) in results else None
    for k in ks:
        # One after another: the fastest weights, repeat by repeat (Q4_1, Q8_0 or BF16).
        q4, q8, bf = (tps(results, m, k) for m in ("sequential", "sequential-q8_0", "sequential-bf16"))
        seq, conc = [max(abc) for abc in zip(q4, q8, bf, strict=True)], tps(results, "concurrent", k)
        ratios = [c / s for c, s in zip(conc, seq, strict=False)]
        rss = statistics.median(r["rss_mb"] for r in results[("concurrent", k)])
        out.append(
            {
                "k": k,
                "sequential": statistics.median(seq),
                "sequential_q4_1": statistics.median(q4),
                "sequential_q8_0": statistics.median(q8),
                "sequential_bf16": statistics.median(bf),
                "concurrent_weights": results[("concurrent", k)][0]["weights"],
                # Steps a shard ran on the cores of shards whose conversations had ended (decode.py).
                "borrowed": statistics.median(
                    sum(s["borrowed_steps"] for s in r["stats"]) / max(1, sum(s["steps"] for s in r["stats"]))
                    for r in results[("concurrent", k)]
                ),
                "concurrent": statistics.median(conc),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "vs_llama": statistics.median(conc) / llama if llama else None,
                "kv_mb": statistics.median(r["kv_mb"] for r in results[("concurrent", k)]) / k,
                "rss_growth_mb": (rss - base_rss) / (k - ks[0]) if k != ks[0] else None,
                "others": max(r["others"] for mode_k, rs in results.items() if mode_k[1] == k for r in rs),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,2,4,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--messages", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--context-length", type=int, default=2048)
    ap.add_argument(
        "--engine",
        choices=["shared", "llama"],
        action="append",
        default=[],
        help="add 'llama' to also time the older backend one conversation after another",
    )
    ap.add_argument(
        "--quiet",
        type=float,
        default=0.1,
        help="before each measurement, wait until other programs use at most this share of the CPUs",
    )
    ap.add_argument("--quiet-wait", type=float, default=300, help="but wait at most this many seconds")
    ap.add_argument(
        "--unborrowed",
        action="store_true",
        help="also run the concurrent conversations with each shard on its own core only (no borrowing)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        result = asyncio.run(measure(args.child, args.k, args.messages, args.max_tokens, args.context_length))
        print(json.dumps(result))
        return

    ks = [int(k) for k in args.ks.split(",")]
    results = measure_all(
        ks,
        args.repeats,
        args.messages,
        args.max_tokens,
        args.context_length,
        llama="llama" in args.engine,
        quiet=args.quiet,
        quiet_wait=args.quiet_wait,
        unborrowed=args.unborrowed,
    )
    print(
        f"\n{args.messages} messages per conversation, max {args.max_tokens} tokens per message, "
        f"context {args.context_length}, {os.cpu_count()} CPUs; medians of {args.repeats}\n"
    )
    head = f"{'K':>3} {'one after another: Q4_1':>24} {'Q8_0':>9} {'BF16':>9} {'concurrent':>11}"
    head += f" {'ratio (min-max)':>18}"
    print(head + f" {'vs Llama/participant':>21} {'KV/conv MB':>11} {'RSS +MB/conv':>13}")
    for row in rows(results):
        vs = f"{row['vs_llama']:.2f}x" if row["vs_llama"] else "-"
        grow = f"{row['rss_growth_mb']:.0f}" if row["rss_growth_mb"] is not None else "-"
        print(
            f"{row['k']:>3} {row['sequential_q4_1']:20.1f} t/s {row['sequential_q8_0']:5.1f} t/s "
            f"{row['sequential_bf16']:5.1f} t/s {row['concurrent']:7.1f} t/s "
            f"{row['ratio']:6.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) {vs:>21} "
            f"{row['kv_mb']:11.1f} {grow:>13}"
        )
    print("concurrent weights: " + ", ".join(f"K={row['k']} {row['concurrent_weights']}" for row in rows(results)))
    print(
        "concurrent steps on borrowed cores (a shard using those of shards whose conversations had ended): "
        + ", ".join(f"K={row['k']} {row['borrowed']:.0%}" for row in rows(results))
    )
    for k in sorted(k for mode, k in results if mode == "concurrent-unborrowed"):
        own, borrowing = tps(results, "concurrent-unborrowed", k), tps(results, "concurrent", k)
        ratios = [b / o for b, o in zip(borrowing, own, strict=True)]
        print(
            f"K={k} concurrent, borrowing cores / each shard on its own core: {statistics.median(borrowing):.1f} / "
            f"{statistics.median(own):.1f} tokens/s, {statistics.median(ratios):.3f}x (repeats: "
            + ", ".join(f"{r:.3f}" for r in ratios)
            + ")"
        )
    if ("llama", 1) in results:
        print(
            f"the older engine (a Llama per participant), one conversation at a time: "
            f"{statistics.median(tps(results, 'llama', 1)):.1f} tokens/s (model loads not counted)"
        )


if __name__ == "__main__":
    main()
