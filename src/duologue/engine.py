"""The turn loop.

The engine asks the backend of the participant whose turn it is for the next
message, commits it to the store before the next turn starts, lets watchers
decide whether the run should stop, and tells listeners what happened. It
knows nothing about HTTP, llama.cpp, SQLite details or the terminal.

Not every message is generated: the opener, the spec's injections and what a
person types in interactive mode are put in as they are (`injected`). The
spec's changes give a participant another model, system prompt or temperature
from a message on; the context keeper (context.py) fits each view into its
speaker's window.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .backends.base import Backend, ChatMessage, ContextFullError, RetryNotice, Sampling, StreamEvent, TextDelta
from .backends.registry import BackendFactory
from .backends.registry import make_backend as registry_make_backend
from .context import ContextKeeper, run_context, trim_from_events
from .errors import BackendError
from .records import Message, Run, utcnow
from .spec import ConversationSpec, Participant
from .stopping import (
    Stop,
    StopReason,
    WatchEvent,
    end_marker_stop,
    max_messages_stop,
    time_limit_stop,
    token_budget_stop,
)
from .store import Store
from .version import __version__


def new_run_id() -> str:
    """Sortable by start time, unique enough to type a prefix of."""
    return f"{utcnow():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def turn_seed(base: int | None, index: int) -> int:
    """A different but reproducible seed for each message, so a resumed run samples as the original would."""
    return ((base or 0) * 1_000_003 + index * 7_919) % (2**31 - 1)


def participant_view(
    participant: Participant,
    messages: Sequence[Message],
    n_participants: int,
    *,
    shows_reasoning: Collection[str] = (),
    participants: Collection[str] | None = None,
) -> list[ChatMessage]:
    """What one participant sees: its system prompt, its `history` (turns only it sees), then the
    conversation: its own messages as `assistant`, everyone else's as `user`.

    With three or more voices the others' messages carry the speaker's name, so
    the participant can tell them apart; so do those of outside voices (anyone
    not in `participants`, when given), which would otherwise pass for the
    other participant's. Reasoning stays out, except that of the speakers named
    in `shows_reasoning` (participants with show_reasoning), which the others
    see as a <think>…</think> block before the text.
    """
    view = [ChatMessage("system", participant.system)] if participant.system else []
    view += [ChatMessage(turn.role, turn.content) for turn in participant.history]  # its private preamble
    for m in messages:
        if m.speaker == participant.name:
            view.append(ChatMessage("assistant", m.content))
            continue
        content = m.content
        if m.reasoning and m.speaker in shows_reasoning:
            content = f"<think>{m.reasoning}</think>\n\n{content}"
        outside = participants is not None and m.speaker not in participants
        if n_participants >= 3 or outside:
            view.append(ChatMessage("user", f"{m.speaker}: {content}"))
        else:
            view.append(ChatMessage("user", content))
    return view


def next_speaker(spec: ConversationSpec, messages: Sequence[Message]) -> Participant:
    """Who speaks after the last participant who spoke (outside voices don't take a turn).

    `round_robin`: the next one in the spec's order. `random`: any other than the
    last speaker (nobody answers themselves), drawn with a seed made from the
    spec's seed and the message index, so a resumed or forked run draws alike.
    """
    names = spec.names
    last = next((m.speaker for m in reversed(messages) if m.speaker in names), None)
    if last is None:
        return spec.participants[0]
    if spec.turn_order == "random":
        others = [p for p in spec.participants if p.name != last]
        return random.Random(turn_seed(spec.seed, len(messages) + 1)).choice(others)
    return spec.participants[(names.index(last) + 1) % len(names)]


@dataclass(frozen=True)
class Interjection:
    """A message a person puts in between turns: as a participant, or as an outside voice."""

    speaker: str
    text: str


class Interjector(Protocol):
    """Where a person's messages come from in interactive mode (e.g. the terminal)."""

    async def between_turns(self, run: Run) -> list[Interjection]:
        """Asked before every turn after the opener; empty unless the person paused the run."""
        ...

    def close(self) -> None: ...


class Watcher(Protocol):
    def observe(self, message: Message) -> list[WatchEvent]: ...


class RunListener:
    """Receives what happens during a run. Override what you need; all default to nothing."""

    def run_started(self, run: Run, resumed: bool) -> None: ...

    def message_started(self, run: Run, index: int, speaker: str) -> None: ...

    def text(self, run: Run, index: int, speaker: str, delta: str) -> None: ...

    def retry(self, run: Run, index: int, speaker: str, notice: RetryNotice) -> None: ...

    def message_done(self, run: Run, message: Message) -> None: ...

    def event(self, run: Run, event: WatchEvent) -> None: ...

    def run_ended(self, run: Run) -> None: ...


# What the `context_full` stop detail suggests (the CLI's flags; TOML: context_length, [context] strategy).
CONTEXT_FULL_HINT = "raise --context-length or use --context-strategy truncate (or summarize)"


class Conversation:
    """One run of a spec: new, or continued from the store (resume, fork)."""

    clock = staticmethod(time.monotonic)  # what the time limit is measured with (a test can set another)

    def __init__(
        self,
        spec: ConversationSpec,
        store: Store,
        *,
        run: Run | None = None,
        backends: dict[str, Backend] | None = None,
        listeners: Iterable[RunListener] = (),
        watchers: Iterable[Watcher] = (),
        experiment_id: str | None = None,
        experiment_cell: dict | None = None,
        interjector: Interjector | None = None,
        make_backend: BackendFactory | None = None,
    ):
        self.spec = spec
        self.store = store
        self.listeners = list(listeners)
        self.watchers = list(watchers)
        self.interjector = interjector
        self._backends = dict(backends or {})
        # Which model each participant's backend serves: a change of model needs a new backend.
        self._serves = {p.name: p.model for p in spec.participants if p.name in self._backends}
        # Backends come from the provider registry unless the caller makes them (a test, a program).
        self._make_backend = make_backend
        self._summarizer: Backend | None = None
        self._windows: set[int] = set()  # backends whose window was reported
        self._retired: list[Backend] = []  # replaced by a change of model; closed when the run ends
        self._interjections: deque[Interjection] = deque()
        self.resumed = run is not None
        self._started = self.clock()
        if run is None:
            run = Run(
                id=new_run_id(),
                spec=spec.model_dump(mode="json"),
                participants=spec.names,
                started_at=utcnow(),
                duologue_version=__version__,
                experiment_id=experiment_id,
                experiment_cell=experiment_cell,
            )
            store.create_run(run)
        else:
            store.claim_run(run.id)
            run.status, run.stop_reason, run.stop_detail, run.ended_at = "running", None, None, None
        self.run = run
        # A resumed run: its views stay trimmed where they were, and what was recorded stays recorded once.
        events = store.get_events(run.id) if self.resumed else []
        self._recorded = {(ev["kind"], ev["message_index"]) for ev in events}
        self.context = ContextKeeper(
            spec.context,
            summarizer=self._summarizer_settings(),
            summarizer_backend=self._summarizer_backend,
            record=self._record,
            trim=trim_from_events(events),
        )

    def _new_backend(self, p: Participant) -> Backend:
        if self._make_backend is not None:  # the caller's own: it answers for its models
            return self._make_backend(p)
        # A provider that sizes its window to the run (the embedded engine) is told what the run needs.
        return registry_make_backend(p, window=run_context(self.spec, p) if p.context_length is None else None)

    def backend_for(self, p: Participant) -> Backend:
        backend = self._backends.get(p.name)
        if backend is None or self._serves.get(p.name) != p.model:
            # A change gave the participant another model: its old backend is done for good.
            if backend is not None:
                self._retired.append(backend)
            backend = self._backends[p.name] = self._new_backend(p)
            self._serves[p.name] = p.model
        return backend

    def _summarizer_settings(self) -> Participant:
        s = self.spec.context.summarizer
        # It summarises what leaves the participants' windows: without a window of its own it gets the
        # largest of theirs when they all set one, else one sized to the run as theirs are.
        windows = [p.context_length for p in self.spec.participants]
        given = None if None in windows else max(w for w in windows if w is not None)
        return s.model_copy(
            update={
                "model": s.model or self.spec.participants[0].model,
                "seed": s.seed if s.seed is not None else self.spec.seed,
                "context_length": s.context_length or given,
            }
        )

    def _summarizer_backend(self) -> Backend:
        if self._summarizer is None:
            self._summarizer = self._new_backend(self.context.summarizer)
        return self._summarizer

    # -- the loop --------------------------------------------------------------

    async def run_to_end(self) -> Run:
        """Take turns until a stop rule ends the run; every message is stored as it completes."""
        run = self.run
        self._started = self.clock()  # the time limit counts from here: the run's start, or its resume
        for listener in self.listeners:
            listener.run_started(run, self.resumed)
        # Replay stored messages so watchers see the whole history on resume.
        for m in run.messages:
            for w in self.watchers:
                w.observe(m)
        try:
            stop = self._check_stop(None)
            while stop is None:
                message = await self._next_message()
                self._commit(message)
                stop = self._check_stop(message)
            self._finish("finished", stop)
        except ContextFullError as err:
            self._finish("finished", Stop(StopReason.CONTEXT_FULL, f"{err}; {CONTEXT_FULL_HINT}"))
        except BackendError as err:
            self._finish("error", Stop(StopReason.ERROR, str(err)))
        except (asyncio.CancelledError, KeyboardInterrupt):
            self._finish("interrupted", Stop(StopReason.INTERRUPTED, "stopped by the user"))
            raise
        except Exception as err:
            self._finish("error", Stop(StopReason.ERROR, f"{type(err).__name__}: {err}"))
            raise
        finally:
            if self.interjector is not None:
                self.interjector.close()
            others = [self._summarizer] if self._summarizer is not None else []
            for backend in [*self._backends.values(), *self._retired, *others]:
                await backend.aclose()
        return run

    async def _next_message(self) -> Message:
        run, spec = self.run, self.spec
        index = len(run.messages) + 1
        if index == 1:
            return self._injected(index, spec.participants[0].name, spec.opener)
        self._record_changes(index)
        # Injections due by the spec come first: their message numbers are fixed.
        injection = spec.injection_at(index)
        if injection is not None:
            self._record_once(
                WatchEvent(
                    kind="injection",
                    message_index=index,
                    detail=f"{injection.as_}: {_glimpse(injection.text)}",
                    data={"source": "spec", "speaker": injection.as_},
                )
            )
            return self._injected(index, injection.as_, injection.text)
        if self.interjector is not None and not self._interjections:
            self._interjections.extend(await self.interjector.between_turns(run))
        if self._interjections:
            said = self._interjections.popleft()
            self._record(
                WatchEvent(
                    kind="injection",
                    message_index=index,
                    detail=f"{said.speaker}: {_glimpse(said.text)}",
                    data={"source": "interactive", "speaker": said.speaker},
                )
            )
            return self._injected(index, said.speaker, said.text)
        return await self._generate(index)

    async def _generate(self, index: int) -> Message:
        run, spec = self.run, self.spec
        speaking = {q.name: q for q in spec.participants_at(index)}
        p = speaking[next_speaker(spec, run.messages).name]
        backend = self.backend_for(p)
        self._report_window(index, p, backend)
        shows_reasoning = {q.name for q in speaking.values() if q.show_reasoning}

        def render(messages: Sequence[Message]) -> list[ChatMessage]:
            return participant_view(
                p, messages, len(spec.participants), shows_reasoning=shows_reasoning, participants=spec.names
            )

        base_seed = p.seed if p.seed is not None else spec.seed
        sampling = Sampling(
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.max_tokens,
            seed=turn_seed(base_seed, index),
            extra=dict(p.extra),
        )
        view = await self.context.fit(p, backend, run.messages, p.max_tokens, render, seed=turn_seed(spec.seed, index))
        self._notify_start(index, p.name)

        def on_event(event: StreamEvent) -> None:
            for listener in self.listeners:
                if isinstance(event, TextDelta):
                    listener.text(run, index, p.name, event.text)
                else:
                    listener.retry(run, index, p.name, event)

        reply = await backend.complete(view, sampling, on_event)
        return Message(
            index=index,
            speaker=p.name,
            content=reply.text,
            model=p.model,
            reasoning=reply.reasoning,
            started_at=reply.started_at,
            ended_at=reply.ended_at,
            ttft=reply.ttft,
            latency=reply.latency,
            prompt_tokens=reply.usage.prompt_tokens,
            cached_tokens=reply.usage.cached_tokens,
            completion_tokens=reply.usage.completion_tokens,
            cache_write_tokens=reply.usage.cache_write_tokens,
            cost=reply.usage.cost,
            cost_source=reply.usage.cost_source,
            draft_tokens=reply.usage.draft_tokens,
            accepted_tokens=reply.usage.accepted_tokens,
            finish_reason=reply.finish_reason,
            attempts=reply.attempts,
        )

    def _injected(self, index: int, speaker: str, text: str) -> Message:
        """A message put in as it is (the opener, an injection): not generated, so no model or tokens."""
        self._notify_start(index, speaker)
        now = utcnow()
        return Message(index=index, speaker=speaker, content=text, started_at=now, ended_at=now, injected=True)

    def _record_changes(self, index: int) -> None:
        for ch in self.spec.changes:
            if ch.at == index:
                settings = ", ".join(f"{k} {_glimpse(str(v))}" for k, v in ch.settings.items())
                self._record_once(
                    WatchEvent(
                        kind="change",
                        message_index=index,
                        detail=f"{ch.participant}: {settings}",
                        data={"participant": ch.participant, **ch.settings},
                    )
                )

    def _report_window(self, index: int, p: Participant, backend: Backend) -> None:
        """Once per backend that holds a KV cache of its own (the embedded engine): its window and memory,
        and, when the window was sized to the run but capped at the model's, how much the run may need."""
        window, kv = getattr(backend, "context_length", None), getattr(backend, "kv_bytes", None)
        if window is None or kv is None or id(backend) in self._windows:
            return
        self._windows.add(id(backend))
        needed = run_context(self.spec, p) if p.context_length is None else None
        capped = needed is not None and needed > window
        note = f" (the model's maximum; the run may need up to {needed})" if capped else ""
        self._record(
            WatchEvent(
                kind="window",
                message_index=index,
                detail=f"{p.name}: {window} tokens{note}, KV cache {kv / 2**20:.0f} MiB",
                data={"participant": p.name, "window": window, "kv_bytes": kv, "run_needs": needed},
            )
        )

    def _record(self, ev: WatchEvent) -> None:
        """An event is stored, then told to the listeners (the same order as for messages)."""
        self.store.add_event(self.run.id, ev.kind, message_index=ev.message_index, detail=ev.detail, data=ev.data)
        self._recorded.add((ev.kind, ev.message_index))
        for listener in self.listeners:
            listener.event(self.run, ev)

    def _record_once(self, ev: WatchEvent) -> None:
        # A run resumed after a crash between an event and its message would record it twice.
        if (ev.kind, ev.message_index) not in self._recorded:
            self._record(ev)

    def _notify_start(self, index: int, speaker: str) -> None:
        for listener in self.listeners:
            listener.message_started(self.run, index, speaker)

    def _commit(self, message: Message) -> None:
        # Durable first: the message is in the store before anyone else hears of it.
        self.store.add_message(self.run.id, message)
        self.run.messages.append(message)
        for listener in self.listeners:
            listener.message_done(self.run, message)

    def _check_stop(self, message: Message | None) -> Stop | None:
        run, spec = self.run, self.spec
        stop: Stop | None = None
        if message is not None:
            for w in self.watchers:
                for ev in w.observe(message):
                    self._record(ev)
                    if ev.stop is not None and stop is None:
                        stop = Stop(ev.stop, ev.detail)
            stop = stop or end_marker_stop(run.messages, spec.names, spec.end_marker, spec.end_on)
        return (
            stop
            or max_messages_stop(run.messages, spec.max_messages)
            or token_budget_stop(run.messages, spec.token_budget)
            or time_limit_stop(self.clock() - self._started, spec.time_limit)
        )

    def _finish(self, status: str, stop: Stop) -> None:
        run = self.run
        run.status, run.stop_reason, run.stop_detail = status, stop.value, stop.detail
        run.ended_at = utcnow()
        self.store.finish_run(
            run.id, status=status, stop_reason=run.stop_reason, stop_detail=stop.detail, ended_at=run.ended_at
        )
        for listener in self.listeners:
            listener.run_ended(run)


def _glimpse(text: str, width: int = 60) -> str:
    """The start of a text on one line, for event details."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
