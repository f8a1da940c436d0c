"""What early loop stopping saves: one experiment that loops, run with and without it.

The same 6 embedded self-talk conversations (temperature 0 with short replies,
which SmolLM2 soon turns into verbatim loops), once with `on_loop = "stop"`
and once with `on_loop = "continue"`, side by side in this run. Prints
completion tokens and generation time of each, and what stopping saved.

    python bench/loop_savings.py [--messages 30]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from duologue.batch import arun_experiment
from duologue.spec import ExperimentSpec, Participant
from duologue.store import Store

OPENERS = ["Hi.", "Hello!", "Good morning.", "What is your name?", "Tell me a joke.", "How are you?"]


def experiment(on_loop: str, messages: int) -> ExperimentSpec:
    return ExperimentSpec(
        name=f"loops-{on_loop}",
        pairings="all_with_self",
        openers=OPENERS,
        temperatures=[0.0],
        max_messages=messages,
        on_loop=on_loop,
        on_convergence="continue",
        participants=[Participant(name="smol", max_tokens=32, context_length=2048)],
    )


def measure(on_loop: str, messages: int, db: Path) -> dict:
    t0 = time.perf_counter()
    asyncio.run(arun_experiment(experiment(on_loop, messages), db=db))
    wall = time.perf_counter() - t0
    with Store(db) as store:
        row = store.conn.execute(
            """SELECT COUNT(*), COALESCE(SUM(m.completion_tokens), 0), COALESCE(SUM(m.latency), 0)
               FROM messages m JOIN runs r ON r.id = m.run_id WHERE r.experiment_id = ?""",
            (f"loops-{on_loop}",),
        ).fetchone()
        looped = store.conn.execute(
            "SELECT COUNT(*) FROM runs WHERE experiment_id = ? AND loop_period IS NOT NULL", (f"loops-{on_loop}",)
        ).fetchone()[0]
    return {"messages": row[0], "tokens": row[1], "seconds": row[2], "wall": wall, "looped": looped}


def measure_all(messages: int = 30) -> dict:
    """The same experiment with and without early stopping, side by side."""
    with tempfile.TemporaryDirectory() as tmp:
        stop = measure("stop", messages, Path(tmp) / "d.db")
        cont = measure("continue", messages, Path(tmp) / "d.db")
    return {"stop": stop, "continue": cont, "conversations": len(OPENERS), "messages": messages}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=30)
    args = ap.parse_args()
    r = measure_all(args.messages)
    stop, cont = r["stop"], r["continue"]
    print(
        f"{len(OPENERS)} conversations of up to {args.messages} messages; "
        f"{cont['looped']} of them fall into a verbatim loop"
    )
    print(f"{'':24} {'messages':>9} {'tokens':>8} {'gen. seconds':>13}")
    for label, r in (("on_loop = stop", stop), ("on_loop = continue", cont)):
        print(f"{label:24} {r['messages']:9d} {r['tokens']:8d} {r['seconds']:13.1f}")
    print(
        f"early stopping saved {cont['tokens'] - stop['tokens']} tokens "
        f"({1 - stop['tokens'] / cont['tokens']:.0%}) and {cont['seconds'] - stop['seconds']:.1f} s "
        f"({1 - stop['seconds'] / cont['seconds']:.0%}); continue/stop = {cont['seconds'] / stop['seconds']:.2f}x"
    )


if __name__ == "__main__":
    main()
