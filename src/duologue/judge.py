"""A second labeller: a model, through any provider, labels each message with the run's theme set.

`duologue judge RUN|EXPERIMENT --model PROVIDER/MODEL` sends the messages of each
run, `window` at a time, to the model with the run's end-state themes (id, label,
family, description; the neutral themes named as what is not an end state) and
the conversation's opening, and asks for one JSON object: {"<message number>":
"<theme id or none>", …}. The reply is parsed leniently (a code fence, prose
around the object, a theme's label or its family's id instead of its id, a list
of {"message", "label"} objects); a reply that leaves messages without a valid
label is answered once with what was wrong, and what the second reply still
leaves out stays unlabelled. Labels are stored per run, message and labeller
(store/labels.py; the labeller is the model string), beside the built-in
analysis's own (`messages.theme`), and compared with it (analysis/agreement.py:
Cohen's κ per family). Messages the judge labelled before are skipped unless
`again`; an interrupted judge run continues where it stopped.

The backend is made by the provider registry (backends/registry.make_backend),
inside the providers' workload and conversation scopes (backends/lifecycle.py),
so an embedded model works as a hosted one does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .analysis.agreement import run_themes
from .analysis.themes import ThemeSet
from .backends.base import ChatMessage, ContextFullError, Sampling, chars_to_tokens, estimate_tokens
from .errors import BackendError, DuologueError
from .records import Run
from .spec import ConversationSpec, Participant
from .store import DEFAULT_DB, Store

WINDOW = 8  # messages labelled per request
MESSAGE_CHARS = 2000  # each message is cut to this many characters in a request (its start and its end)
OPENING_CHARS = 600  # the opening's messages, shown for context, are cut shorter
TOKENS_PER_LABEL = 12  # what the reply costs per message: `"13": "stillness", ` and some slack
ASK_ABOVE = 100  # a judge run of more messages than this asks first (the CLI)
# How the JSON is asked for: in the prompt only (any provider); or also as the request's `response_format`
# with a JSON schema of the window's labels (one property per message, each an enum of the label ids): inside
# {"type": "json_object", "schema": …} as llama.cpp's servers read it, or as OpenAI's structured outputs
# {"type": "json_schema", …}. Those two are for OpenAI-compatible endpoints that take them.
RESPONSE_FORMATS = ("prompt", "json_object", "json_schema")


class JudgeReplyError(ValueError):
    """A reply that is not the JSON object asked for."""


@dataclass(frozen=True)
class Judge:
    """Who labels: the model as a participant of the registry (model string, base URL, key variable)."""

    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    window: int = WINDOW
    concurrency: int = 4  # requests at once (an embedded model takes them in turn)
    response_format: str = "prompt"  # RESPONSE_FORMATS

    @property
    def labeller(self) -> str:
        return self.model

    def check(self) -> None:
        """What can be checked before anything is asked: the model string and its key (check_participant), and
        that its provider sends a response format other than "prompt": an OpenAI-compatible request carries one
        (so may a plugin's own); the embedded engine and Anthropic's API would leave it out, and the reply would
        not be held to it."""
        from .backends.registry import check_participant, parse_model_string

        p = self.participant()
        check_participant(p)
        provider, _ = parse_model_string(p.model)
        if self.response_format != "prompt" and provider.api in ("local", "anthropic"):
            raise DuologueError(
                f"--response-format {self.response_format} is sent only to OpenAI-compatible endpoints, not to "
                f"{self.model}: use --response-format prompt, or serve the model (python -m llama_cpp.server) and "
                "judge with openai-compatible/NAME --base-url URL"
            )

    def participant(self) -> Participant:
        return Participant(
            name="judge",
            model=self.model,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            temperature=0.0,
            top_p=1.0,
            seed=0,
            max_tokens=TOKENS_PER_LABEL * self.window + 32,
            system="",
        )


# -- the request --------------------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} […] {text[-half:]}"


def _line(index: int, speaker: str, content: str, limit: int) -> str:
    body = _cut(content, limit) or "(empty)"
    return f"[{index}] {speaker}: {body}"


def system_prompt(themes: ThemeSet) -> str:
    """What the judge is told once per request: the task, the labels and the reply's form."""
    lines = [
        "You label the messages of a conversation between AI models with the end state each message is in.",
        "The labels (id: what it means):",
    ]
    families = dict(themes.families)
    for t in themes.end_states:
        family = f" [a face of {families.get(t.family_id, t.family_id)}]" if t.family else ""
        lines.append(f"- {t.id}: {t.label}{family}. {t.description}".rstrip())
    lines.append("- none: none of these.")
    neutral = [t for t in themes.themes if t.kind == "neutral"]
    if neutral:
        not_states = " ".join(t.description for t in neutral)
        lines.append(f"Not an end state (label such a message on_task, or none): {not_states}")
    lines += [
        "Label each message by itself, in the light of the messages before it.",
        "Reply with one JSON object and nothing else, one entry per message to label: "
        '{"<message number>": "<label id>"}.',
    ]
    return "\n".join(lines)


def window_request(themes: ThemeSet, run: Run, indices: Sequence[int]) -> list[ChatMessage]:
    """The request that labels the messages `indices` (numbered from 1, consecutive) of `run`."""
    by_index = {m.index: m for m in run.messages}
    first = indices[0]
    context = [i for i in dict.fromkeys((1, 2, first - 1)) if 1 <= i < first and i in by_index]
    parts = []
    if context:
        parts.append("Earlier messages, for context:")
        for i in context:
            if i == first - 1 and i > 3:
                parts.append("[…]")
            m = by_index[i]
            parts.append(_line(i, m.speaker, m.content, OPENING_CHARS))
    parts.append("Messages to label:")
    for i in indices:
        m = by_index[i]
        parts.append(_line(i, m.speaker, m.content, MESSAGE_CHARS))
    keys = ", ".join(f'"{i}": "…"' for i in indices)
    parts.append(f"Reply with the JSON object {{{keys}}}, each value one label id.")
    return [ChatMessage("system", system_prompt(themes)), ChatMessage("user", "\n".join(parts))]


def label_schema(themes: ThemeSet, indices: Sequence[int]) -> dict:
    """The JSON schema of a window's reply: one property per message, each one of the label ids or none."""
    ids = [*dict.fromkeys(t.id for t in themes.end_states), "none"]
    return {
        "type": "object",
        "properties": {str(i): {"type": "string", "enum": ids} for i in indices},
        "required": [str(i) for i in indices],
        "additionalProperties": False,
    }


def response_format(kind: str, themes: ThemeSet, indices: Sequence[int]) -> dict:
    """The request's extra parameters that ask for the reply's form (`kind`: one of RESPONSE_FORMATS)."""
    if kind == "json_object":
        return {"response_format": {"type": "json_object", "schema": label_schema(themes, indices)}}
    if kind == "json_schema":
        schema = {"name": "labels", "strict": True, "schema": label_schema(themes, indices)}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    return {}


def windows(indices: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive runs of the message numbers, at most `size` each."""
    out: list[list[int]] = []
    for i in indices:
        if out and len(out[-1]) < size and out[-1][-1] == i - 1:
            out[-1].append(i)
        else:
            out.append([i])
    return out


# -- the reply ----------------------------------------------------------------------------------------------


def _key(text: str) -> str:
    return re.sub(r"[\s\-/]+", "_", text.strip().strip("*`'\"").casefold())


def label_names(themes: ThemeSet) -> dict[str, str | None]:
    """What a judge may answer -> the label stored: end-state ids and labels, family ids and labels, none."""
    names: dict[str, str | None] = {}
    for fid, label in themes.families:
        names[_key(label)] = fid
        names[_key(fid)] = fid
    for t in themes.end_states:
        names[_key(t.label)] = t.id
        names[_key(t.id)] = t.id  # an id wins over a label that reads the same
    for none in ("none", "null", "no", "n/a", "na", "-", ""):
        names[_key(none)] = None
    return names


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _json_object(text: str) -> object:
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise JudgeReplyError("no JSON object in the reply")
    decoder = json.JSONDecoder()
    try:
        value, _ = decoder.raw_decode(text[start:])
    except json.JSONDecodeError:
        end = max(text.rfind("}"), text.rfind("]"))
        try:
            value = json.loads(text[start : end + 1])
        except json.JSONDecodeError as err:
            raise JudgeReplyError(f"the reply's JSON does not parse ({err.msg})") from None
    return value


def _pairs(value: object) -> list[tuple[object, object]]:
    if isinstance(value, dict):
        inner = value.get("labels", value.get("messages"))
        if isinstance(inner, dict | list) and len(value) == 1:
            return _pairs(inner)
        return list(value.items())
    if isinstance(value, list):
        out: list[tuple[object, object]] = []
        for item in value:
            if not isinstance(item, dict):
                raise JudgeReplyError("a list in the reply holds something other than objects")
            number = next((item[k] for k in ("message", "index", "id", "n", "number") if k in item), None)
            label = next((item[k] for k in ("label", "theme", "end_state", "state") if k in item), None)
            out.append((number, label))
        return out
    raise JudgeReplyError("the reply's JSON is not an object")


def parse_labels(text: str, indices: Sequence[int], themes: ThemeSet) -> tuple[dict[int, str | None], list[str]]:
    """The valid labels of the messages `indices` in a reply, and what was wrong (empty when nothing).

    Raises JudgeReplyError when the reply holds no usable JSON at all."""
    names = label_names(themes)
    wanted = set(indices)
    found: dict[int, str | None] = {}
    problems: list[str] = []
    for number, label in _pairs(_json_object(text)):
        try:
            index = int(str(number).strip().strip("[]#").removeprefix("message").strip())
        except ValueError:
            problems.append(f"{number!r} is not a message number")
            continue
        if index not in wanted:
            continue
        key = _key(label) if isinstance(label, str) else ("" if label is None else None)
        if key is None or key not in names:
            problems.append(f"message {index}: {label!r} is not one of the label ids")
            continue
        found[index] = names[key]
    missing = [i for i in indices if i not in found and not any(p.startswith(f"message {i}:") for p in problems)]
    if missing:
        problems.append("no label for message" + ("s " if len(missing) > 1 else " ") + ", ".join(map(str, missing)))
    return found, problems


# -- a judge run --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a judge run will send: per run, the windows of message numbers to label (one request each); and
    an estimate of its tokens, and of its largest request's prompt."""

    runs: list[tuple[Run, ThemeSet, list[list[int]]]]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    largest_prompt: int = 0

    @property
    def messages(self) -> int:
        return sum(len(w) for _, _, ws in self.runs for w in ws)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def plan(store: Store, runs: Sequence[Run], judge: Judge, *, again: bool = False) -> Plan:
    """The messages to label (those the judge has not labelled yet, or all with `again`) and the estimate:
    prompt tokens as duologue estimates a hosted model's (backends/base.estimate_tokens), and
    TOKENS_PER_LABEL per message for the replies (a retry costs more)."""
    out = Plan([])
    for run in runs:
        themes = run_themes(run)
        done = {} if again else store.message_labels(run.id, judge.labeller)
        todo = windows([m.index for m in run.messages if m.index not in done], judge.window)
        if not todo:
            continue
        out.runs.append((run, themes, todo))
        for w in todo:
            prompt = estimate_tokens(window_request(themes, run, w))
            out.prompt_tokens += prompt
            out.largest_prompt = max(out.largest_prompt, prompt)
            out.completion_tokens += TOKENS_PER_LABEL * len(w)
    return out


@dataclass
class RunJudged:
    run_id: str
    labelled: int  # messages given a valid label now
    unlabelled: list[int] = field(default_factory=list)  # messages left without one after the retry
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    labels: dict[int, str | None] = field(default_factory=dict, repr=False)  # a window's, while it is asked

    def add(self, other: RunJudged) -> None:
        self.labelled += other.labelled
        self.unlabelled += other.unlabelled
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


async def _label_window(
    backend, themes: ThemeSet, run: Run, indices: list[int], sampling: Sampling, kind: str
) -> RunJudged:
    """One window's labels: asked for, and once more when the reply leaves some without a usable one. The
    returned tally holds this window's labels, tokens and retries."""
    tally = RunJudged(run.id, 0)
    request = window_request(themes, run, indices)
    sampling = dataclasses.replace(sampling, extra={**sampling.extra, **response_format(kind, themes, indices)})
    labels = tally.labels
    for attempt in (1, 2):
        reply = await backend.complete(request, sampling)
        # The provider's counts when it gives them (a stream may not), else duologue's estimate.
        tally.prompt_tokens += reply.usage.prompt_tokens or estimate_tokens(request)
        tally.completion_tokens += reply.usage.completion_tokens or chars_to_tokens(len(reply.text))
        try:
            found, problems = parse_labels(reply.text, indices, themes)
        except JudgeReplyError as err:
            found, problems = {}, [str(err)]
        labels.update({i: v for i, v in found.items() if i not in labels})
        if not problems or attempt == 2 or all(i in labels for i in indices):
            break
        tally.retries += 1
        still = [i for i in indices if i not in labels]
        keys = ", ".join(f'"{i}": "…"' for i in still)
        request = [
            *request,
            ChatMessage("assistant", reply.text),
            ChatMessage(
                "user",
                "That reply could not be used: " + "; ".join(problems)[:600] + ". "
                f"Reply with only the JSON object {{{keys}}}, each value one of the label ids listed.",
            ),
        ]
    tally.labelled = len(labels)
    tally.unlabelled = [i for i in indices if i not in labels]
    return tally


async def ajudge(
    judge: Judge,
    work: Plan,
    *,
    db: str | Path = DEFAULT_DB,
    on_window: Callable[[str, int], None] | None = None,
) -> list[RunJudged]:
    """Label the planned messages with the judge and store the labels (each window's at once, so an interrupted
    run keeps what it got); what each run got."""
    from .backends import lifecycle
    from .backends.registry import make_backend

    p = judge.participant()
    # The providers' scopes want a conversation's spec: the judge in every seat of one, a seat per request sent at
    # once (each with a backend of its own: an embedded model's backend is one sequence, taking one at a time).
    queue = [(k, run, themes, w) for k, (run, themes, ws) in enumerate(work.runs) for w in ws]
    seats = max(1, min(judge.concurrency, len(queue)))
    names = [p.name, *(f"{p.name}-{k}" for k in range(2, max(2, seats) + 1))]
    spec = ConversationSpec(participants=[p.model_copy(update={"name": n}) for n in names], max_messages=2)
    results = [RunJudged(run.id, 0) for run, _, _ in work.runs]
    async with lifecycle.workload([spec], 1):
        prepared = lifecycle.prepare(spec).participants[:seats]
        with lifecycle.conversation(spec, "judge"), Store(db, create=False) as store:
            # The context a request needs, when the provider sizes one (an embedded model): the largest request
            # by the estimate, with room for the estimate's error, the reply, and a retry's reply and complaint.
            window = int(work.largest_prompt * 1.5) + 2 * p.max_tokens + 256
            backends = [make_backend(q, window) for q in prepared]
            sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=p.max_tokens, seed=0)
            pending = iter(queue)

            async def worker(backend) -> None:
                for k, run, themes, indices in pending:  # the windows not taken yet, one at a time
                    got = await _label_window(backend, themes, run, indices, sampling, judge.response_format)
                    store.save_labels(
                        run.id,
                        judge.labeller,
                        got.labels,
                        themes=themes.source,
                        prompt_tokens=got.prompt_tokens,
                        completion_tokens=got.completion_tokens,
                    )
                    results[k].add(got)
                    if on_window is not None:
                        on_window(run.id, len(indices))

            try:
                await asyncio.gather(*(worker(b) for b in backends))
            except ContextFullError as err:
                raise DuologueError(
                    f"the judge {judge.model}'s context is too small for a request ({err}): try a smaller --window"
                ) from None
            except BackendError as err:
                raise DuologueError(
                    f"the judge {judge.model} failed: {err}; the labels it gave so far are kept "
                    "(the same command again labels the rest)"
                ) from None
            finally:
                for b in backends:
                    await b.aclose()
    for r in results:
        r.unlabelled.sort()
    return results


def target_runs(store: Store, target: str) -> tuple[list[Run], str | None]:
    """The runs a judge target names (an experiment's id, else a run reference), with their messages; and the
    experiment's id when it is one."""
    exp = store.get_experiment(target)
    if exp is not None:
        return store.experiment_full_runs(exp.id), exp.id
    return [store.get_run(target)], None


def ensure_analysed(store: Store, runs: Sequence[Run]) -> int:
    """Store the built-in analysis of every run that has none (its labels are the first labeller's); how many."""
    from .analysis.stored import store_analysis

    n = 0
    for run in runs:
        if run.messages and store.run_semantic(run.id) is None:
            store_analysis(store, run)
            n += 1
    return n


__all__ = [
    "ASK_ABOVE",
    "Judge",
    "JudgeReplyError",
    "Plan",
    "RESPONSE_FORMATS",
    "RunJudged",
    "ajudge",
    "ensure_analysed",
    "label_names",
    "label_schema",
    "parse_labels",
    "plan",
    "system_prompt",
    "target_runs",
    "window_request",
    "windows",
]
