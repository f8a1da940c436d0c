"""A spec's validation errors in duologue's own words: one self-contained line per problem.

pydantic reports each problem with a type (`missing`, `extra_forbidden`,
`too_short`, `int_parsing`, `value_error`, …), a location and the value given;
`problems` turns each into a line such as `participants.0.temperature: expected
a number, got "hot"`, so none of pydantic's phrasing reaches the user.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# What a wrong-type error expected, in plain words.
EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "none_required": "nothing",
}

# Bounds on numbers.
BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}

# Patterns the specs use, said in words.
PATTERNS = {
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$": "use letters, digits, '.', '_' and '-', starting with a letter or digit",
}

# A union's branch names itself in the location (e.g. "list[tuple[str, str]]"); field names never look so.
_BRANCH = re.compile(r"[\[\](),' ]")


def shown(value: Any, limit: int = 60) -> str:
    """A value as a TOML or JSON file would spell it, on one line and cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def describe(error: ErrorDetails) -> str:
    """What is wrong, without the location: one pydantic error in plain words."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "required, but not given"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error") or error["msg"]).removeprefix("Assertion failed, ")
    if kind == "literal_error":
        return f"expected {ctx.get('expected', '?')}, got {shown(value)}"
    if kind in EXPECTED:
        return f"expected {EXPECTED[kind]}, got {shown(value)}"
    if kind in BOUNDS:
        key, words = BOUNDS[kind]
        bound = ctx.get(key)
        return f"must be {words} {f'{bound:g}' if isinstance(bound, float) else bound}, got {shown(value)}"
    if kind == "too_short":
        n = ctx.get("min_length", 0)
        return f"needs at least {_count(n, 'entry', 'entries')}, got {ctx.get('actual_length', 0)}"
    if kind == "too_long":
        n = ctx.get("max_length", 0)
        return f"holds at most {_count(n, 'entry', 'entries')}, got {ctx.get('actual_length', 0)}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "cannot be empty" if n == 1 else f"needs at least {_count(n, 'character', 'characters')}"
    if kind == "string_too_long":
        return f"holds at most {_count(ctx.get('max_length', 0), 'character', 'characters')}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{shown(value)} is not allowed here: " + PATTERNS.get(pattern, f"it must match {pattern}")
    # A type this module does not know yet: pydantic's words, made to read like the rest.
    msg = str(error["msg"])
    if msg.startswith("Input should be "):
        return f"expected {msg.removeprefix('Input should be ')}, got {shown(value)}"
    return msg[:1].lower() + msg[1:]


# What str.splitlines breaks a line at, written as escapes in a problem's line.
_ESCAPED_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def problems(err: ValidationError, source: str | None = None) -> list[str]:
    """One line per problem: `source: where: what`, in the order pydantic found them, each once."""
    prefix = f"{source}: " if source else ""
    lines: list[str] = []
    for error in err.errors():
        where = ".".join(str(p) for p in error["loc"] if not (isinstance(p, str) and _BRANCH.search(p)))
        line = prefix + (f"{where}: " if where else "") + describe(error)
        line = line.translate(_ESCAPED_BREAKS)  # a key or value with a line break in it stays on one line
        if line not in lines:
            lines.append(line)
    return lines
