"""UniversalBackrooms conversation logs (BackroomsLogs/*.txt, var/backrooms_logs/**/*.txt).

What backrooms.py of UniversalBackrooms (scottviteri/UniversalBackrooms and its forks, such as
samhains/UniversalBackrooms) appends to its log file, in the order it writes it:

- newer forks open with a header: `### Backrooms Run ###`, `Template: {template}`, `Models: {key}, {key}`
  and `Started: {ISO time, UTC}`; a template with variables then logs `[backrooms] template vars resolved
  ({template}): {preview}` and the variables as JSON;
- before each round `"\\n### Round {n}/{max turns}\\n"`;
- for each message `"\\n### {actor} ###\\n"`, the response and `"\\n"` (older versions `"\\n{actor}:\\n"`),
  the actor being the model's display name and its 1-based position (`GPT-5 1`, `Kimi K2 2`,
  `Hermes 405B (Reasoning) 1`); some forks append `"\\n--- Reasoning Summary (logs only) ---\\n"` and the
  reasoning after a response;
- after a round, the blocks of the media, Discord and SQL agents, written the same way as messages
  (`### Media Agent ###`, `### Media Agent (Discord Post) ###`, `### Discord Agent ###`, `### Discord Post
  ###`, `### SQL (semantic) ###`, …), and their errors (`"\\nDiscord Agent error: {error}\\n"`);
- at the end `"\\n{actor} has ended the conversation with ^C^C.\\n"` (an actor wrote ^C^C), `"\\nContext
  budget limit reached (…). Conversation ended.\\n"`, then in both cases as well as after the last round
  `"\\nReached maximum number of turns (N). Conversation ended.\\n"`.

Every one of these writes starts with "\\n", so each heading or end line follows an empty line. The actors
speak in turn, always in the same order, so a heading-like line inside a response is not taken for a
heading unless it names the actor whose turn it is. The agents' blocks become events attached to the
message before them, never participants. The file is named `{key}_{key}_{template}_{YYYYmmdd_HHMMSS}.txt`
(in a folder named after the template, in newer forks): without a header, its name gives the model keys,
the template and the start time (local time).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import NoMessageError, TranscriptFormatError
from ..records import Event, Message, Run
from ..stopping import StopReason
from . import ImportFormat, ImportOptions
from .common import file_time, foreign_run, head_text, new_ids, read_text_replacing, utc_time

HEADER = "### Backrooms Run ###"
_HEADER_LINE = re.compile(r"^### Backrooms Run ###$", re.M)
_HEADER_FIELD = re.compile(r"([A-Z][\w ]*): ?(.*)")
_HEADING = re.compile(r"### (\S[^\n]*?) ###")
_OLD_HEADING = re.compile(r"(\S[^\n]*? \d+):")
_ROUND = re.compile(r"### Round (\d+)/(\S+)")
# The blocks of the side agents: media, Discord and SQL (and any other `… Agent`), each maybe qualified.
_AGENT = re.compile(r"(?:Media Agent|Discord Agent|Discord Post|SQL|[A-Z][A-Za-z]* Agent)(?: \([^()\n]*\))?")
_AGENT_ERROR = re.compile(r"((?:Media|Discord|[A-Z][A-Za-z]*) Agent(?: \([^()\n]*\))?) error: .*")
_ENDED = re.compile(r"(.+) has ended the conversation with \^C\^C\.")
_BUDGET = re.compile(r"Context budget limit reached \(([^\n]*)\)\. Conversation ended\.")
_MAX_TURNS = re.compile(r"Reached maximum number of turns \(([^)\n]*)\)\. Conversation ended\.")
_VARS = re.compile(r"\[backrooms\] template vars resolved \(([^)\n]*)\): ")
_REASONING = "\n--- Reasoning Summary (logs only) ---\n"
_NAME = re.compile(r"(?P<models>.+)_(?P<date>\d{8})_(?P<time>\d{6})(?:_.*)?$")
_NUMBERED = re.compile(r"(?P<base>.+) (?P<k>\d+)")
# A line after an empty line: where every write of backrooms.py starts.
_AFTER_EMPTY = re.compile(r"(?<=\n\n)[^\n]+")
# End lines, in the order backrooms.py writes them: the first one says why the run ended.
_ENDS = ((_ENDED, StopReason.END_MARKER), (_BUDGET, StopReason.CONTEXT_FULL), (_MAX_TURNS, StopReason.MAX_MESSAGES))


@dataclass
class _Mark:
    """A line that starts a block: a message's heading, an agent's, a round, an end line, an error."""

    kind: str  # speaker | agent | error | round | end | vars
    name: str  # the actor or agent; the line itself for the others
    start: int  # where the line starts
    end: int  # where it ends (its "\n")


def detect(path: Path) -> bool:
    """A log opens with the header, or has a numbered actor's heading, a round line or an agent's block
    after an empty line near its start (an older log's first line may be an `{actor}:` heading)."""
    text = head_text(path, 2048).replace("\r\n", "\n")
    if text.startswith(HEADER + "\n"):
        return True
    if text.lstrip("\n").startswith(("# ", "{", "[", "<")):  # duologue's Markdown, JSON, HTML
        return False
    kinds = [_classify(m.group()) for m in _AFTER_EMPTY.finditer("\n\n" + text.lstrip("\n"))]
    if kinds and kinds[0] is not None and kinds[0][0] == "old":
        return True
    return any(kind is not None and kind[0] in ("speaker", "agent", "error", "round") for kind in kinds)


def _classify(line: str) -> tuple[str, str] | None:
    """(kind, name) of a line that may start a block, None for any other line."""
    if line.startswith("### "):
        if _ROUND.fullmatch(line):
            return "round", line
        if heading := _HEADING.fullmatch(line):
            name = heading.group(1)
            if _AGENT.fullmatch(name):
                return "agent", name
            # backrooms.py names an actor by its model and position (`GPT-5 1`), or `CLI` (the world interface).
            return ("speaker", name) if _position(name) or name == "CLI" else None
        return None
    if old := _OLD_HEADING.fullmatch(line):
        return "old", old.group(1)
    if error := _AGENT_ERROR.fullmatch(line):
        return "error", error.group(1)
    if any(pattern.fullmatch(line) for pattern, _ in _ENDS):
        return "end", line
    if _VARS.match(line):
        return "vars", line
    return None


def _cycles(names: list[str]) -> list[list[str]]:
    """The cycles to try: every order of up to 4 of the first 8 names that starts with the first
    speaker, and the first n names in order of appearance for any n up to 16."""
    cycles = [names[:n] for n in range(1, min(len(names), 16) + 1)]
    stack = [[names[0]]]
    while stack:
        cycle = stack.pop()
        cycles.append(cycle)
        if len(cycle) < 4:
            stack.extend(cycle + [name] for name in names[:8] if name not in cycle)
    return cycles


def _turns(candidates: list[_Mark]) -> list[_Mark]:
    """The headings that are real: those of the actors' cycle that explains the most of them."""
    if not candidates:
        return []
    # The actors speak in a fixed cycle. Of the possible cycles (the first name, then other names
    # seen), the one that explains the most headings wins: a heading-like line inside a response
    # breaks the turn order of a cycle that counts it, so it is left in the response. backrooms.py
    # numbers its actors by position ("Claude 1", "GPT4o 2"), so a cycle numbered so wins first.
    best: list[_Mark] = []
    best_key = (False, 0)
    for cycle in _cycles(list(dict.fromkeys(m.name for m in candidates))):
        turns: list[_Mark] = []
        for m in candidates:
            if m.name == cycle[len(turns) % len(cycle)]:
                turns.append(m)
        key = (all(name.endswith(f" {k}") for k, name in enumerate(cycle, 1)), len(turns))
        if key > best_key:
            best, best_key = turns, key
    return best


def _single_line(text: str, mark: _Mark) -> bool:
    """A round or end line stands alone: an empty line (or the end of the log) follows it."""
    return text.startswith("\n\n", mark.end) or not text[mark.end :].strip("\n")


def _marks(text: str) -> list[_Mark]:
    """The lines that start blocks, in order. `text` starts with an empty line."""
    found = [
        _Mark(kind, name, m.start(), m.end())
        for m in _AFTER_EMPTY.finditer(text)
        if (classified := _classify(m.group())) is not None
        for kind, name in [classified]
    ]
    if found and found[0].kind == "old" and found[0].start == 2:
        # An older log: `{actor}:` headings, the first one the log's first line ("### …" lines are text).
        found = [m for m in found if m.kind in ("old", "end")]
        for m in found:
            m.kind = "speaker" if m.kind == "old" else m.kind
    speakers = [m for m in found if m.kind == "speaker"]
    real = {id(m) for m in _turns(speakers)}
    marks = [m for m in found if id(m) in real or m.kind in ("agent", "error", "round", "end", "vars")]
    marks = [m for m in marks if m.kind not in ("round", "end") or _single_line(text, m)]
    # An end line with a message after it was part of a response.
    last_speaker = max((m.start for m in marks if m.kind == "speaker"), default=-1)
    return [m for m in marks if m.kind != "end" or m.start > last_speaker]


def _body(text: str, mark: _Mark, following: _Mark | None) -> str:
    """What a block holds: up to the empty line before the next block, less the writer's "\\n"."""
    body = text[mark.end + 1 : following.start - 1 if following else len(text)]
    return body[:-1] if body.endswith("\n") else body


@dataclass
class _Log:
    """One run of a log file, as read."""

    header: dict[str, str]
    preamble: str
    messages: list[tuple[str, str, str | None]]  # actor, content, reasoning
    events: list[Event]
    rounds: list[tuple[int, str]]  # (round, of how many)
    template_vars: dict[str, Any]
    ends: list[str]  # the end lines, in order
    agents: list[str]  # the agents that wrote blocks, in order
    last_error: str | None  # an agent's error that is the last thing in the log


def _header(section: str) -> tuple[dict[str, str], str]:
    """The header's fields (`Template`, `Models`, `Started`, …) and the text after them."""
    if not section.startswith(HEADER + "\n"):
        return {}, section
    fields: dict[str, str] = {}
    rest = section[len(HEADER) + 1 :]
    while rest and not rest.startswith("\n"):
        line, _, after = rest.partition("\n")
        found = _HEADER_FIELD.fullmatch(line)
        if found is None:
            break
        fields[found.group(1)] = found.group(2).strip()
        rest = after
    return fields, rest


def _read_section(section: str) -> _Log:
    header, rest = _header(section)
    text = "\n\n" + rest.lstrip("\n")
    marks = _marks(text)
    log = _Log(header, "", [], [], [], {}, [], [], None)
    log.preamble = text[: marks[0].start if marks else len(text)].strip("\n")
    for k, mark in enumerate(marks):
        following = marks[k + 1] if k + 1 < len(marks) else None
        body = _body(text, mark, following)
        index = len(log.messages) or None  # the message an agent's block or error follows
        if mark.kind == "speaker":
            reasoning = None
            if "\n" + _REASONING in body:  # after the response's own "\n"
                body, reasoning = body.split("\n" + _REASONING, 1)
            log.messages.append((mark.name, body, reasoning))
        elif mark.kind == "agent":
            log.agents.append(mark.name)
            log.events.append(Event("agent", mark.name, index, {"agent": mark.name, "text": body}))
        elif mark.kind == "error":
            line = text[mark.start : mark.end]
            log.agents.append(mark.name)
            if following is None:
                log.last_error = line
            data = {"agent": mark.name, "text": line + ("\n" + body if body else "")}
            log.events.append(Event("agent_error", line, index, data))
        elif mark.kind == "round":
            found = _ROUND.fullmatch(mark.name)
            assert found is not None
            log.rounds.append((int(found.group(1)), found.group(2)))
        elif mark.kind == "end":
            log.ends.append(mark.name)
        elif mark.kind == "vars":
            found = _VARS.match(mark.name)
            assert found is not None
            try:
                log.template_vars[found.group(1)] = json.loads(body)
            except ValueError:
                log.template_vars[found.group(1)] = body
    return log


def _sections(text: str) -> list[str]:
    """The runs of a log: two runs started in the same second append to the same file, each with its header."""
    starts = [m.start() for m in _HEADER_LINE.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _stop(log: _Log) -> tuple[str, str]:
    for line in log.ends:  # ^C^C and the context budget come before "Reached maximum number of turns"
        for pattern, reason in _ENDS:
            if pattern.fullmatch(line):
                return reason.value, line
    if log.last_error:
        return StopReason.ERROR.value, log.last_error
    where = f" in round {log.rounds[-1][0]}" if log.rounds else ""
    return StopReason.INTERRUPTED.value, f"no end line: the log stops{where}; the run was stopped or failed"


def _nothing_said(log: _Log) -> str:
    """Why a log holds no message, in words: what it does hold."""
    held = []
    if log.header:
        shown = ", ".join(f"{k}: {v}" for k, v in log.header.items() if k in ("Template", "Models"))
        held.append(f"the run's header ({shown})" if shown else "the run's header")
    if log.template_vars:
        held.append("the template's variables")
    if log.rounds:
        held.append("a round line" if len(log.rounds) == 1 else f"{len(log.rounds)} round lines")
    if log.agents:
        held.append("blocks of " + ", ".join(dict.fromkeys(log.agents)))
    if log.ends:
        held.append("an end line")
    if log.preamble:
        held.append("text before any heading")
    if not held:
        return "no message to import: the log is empty"
    joined = held[0] if len(held) == 1 else ", ".join(held[:-1]) + " and " + held[-1]
    return f"no message to import: the log holds only {joined}"


def _keys(part: str) -> list[str]:
    """Model keys joined by "_" as in a file's name; `hermes_reasoning` (a key with an underscore) kept whole."""
    keys: list[str] = []
    for piece in part.split("_"):
        if piece == "reasoning" and keys:
            keys[-1] += "_reasoning"
        else:
            keys.append(piece)
    return keys


def _from_name(path: Path, actors: int) -> tuple[datetime | None, list[str], str | None]:
    """The start time, the model keys and the template in the file's name, when it has UniversalBackrooms'
    pattern `{key}_{key}_{template}_{YYYYmmdd_HHMMSS}` for a run of (at least) `actors` actors."""
    found = _NAME.match(path.stem)
    if not found:
        return None, [], None
    try:
        started = datetime.strptime(found["date"] + found["time"], "%Y%m%d%H%M%S").astimezone().astimezone(UTC)
    except ValueError:
        started = None
    keys, folder = found["models"], path.parent.name
    if folder and keys.endswith("_" + folder):  # newer forks keep each template's logs in a folder of its name
        return started, _keys(keys[: -len(folder) - 1]), folder
    parts = _keys(keys)
    count = max(actors, 2)  # without a header, a log is of two models or more
    if len(parts) <= count:
        return started, [], None
    return started, parts[:count], "_".join(parts[count:])


def _position(actor: str) -> int | None:
    """An actor's 1-based position, from its name (`GPT-5 2` is the second); None for an unnumbered one."""
    found = _NUMBERED.fullmatch(actor)
    return int(found["k"]) if found else None


def _participants(spoken: list[str], keys: list[str]) -> tuple[list[str], dict[str, str]]:
    """Every actor of the run, by position, and the model key of each: the header (or the file's name)
    names the models of actors that never spoke (a run stopped after its first message)."""
    numbered = {int(m["k"]): m["base"] for name in spoken if (m := _NUMBERED.fullmatch(name))}
    if not keys:  # the models are not known: the actors that spoke, by their numbers
        spoke = sorted(spoken, key=lambda name: _position(name) or len(spoken) + 1)
        return spoke + ([f"{spoke[0]} (silent)"] if len(spoke) == 1 else []), {}
    order: list[str] = []
    model_of: dict[str, str] = {}
    for k, key in enumerate(keys, 1):
        # An actor that never spoke is named like an actor of the same model, else by its model key.
        same = [base for i, base in numbered.items() if i <= len(keys) and keys[i - 1] == key]
        name = f"{numbered.get(k) or (same[0] if same else key)} {k}"
        order.append(name)
        model_of[name] = key
    order += [name for name in spoken if name not in order]
    if len(order) == 1:  # one model talking with itself: the spec still needs a second side
        order.append(f"{order[0]} (silent)")
    return order, model_of


def _metadata(log: _Log, keys: list[str], template: str | None, note: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"format": "backrooms"}
    if template:
        meta["template"] = template
    if keys:
        meta["models"] = keys
    if "Started" in log.header:
        meta["started"] = log.header["Started"]
    for key, value in log.header.items():
        if key not in ("Template", "Models", "Started"):
            meta[key.lower().replace(" ", "_")] = value
    if log.rounds:
        total = log.rounds[-1][1]
        meta["rounds"] = f"{log.rounds[-1][0]}/{total}"
    if log.template_vars:
        meta["template_vars"] = log.template_vars
    if log.preamble:
        meta["preamble"] = log.preamble
    if note:
        meta["import_note"] = note
    return meta


def _run(path: Path, log: _Log, note: str | None) -> Run:
    spoken = list(dict.fromkeys(actor for actor, _, _ in log.messages))
    positions = [k for name in spoken if (k := _position(name)) is not None]
    name_started, name_keys, name_template = _from_name(path, max([len(spoken), *positions]))
    keys = [k.strip() for k in log.header.get("Models", "").split(",") if k.strip()] or name_keys
    template = log.header.get("Template") or name_template
    actors, model_of = _participants(spoken, keys)
    started = None
    if log.header.get("Started"):
        try:
            started = utc_time(log.header["Started"], "Started")
        except TranscriptFormatError:
            started = None
    started = started or name_started or file_time(path)
    messages = [
        Message(index=i, speaker=actor, content=body, model=model_of.get(actor), reasoning=reasoning)
        for i, (actor, body, reasoning) in enumerate(log.messages, 1)
    ]
    stop_reason, stop_detail = _stop(log)
    return foreign_run(
        new_ids(1)[0],
        path,
        actors,
        messages,
        started_at=started,
        stop_reason=stop_reason,
        stop_detail=stop_detail,
        metadata=_metadata(log, keys, template, note),
        events=[Event(e.kind, e.detail, e.message_index or 1, e.data) for e in log.events],
    )


def read(path: Path, options: ImportOptions) -> list[Run]:
    text, note = read_text_replacing(path)
    text = text.replace("\r\n", "\n")
    logs = [_read_section(section) for section in _sections(text)]
    said = [log for log in logs if log.messages]
    if not said and not text.strip():
        raise NoMessageError("no message to import: the file is empty")
    if not said:
        if not any(log.header or log.rounds or log.agents or log.ends or log.template_vars for log in logs):
            raise TranscriptFormatError(
                "line 2: expected a heading '### {actor} ###' (or '{actor}:') after an empty line"
            )
        raise NoMessageError(_nothing_said(logs[0]))
    return [_run(path, log, note) for log in said]


FORMAT = ImportFormat(
    name="backrooms",
    description="a UniversalBackrooms log (BackroomsLogs/*.txt: '### GPT-5 1 ###' headings, maybe a header)",
    suffixes=(".txt",),
    detect=detect,
    read=read,
)
