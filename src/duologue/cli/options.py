"""A conversation's settings from the command line: the options `run` and `fork` share, and the
spec they build (a TOML file or a parent run's settings first, the flags given on top)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..backends.embedded.weights import WEIGHTS
from ..errors import SpecError
from ..spec import ConversationSpec, load_toml, parse_participant_option, spec_from_dict
from ..spec_checks import entering_spec


def _default_name(model: str) -> str:
    base = model.rstrip("/").split("/")[-1]
    return base[:-5] if base.endswith(".gguf") else base


SIDE_KEYS = (
    "model",
    "name",
    "system",
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "base_url",
    "context_length",
    "threads",
)
# flags for every participant
SHARED_KEYS = ("temperature", "top_p", "max_tokens", "context_length", "threads", "weights", "lookup")


def build_spec(config: Path | None, flags: dict[str, Any]) -> ConversationSpec:
    """TOML first (if given), then flags on top. Only flags the user gave override."""
    data: dict[str, Any] = load_toml(config) if config else {}
    return spec_with_flags(data, flags, source=str(config) if config else "flags")


def spec_with_flags(data: dict[str, Any], flags: dict[str, Any], source: str) -> ConversationSpec:
    """A spec's settings (from TOML, or a run being forked) with the flags the user gave on top."""
    data = dict(data)
    if flags.get("participants"):
        given = [
            {"model_a": "--a", "model_b": "--b"}.get(k, f"--{k.replace('_', '-')}")
            for k, v in flags.items()
            if v is not None and k[-2:] in ("_a", "_b")
        ]
        if given:
            raise SpecError(f"{given[0]} and --participant do not mix: describe every participant with --participant")
        parts = [parse_participant_option(text) for text in flags["participants"]]
    elif not isinstance(data.get("participants", []), list):
        return spec_from_dict(data, source=source)  # not a list of tables: validation names it in one line
    else:
        # An entry that is not a table stays as it is, for validation to name (dict() would raise a TypeError).
        parts = [dict(p) if isinstance(p, dict) else p for p in data.get("participants", [])]
        while len(parts) < 2:
            parts.append({})
        for side, i in (("a", 0), ("b", 1)):
            for key in SIDE_KEYS:
                if flags.get(f"{key}_{side}") is not None and isinstance(parts[i], dict):
                    parts[i][key] = flags[f"{key}_{side}"]
                    if key == "model":  # a fork's participant: the alias its parent named is not this model
                        parts[i].pop("alias", None)
    for p in parts:
        if isinstance(p, dict):
            for key in SHARED_KEYS:
                if flags.get(key) is not None and not _side_flag(flags, parts, p, key):
                    p[key] = flags[key]
            p.setdefault("model", "local/smollm2")
    _name_participants([p for p in parts if isinstance(p, dict)])
    data["participants"] = parts
    for key in (
        "opener",
        "max_messages",
        "token_budget",
        "time_limit",
        "cost_limit",
        "end_marker",
        "end_on",
        "seed",
        "on_loop",
        "on_near_loop",
        "on_convergence",
        "on_attractor",
        "turn_order",
    ):
        if flags.get(key) is not None:
            data[key] = flags[key]
    if flags.get("context_strategy") is not None or flags.get("summarizer") is not None:
        context = dict(data.get("context") or {})
        if flags.get("context_strategy") is not None:
            context["strategy"] = flags["context_strategy"]
        if flags.get("summarizer") is not None:
            summarizer = context.get("summarizer")
            context["summarizer"] = (
                {**summarizer, "model": flags["summarizer"]} if isinstance(summarizer, dict) else flags["summarizer"]
            )
        data["context"] = context
    return entering_spec(spec_from_dict(data, source=source), source)


def _side_flag(flags: dict[str, Any], parts: list, p: dict, key: str) -> bool:
    """Whether A's or B's own flag set this key, which wins over the flag for everyone."""
    return any(
        flags.get(f"{key}_{side}") is not None and i < len(parts) and parts[i] is p for side, i in (("a", 0), ("b", 1))
    )


def _name_participants(parts: list[dict[str, Any]]) -> None:
    """Unnamed participants are named after their models, with -a, -b, … where two would clash."""
    unnamed = [p for p in parts if "name" not in p]
    if not unnamed:
        return
    taken = {p["name"] for p in parts if "name" in p}
    bases = [_default_name(str(p["model"])) for p in unnamed]
    for i, (p, base) in enumerate(zip(unnamed, bases, strict=True)):
        name = base if bases.count(base) == 1 and base not in taken else f"{base}-{chr(ord('a') + i)}"
        p["name"] = name
        taken.add(name)


TOKEN_BUDGET_HELP = (
    "Stop (token_budget) once the generated messages' completion tokens reach N; injected messages "
    "(the opener, injections) cost nothing, and a message whose count the backend did not give counts "
    "its characters / 3.5. A fork counts the messages it keeps."
)
TIME_LIMIT_HELP = (
    "Stop (time_limit) when a message ends SECONDS of wall-clock time or more after the run started "
    "(a resume starts the clock again); a message is never cut off."
)
COST_LIMIT_HELP = (
    "Stop (cost_limit) once the generated messages have cost USD dollars or more: each message's cost "
    "as the provider reported it (OpenRouter) or from the price data (genai-prices, bundled); the embedded "
    "model costs 0. Every model needs a known price, or the run does not start. A fork counts only its "
    "own messages."
)

