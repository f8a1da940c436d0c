"""`duologue doctor`: how the embedded engine runs on this machine (the probe's verdicts, the weights `auto` picks)."""

from __future__ import annotations

import shutil

import click
from rich.text import Text

from ..errors import DuologueError
from .common import print_json
from .layout import Col, console_for, print_table, width_option


@click.command()
@click.option("--again", is_flag=True, help="Forget the cached verdicts and probe again.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts and choices as JSON.")
@width_option
def doctor(again, as_json, width) -> None:
    """Check how the embedded engine runs on this CPU, once per machine.

    llama.cpp's extra buffer types (the AMX kernels of recent Intel Xeons, and
    repacked weights) crash or compute wrongly on some machines. Before the
    embedded engine first loads a weight file, a child process loads it with
    them and without them and compares a few greedy tokens; where they crash or
    differ, the file is loaded without them. The probe also times each weight
    file, and `auto` runs the shipped model on the fastest here. This command
    runs the probe for the shipped model's three weight files (Q4_1, Q8_0, BF16)
    where its verdict is not cached yet, and prints them.

    DUOLOGUE_EXTRA_BUFTS=off (or on) overrides the probe; DUOLOGUE_WEIGHTS
    forces the weights.
    """
    from ..backends.embedded.catalogue import INSTALL_LOCAL, embedded_model_path, engine_installed

    if not engine_installed() or embedded_model_path("smollm2") is None:
        raise DuologueError(f"the embedded engine or its model is not installed: {INSTALL_LOCAL}")
    from ..backends.embedded import guard
    from ..backends.embedded.lookup import lookup_default
    from ..backends.embedded.weights import machine_choice, turn_cost
    from ..folders import cache_dir

    if again:
        shutil.rmtree(cache_dir() / "probe", ignore_errors=True)
    choice = machine_choice()
    # Each weight file's lookup default, and its turn's seconds alone and batched (what `auto` compared).
    lookup = {kind: lookup_default(None, kind) for kind in choice.verdicts}
    turns = {
        kind: (turn_cost(kind, v.timing, False), turn_cost(kind, v.timing, True)) if v.timing else (None, None)
        for kind, v in choice.verdicts.items()
    }
    if as_json:
        print_json(
            {
                "llama_cpp": guard.build_id(),
                "cpu_features": guard.system_info().split(),
                "extra_bufts_env": guard.forced(),
                "verdicts": {
                    kind: {
                        "file": v.file,
                        "extra_bufts": v.extra_bufts,
                        "reason": v.reason,
                        "probed": v.probed,
                        "timing": v.timing,
                        "lookup": lookup[kind],
                        "lone_turn_seconds": turns[kind][0],
                        "batched_turn_seconds": turns[kind][1],
                    }
                    for kind, v in choice.verdicts.items()
                },
                "auto": {"lone": choice.lone, "batched": choice.batched},
                "cache": str(cache_dir() / "probe"),
            }
        )
        return
    c = console_for(width)
    c.print(Text("the embedded engine on this machine", style="bold"))
    version, _, libraries = guard.build_id().partition(":")
    c.print(f"llama-cpp-python {version} (libraries {libraries}); CPU features llama.cpp uses: {guard.system_info()}")
    cols = (
        Col("weights"),
        Col("extra buffer types"),
        Col("lookup"),
        Col("lone turn", justify="right"),
        Col("batched turn", justify="right"),
        Col("why", priority=1, wrap=True, min_width=24),
    )
    rows = []
    for kind, v in choice.verdicts.items():
        rows.append(
            [
                kind,
                "on" if v.extra_bufts else "off",
                "on" if lookup[kind] else "off",
                *("" if seconds is None else f"{seconds:.2f} s" for seconds in turns[kind]),
                Text(v.reason),
            ]
        )
    print_table(c, cols, rows)
    c.print(f"auto runs the shipped model on {choice.lone} for a lone conversation, {choice.batched} for a batch")
    c.print(
        Text(
            f"cached in {cache_dir() / 'probe'} (--again probes anew); "
            f"{guard.EXTRA_BUFTS_ENV}=on|off overrides the probe, DUOLOGUE_WEIGHTS=q4_1|q8_0|bf16 forces the weights",
            style="dim",
        )
    )
