"""JSON export: everything the store has about a run, one object per run.

The object carries `"format": "duologue.run/1"`, every field of `Run` (times as
ISO-8601 strings with their zone), the derived `title`, every field of each
`Message`, and `analysis` and `events` when given (reading a run back ignores
both: the analysis is recomputed, the events are history). Fields are read off the dataclasses, so
a field added to `Run` or `Message` is exported without touching this module,
and files written before it existed still load (the field takes its default).
JSONL holds many runs, one object per line.
"""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, fields
from datetime import datetime
from typing import Any, get_args, get_origin, get_type_hints

from ..errors import TranscriptFormatError
from ..records import Message, Run

FORMAT = "duologue.run/1"


def run_to_dict(
    run: Run, analysis: Mapping[str, Any] | None = None, events: Iterable[Mapping[str, Any]] | None = None
) -> dict:
    d: dict[str, Any] = {"format": FORMAT, "id": run.id, "title": run.title}
    for f in fields(Run):
        if f.name == "messages":
            d["messages"] = [{g.name: _to_json(getattr(m, g.name)) for g in fields(Message)} for m in run.messages]
        elif f.name not in ("id", "events"):  # an import's events are in the store's, given as `events`
            d[f.name] = _to_json(getattr(run, f.name))
    if analysis is not None:
        d["analysis"] = copy.deepcopy(analysis)
    if events is not None:  # what was recorded besides the messages: detections, injections, changes, trims
        d["events"] = [{k: _to_json(v) for k, v in e.items() if k != "run_id"} for e in events]
    return d


def run_from_dict(d: dict) -> Run:
    if not isinstance(d, dict):
        raise TranscriptFormatError(f"expected a JSON object for a run, got {type(d).__name__}")
    if d.get("format") != FORMAT:
        raise TranscriptFormatError(f"'format' is {d.get('format')!r}, expected {FORMAT!r}")
    values = _read_fields(Run, d, "run", skip=frozenset({"messages", "events"}))
    messages = d.get("messages", [])
    if not isinstance(messages, list):
        raise TranscriptFormatError("run.messages: expected a list")
    values["messages"] = [Message(**_read_fields(Message, m, f"messages[{i}]")) for i, m in enumerate(messages)]
    return Run(**values)


def render_json(
    run: Run, analysis: Mapping[str, Any] | None = None, events: Iterable[Mapping[str, Any]] | None = None
) -> str:
    return json.dumps(run_to_dict(run, analysis, events), indent=2, ensure_ascii=False) + "\n"


# Characters str.splitlines() breaks a line at that JSON leaves raw in strings: escaped, so a JSONL line
# stays one line for every reader (the object is the same: they can only occur inside strings).
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def jsonl_line(obj: Mapping[str, Any]) -> str:
    """One JSONL line (with its newline) holding `obj`."""
    return json.dumps(obj, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def render_jsonl(runs: Iterable[Run], analyses: Mapping[str, dict] | None = None) -> str:
    """One run per line; `analyses` maps run ids to their analysis."""
    analyses = analyses or {}
    return "".join(json.dumps(run_to_dict(r, analyses.get(r.id)), ensure_ascii=False) + "\n" for r in runs)


def parse_json(text: str) -> Run:
    """One run, pretty-printed or as a single JSONL line."""
    if not text.strip():
        raise TranscriptFormatError("empty file: expected a JSON object for a run")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            raise TranscriptFormatError(f"line {e.lineno}: more than one run; read JSONL with parse_jsonl") from None
        raise TranscriptFormatError(f"line {e.lineno}: {json_error(e)}") from None
    return run_from_dict(d)


def json_error(e: json.JSONDecodeError) -> str:
    """The decoder's complaint as a whole phrase with its column (its own message can end in "starting at")."""
    if e.msg.endswith(" at"):
        return f"invalid JSON: {e.msg} column {e.colno}"
    return f"invalid JSON at column {e.colno}: {e.msg}"


def parse_jsonl(text: str) -> list[Run]:
    runs = []
    # Split on "\n" only: str.splitlines() would also split on U+2028 and
    # friends, which ensure_ascii=False leaves unescaped inside strings.
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                runs.append(parse_json(line))
            except TranscriptFormatError as e:
                raise TranscriptFormatError(f"line {number}: {str(e).removeprefix('line 1: ')}") from None
    return runs


# -- field by field ----------------------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return copy.deepcopy(value)  # the spec is a nested dict; don't share it


def _read_fields(cls: type, d: Any, where: str, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise TranscriptFormatError(f"{where}: expected a JSON object")
    hints = get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        if f.name in d:
            values[f.name] = _decode(d[f.name], hints[f.name], f"{where}.{f.name}")
        elif not _has_default(f):
            raise TranscriptFormatError(f"{where}: missing {f.name!r}")
    return values


def _has_default(f: Field) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def _decode(value: Any, hint: Any, where: str) -> Any:
    """Check a JSON value against a field's annotation and turn it into that type."""
    options = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise TranscriptFormatError(f"{where}: must not be null")
    for option in options:
        kind = get_origin(option) or option
        if kind is datetime and isinstance(value, str):
            return _parse_time(value, where)
        if isinstance(value, bool) and kind is not bool:
            continue  # JSON true is not a number
        if kind is float and isinstance(value, (int, float)):
            return float(value)
        if kind is list and isinstance(value, list):
            item = (get_args(option) or (Any,))[0]
            return [v if item is Any else _decode(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if kind in (int, str, bool, dict) and isinstance(value, kind):
            return value
    expected = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise TranscriptFormatError(f"{where}: expected {expected}, got {type(value).__name__} {value!r:.40}")


def _parse_time(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TranscriptFormatError(f"{where}: {value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise TranscriptFormatError(f"{where}: {value!r} has no time zone")
    return moment