# The settings of a conversation, shared by `run` and `fork` (flags given override the file or the parent).
SPEC_OPTIONS = [
    click.option(
        "--a",
        "model_a",
        metavar="MODEL",
        help="Model of participant A, e.g. local/smollm2, openrouter/qwen/qwen3-next-80b-a3b-instruct.",
    ),
    click.option("--b", "model_b", metavar="MODEL", help="Model of participant B."),
    click.option("--name-a", help="Display name of A (default: from the model)."),
    click.option("--name-b", help="Display name of B."),
    click.option("--system-a", help="System prompt of A."),
    click.option("--system-b", help="System prompt of B."),
    click.option(
        "--participant",
        "participants",
        multiple=True,
        metavar="KEY=VALUE,...",
        help="One participant, as comma-separated KEY=VALUE pairs; repeat it for each, in speaking "
        "order, for three or more. Keys: name, model, system, temperature, top_p, max_tokens, seed, "
        "base_url, context_length, threads. Put a value with commas in double quotes, e.g. "
        "--participant 'name=carol,model=local/smollm2,system=\"You are Carol, a sceptic.\"'. "
        "Replaces --a/--b and the file's participants.",
    ),
    click.option(
        "--turn-order",
        type=click.Choice(["round_robin", "random"]),
        help="Who speaks next: each in turn (default), or a seeded random pick among all but the last speaker.",
    ),
    click.option("--temperature", type=float, help="Sampling temperature for every participant."),
    click.option("--temperature-a", type=float, help="Temperature of A."),
    click.option("--temperature-b", type=float, help="Temperature of B."),
    click.option("--top-p", type=float, help="Nucleus sampling for every participant."),
    click.option("--max-tokens", type=int, help="Longest message, in tokens, for every participant."),
    click.option("--seed", type=int, help="Base seed (A gets SEED, B SEED+1 unless set)."),
    click.option("--seed-a", type=int, help="Seed of A."),
    click.option("--seed-b", type=int, help="Seed of B."),
    click.option("--base-url-a", help="Base URL of A's endpoint (openai-compatible/… or to override a preset)."),
    click.option("--base-url-b", help="Base URL of B's endpoint."),
    click.option(
        "--context-length",
        type=int,
        help="Context window in tokens for every participant (embedded engine: sized to the run unless "
        "given, up to the model's trained window; hosted models: checked only when given, with an "
        "estimated token count).",
    ),
    click.option(
        "--context-strategy",
        type=click.Choice(["auto", "stop", "truncate", "summarize"]),
        help="When the next request would not fit the window: leave out the oldest messages after the "
        "opener and record it as context_trimmed (auto, the default), stop the run (context_full), leave "
        "them out (truncate), or replace them with a summary.",
    ),
    click.option(
        "--summarizer",
        metavar="MODEL",
        help="The model that writes summaries for --context-strategy summarize (default: A's model).",
    ),
    click.option("--threads", type=int, help="Embedded engine: CPU threads."),
    click.option(
        "--weights",
        type=click.Choice(WEIGHTS),
        help="Embedded engine: the shipped Q4_1 weights, or a Q8_0 or BF16 copy (made once in the cache "
        "folder); auto (default): for the shipped model Q8_0, or BF16 when a batch runs several conversations "
        "per core on a CPU with BF16 instructions; a GGUF of your own as it is. Recorded in the spec.",
    ),
    click.option(
        "--lookup/--no-lookup",
        default=None,
        help="Embedded engine: lookup decoding, drafting tokens from the conversation's own history and "
        "verifying them in one step (tokens drawn from the model's own logits; faster when replies repeat; "
        "default: on with Q8_0 and BF16 weights).",
    ),
    click.option("--opener", help="A's opening message (default: a single space, as in the original transcripts)."),
    click.option("--max-messages", type=int, help="Stop after this many messages, opener included (default 20)."),
    click.option(
        "--token-budget",
        type=int,
        metavar="N",
        help=TOKEN_BUDGET_HELP,
    ),
    click.option(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help=TIME_LIMIT_HELP,
    ),
    click.option("--cost-limit", type=float, metavar="USD", help=COST_LIMIT_HELP),
    click.option("--end-marker", help="The end marker kept in the text (default [END])."),
    click.option(
        "--end-on",
        type=click.Choice(["never", "any", "both"]),
        help="Whether the end marker ends the run: never (default), any side, or both sides.",
    ),
    click.option(
        "--on-loop",
        type=click.Choice(["stop", "flag", "continue"]),
        help="A verbatim loop (3 cycles of period 1..8): stop the run (default), flag it and go on, or ignore it.",
    ),
    click.option(
        "--on-near-loop",
        type=click.Choice(["stop", "flag", "continue"]),
        help="A near loop (messages that keep resembling the last few in wording): flag (default), stop or ignore.",
    ),
    click.option(
        "--on-convergence",
        type=click.Choice(["stop", "flag", "continue"]),
        help="Semantic convergence (the last messages say nearly the same thing, in any words): "
        "flag (default), stop or ignore.",
    ),
    click.option(
        "--on-attractor",
        type=click.Choice(["stop", "flag", "continue"]),
        help="The conversation enters an attractor theme and stays (gratitude/unity, farewell spiral, "
        "emoji collapse, …; see `duologue themes`): flag (default), stop or ignore.",
    ),
    click.option(
        "--interactive",
        is_flag=True,
        help="Press Enter while it runs to pause after the current message and speak: as a participant "
        "(name or number) or as an outside voice (any other name). Stored as injected.",
    ),
    click.option("--meta/--no-meta", default=False, help="Show tokens and timings after each message."),
    click.option("-q", "--quiet", is_flag=True, help="Do not stream the conversation; print the summary only."),
]


def spec_options(command):
    for option in reversed(SPEC_OPTIONS):
        command = option(command)
    return command
