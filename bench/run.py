"""`make bench`: every benchmark of bench/, measured side by side in this run, as one table.

Rows (see each script's docstring for the details of what it compares):

1. bench/turn_cost.py  a 40-message embedded conversation: `duologue run`'s code path against a
   naive loop re-sending the whole history to one context, and against the raw engine floor
   (a bare llama.cpp context replaying the same tokens, with the same sampler chain);
1b. bench/lone_breakdown.py  a lone 20-message x 80-token conversation on the default engine, on the
   same engine as it was before (Q4_1, no lookup) and on the first one (Llama per participant): wall
   time, and where the default engine's goes (prompt evaluation, decoding, sampling, harness);
2. bench/turn_cost.py  (the same run) time per completion token at message 5 against message 40,
   and the prompt tokens evaluated per message;
3. bench/concurrency.py  K concurrent embedded conversations against the same K one after
   another with the fastest of the three weight files (Q4_1, Q8_0, BF16): aggregate completion
   tokens/s, and memory per conversation;
3c. bench/listener_prefill.py  the listener reading the speaker's tokens in the same decode calls,
   against a chunk at the message's end: the calls either way, timed on the bare engine;
3b. bench/lookup.py  lookup decoding on self-talk conversations that loop (examples/self-talk.toml's
   settings): completion tokens/s with and without, and the share of drafts accepted;
4. bench/loop_savings.py  an experiment that loops, with and without early loop stopping;
5. bench/harness_overhead.py  duologue's own CPU cost per message against an instant server;
6. bench/semantic_cost.py  the semantic detectors' cost per message on the live path (embedding,
   theme scoring, convergence and attractor watchers; the loop detectors beside them), and
   `duologue report` on a stored experiment of 1,000 runs;
7. bench/analyze_scale.py  `duologue analyze` and the viewer's run page on runs of 2,000 and 10,000
   messages (wall seconds, and the CPU seconds that the wall time would be on an idle machine);
8. bench/import_scale.py  a synthetic corpus of 875 UniversalBackrooms logs in the real folder's shapes
   and sizes: `duologue import DIR --experiment` and `duologue report` over it (wall), against one
   `duologue import FILE` per log (bench/import_corpus.py PATH does the import on a real folder).
9. bench/extra_bufts.py  what the native-crash guard costs: each weight file with llama.cpp's extra buffer
   types on and off (tokens/s, or the signal that killed it), and the probe's one-time cost.
10. bench/attractor_eval.py  the attractor verdict on 216 conversations written blind (bench/attractor_eval/):
   per family precision / recall, and drifts found with their onset within ±2 messages, dev and test halves.
11. bench/caching_cost.py  the input cost of a 30-message Anthropic conversation with duologue's cache breakpoints
   and without, from the request bodies it sends and genai-prices' bundled prices.

    python bench/run.py [--quick]     (--quick: smaller sizes, to check the scripts run)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import analyze_scale  # noqa: E402
import attractor_eval  # noqa: E402
import caching_cost  # noqa: E402
import concurrency  # noqa: E402
import extra_bufts  # noqa: E402
import import_scale  # noqa: E402
import listener_prefill  # noqa: E402
import lookup  # noqa: E402
import semantic_cost  # noqa: E402
from machine import machine  # noqa: E402

# Today's engine as it was before the weights and lookup decoding (issue #14's yardstick): the shared engine
# on the shipped Q4_1 file, no lookup.
ISSUE_ENGINE = "shared+DUOLOGUE_WEIGHTS=q4_1+DUOLOGUE_LOOKUP=0"
ENGINE_NAMES = {"shared": "default", ISSUE_ENGINE: "Q4_1 without lookup", "llama": "first engine (Llama)"}


def lone_rows(lb: list[dict]) -> list[tuple[str, str, str, str, str]]:
    """Row 1b: each other engine's lone conversation against the default engine's, whole and per token."""
    ref, rows = lb[0], []
    for other in lb[1:]:
        name = ENGINE_NAMES.get(other["engine"], other["engine"])
        rows.append(
            (
                "1b",
                f"lone {ref['messages']}-message conversation: {name} / default engine (wall)",
                f"{other['wall']:.1f}s / {ref['wall']:.1f}s",
                f"{other['wall'] / ref['wall']:.2f}x",
                "≥ 1.25x" if other["engine"] == ISSUE_ENGINE else "",
            )
        )
        ms = [x["wall"] / x["completion_tokens"] * 1e3 for x in (other, ref)]
        rows.append(
            (
                "1b",
                "  the same per completion token (their texts part: lone_breakdown.py says where)",
                f"{ms[0]:.1f} / {ms[1]:.1f} ms",
                f"{ms[0] / ms[1]:.2f}x",
                "",
            )
        )
    return rows


def in_child(module: str, function: str, **kwargs) -> dict:
    """module.function(**kwargs) in a fresh Python process, its result as JSON.

    Each row gets a process of its own: llama.cpp's OpenMP keeps a thread team
    per calling thread, and the teams of an earlier row would slow a later one.
    """
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import {module}; "
        f"print(json.dumps({module}.{function}(**json.loads(sys.argv[1]))))"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench: {module}.{function} failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def step(label: str) -> float:
    print(f"[{time.strftime('%H:%M:%S')}] {label} …", file=sys.stderr, flush=True)
    return time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: checks that everything runs, in a minute or two")
    args = ap.parse_args()
    q = args.quick
    n_msgs, ks = (10, [1, 2]) if q else (40, [1, 2, 4, 8])
    t_start = time.perf_counter()

    t = step(f"rows 1-2: a {n_msgs}-message conversation, live, on the floor, and naively")
    concurrency.wait_quiet(0.1, 120)
    tc = in_child("turn_cost", "measure", messages=n_msgs, max_tokens=64, n_ctx=4096)
    t_tc = time.perf_counter() - t
    step("row 1b: a lone conversation on each engine, broken down")
    lb = in_child(
        "lone_breakdown",
        "measure",
        engines=["shared", ISSUE_ENGINE, "llama"],
        messages=8 if q else 20,
        max_tokens=48 if q else 80,
    )["summaries"]

    t = step(f"row 3: K = {', '.join(map(str, ks))} concurrent conversations and one after another")
    conc_results = concurrency.measure_all(ks, 1 if q else 3, 6 if q else 10, 64, 2048, llama=True, quiet_wait=60)
    conc = concurrency.rows(conc_results)
    llama_tps = statistics.median(concurrency.tps(conc_results, "llama", 1))
    t_conc = time.perf_counter() - t

    t = step("row 3b: lookup decoding on self-talk conversations, with and without")
    # The example's temperatures, each on its own, long enough to fall into repeating (0.7 does after about
    # 20 messages); and greedy, which loops soonest.
    lk_long = dict(messages=10 if q else 40, conversations=2, quiet_wait=60)
    lks = [(lookup.measure_all(**lk_long, temperatures=t), t) for t in ("0.7", "1.2")]
    lks.append((lookup.measure_all(messages=10 if q else 16, conversations=2 if q else 4, temperatures="0"), "0"))
    t_lk = time.perf_counter() - t

    t = step("row 3c: the listener reading while the speaker speaks, as decode calls on the bare engine")
    lp = listener_prefill.measure(tokens=16 if q else 64, repeats=1 if q else 3)
    t_lp = time.perf_counter() - t

    t = step("row 4: an experiment that loops, with and without early stopping")
    ls = in_child("loop_savings", "measure_all", messages=12 if q else 30)
    t_ls = time.perf_counter() - t

    t = step("row 5: the harness against an instant server")
    ho = in_child("harness_overhead", "measure_all", conversations=20 if q else 200, messages=20)
    t_ho = time.perf_counter() - t

    t = step("row 6: semantic cost per message, and `duologue report` on a stored experiment")
    sc = in_child("semantic_cost", "measure_all", runs=100 if q else 1000, long=1 if q else 4, passes=1 if q else 3)
    t_sc = time.perf_counter() - t

    t = step("row 7: `duologue analyze` and the run page on long runs")
    sizes = [300, 1000] if q else [2000, 10000]
    sca = in_child("analyze_scale", "measure_all", sizes=sizes, repeats=1 if q else 3)
    t_sca = time.perf_counter() - t

    t = step("row 8: a corpus of UniversalBackrooms logs imported as a collection, and its report")
    isc = import_scale.measure(logs=200 if q else 875, sample=5 if q else 20)
    t_isc = time.perf_counter() - t
    t = step("row 9: llama.cpp's extra buffer types on and off, per weight file")
    eb = in_child("extra_bufts", "measure", repeats=1 if q else 3)
    t_eb = time.perf_counter() - t
    t = step("row 10: the attractor verdict on the blind evaluation set")
    ae = in_child("attractor_eval", "measure", half="both")
    t_ae = time.perf_counter() - t
    t = step("row 11: a 30-message Anthropic conversation's input cost with and without cache breakpoints")
    cc = caching_cost.measure()
    t_cc = time.perf_counter() - t

    # -- the table ---------------------------------------------------------------------------
    live_wall, floor, naive = tc["wall"], sum(tc["floor"]), sum(tc["naive"])
    ev = tc["evaluated"]
    slowdown = tc["late_ms_per_token"] / tc["early_ms_per_token"]
    floor_slowdown = tc["floor_late_ms_per_token"] / tc["floor_early_ms_per_token"]
    stop, cont = ls["stop"], ls["continue"]
    last = tc["messages"]
    lines = [
        (
            "1",
            f"{last}-message conversation: naive loop / duologue (total time)",
            f"{naive:.1f}s / {live_wall:.1f}s",
            f"{naive / live_wall:.2f}x",
            "≥ 3x",
        ),
        (
            "1",
            f"duologue / raw engine floor with sampling (without: {sum(tc['floor_no_sampling']):.1f}s)",
            f"{live_wall:.1f}s / {floor:.1f}s",
            f"{live_wall / floor:.2f}x",
            "≤ 1.3x",
        ),
        (
            "2",
            f"ms per completion token, message 5 → {last}: duologue",
            f"{tc['early_ms_per_token']:.1f} → {tc['late_ms_per_token']:.1f}",
            f"{tc['late_ms_per_token'] / tc['early_ms_per_token']:.2f}x",
            "",
        ),
        (
            "2",
            f"ms per completion token, message 5 → {last}: raw engine floor",
            f"{tc['floor_early_ms_per_token']:.1f} → {tc['floor_late_ms_per_token']:.1f}",
            f"{tc['floor_late_ms_per_token'] / tc['floor_early_ms_per_token']:.2f}x",
            "",
        ),
        ("2", "duologue's slowdown / the floor's slowdown", "", f"{slowdown / floor_slowdown:.2f}x", "≤ 1.2x"),
        (
            "2",
            "prompt tokens evaluated per message: median of first 5 / last 5",
            f"{statistics.median(ev[1:6]):.0f} / {statistics.median(ev[-5:]):.0f}",
            f"{statistics.median(ev[-5:]) / statistics.median(ev[1:6]):.2f}x",
            "flat",
        ),
        *lone_rows(lb),
        (
            "1b",
            f"{lb[0]['engine']}: prompt eval / decoding / sampling / harness (share of wall)",
            " / ".join(f"{lb[0][k] / lb[0]['wall']:.0%}" for k in ("prompt_s", "decode_s", "sample_s", "harness_s")),
            "",
            "",
        ),
    ]
    for row in conc:
        lines.append(
            (
                "3",
                f"K={row['k']} concurrent ({row['concurrent_weights'].upper()}, {row['borrowed']:.0%} of steps on "
                "borrowed cores) / fastest one after another (completion tok/s)",
                f"{row['concurrent']:.0f} / {row['sequential']:.0f}",
                f"{row['ratio']:.2f}x",
                "≥ 1.8x" if row["k"] == 8 else "",
            )
        )
    for row in conc:
        if row["k"] > 1:
            lines.append(
                (
                    "3",
                    f"K={row['k']} concurrent / older engine (Llama per participant) one at a time",
                    f"{row['concurrent']:.0f} / {llama_tps:.0f}",
                    f"{row['vs_llama']:.2f}x",
                    "",
                )
            )
    lines.append(
        (
            "3",
            f"one after another at K={conc[-1]['k']}: Q4_1 / Q8_0 / BF16 weights (completion tok/s)",
            " / ".join(f"{conc[-1][f'sequential_{w}']:.0f}" for w in ("q4_1", "q8_0", "bf16")),
            "",
            "",
        )
    )
    top = conc[-1]
    lines.append(
        (
            "3",
            f"memory per conversation at K={top['k']}: KV cache / peak RSS growth",
            f"{top['kv_mb']:.0f} MB / {top['rss_growth_mb']:.0f} MB",
            "",
            "bounded",
        )
    )
    for r, temps in lks:
        accepted = r["accepted"] / r["drafted"] if r["drafted"] else 0.0
        lines += [
            (
                "3b",
                f"lookup on / off, {r['conversations']} self-talk conversations of {r['messages']} messages "
                f"at T={temps}, {r['weights'].upper()} (tok/s)",
                f"{r['on']:.0f} / {r['off']:.0f}",
                f"{r['ratio']:.2f}x",
                # The target is for conversations that loop: those where most tokens repeat earlier ones.
                "≥ 1.5x" if r["copied"] >= 0.5 else "",
            ),
            (
                "3b",
                f"  T={temps}: completion tokens that were accepted drafts; flagged looping "
                f"{r['looping']} of {r['conversations']}",
                f"{r['accepted']} / {r['tokens']}",
                f"{r['copied']:.0%}",
                "",
            ),
            (
                "3b",
                f"  T={temps}: drafts accepted / drafted (same text both ways: "
                + ("yes" if r["same_text"] else "no")
                + ")",
                f"{r['accepted']} / {r['drafted']}",
                f"{accepted:.0%}",
                "",
            ),
        ]
    for r in lp:
        where = "lone" if r["k"] == 1 else f"{r['k']} conversations"
        lines.append(
            (
                "3c",
                f"chunk at the end / listener prefill: {where}, {r['weights'].upper()}, {r['threads']} thread"
                + ("s" if r["threads"] > 1 else "")
                + " (s per message round)",
                f"{r['today_s']:.2f}s / {r['prefill_s']:.2f}s",
                f"{r['ratio']:.2f}x",
                "> 1x: it pays",
            )
        )
    lines += [
        (
            "4",
            f"early loop stopping, {ls['conversations']} conversations of ≤{ls['messages']} messages: tokens",
            f"{stop['tokens']} / {cont['tokens']}",
            f"{1 - stop['tokens'] / cont['tokens']:.0%} saved",
            "",
        ),
        (
            "4",
            "early loop stopping: wall time",
            f"{stop['wall']:.1f}s / {cont['wall']:.1f}s",
            f"{1 - stop['wall'] / cont['wall']:.0%} saved",
            "",
        ),
        (
            "5",
            f"harness CPU per message, {ho['peak']} conversations in flight: duologue / bare SDK",
            f"{ho['per_cpu_ms']:.2f} / {ho['sdk_ms']:.2f} ms",
            f"{ho['per_cpu_ms'] - ho['sdk_ms']:.2f} ms own",
            "< 2 ms",
        ),
    ]
    lines += [("6", what, measured, "", goal) for what, measured, goal in semantic_cost.rows(sc["live"], sc["report"])]
    lines += [("7", what, measured, "", goal) for what, measured, goal in analyze_scale.rows(sca)]
    lines += [("8", what, measured, ratio, goal) for what, measured, ratio, goal in import_scale.rows(isc)]
    lines += [("9", what, measured, ratio, "") for what, measured, ratio in extra_bufts.rows(eb)]
    lines += [("10", what, measured, "", goal) for what, measured, goal in attractor_eval.rows(ae)]
    lines += [("11", what, measured, ratio, goal) for what, measured, ratio, goal in caching_cost.rows(cc)]
    print(f"\nduologue benchmarks, {date.today().isoformat()}, {machine()}")
    print(
        f"took {time.perf_counter() - t_start:.0f} s (rows 1-2 {t_tc:.0f} s, row 3 {t_conc:.0f} s, "
        f"row 3b {t_lk:.0f} s, row 3c {t_lp:.0f} s, "
        f"row 4 {t_ls:.0f} s, row 5 {t_ho:.0f} s, row 6 {t_sc:.0f} s, row 7 {t_sca:.0f} s, row 8 {t_isc:.0f} s, "
        f"row 9 {t_eb:.0f} s, row 10 {t_ae:.0f} s, row 11 {t_cc:.0f} s)\n"
    )
    w = max(len(x[1]) for x in lines)
    v = max(len(x[2]) for x in lines)
    print(f"{'row':3}  {'what is compared':{w}}  {'measured':>{v}}  {'ratio':>12}  target")
    for num, what, measured, ratio, target in lines:
        print(f"{num:>3}  {what:{w}}  {measured:>{v}}  {ratio:>12}  {target}")
    others = max(r["others"] for r in conc)
    if others > 0.2:
        print(f"\nnote: other programs used up to {others:.0%} of the CPUs during row 3; its numbers are noisy")


if __name__ == "__main__":
    main()
