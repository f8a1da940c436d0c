"""The turn loop.

The engine asks the backend of the participant whose turn it is for the next
message, commits it to the store before the next turn starts, lets watchers
decide whether the run should stop, and tells listeners what happened. It
knows nothing about HTTP, llama.cpp, SQLite details or the terminal.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Collection, Iterable, Protocol, Sequence

from . import __version__
from .backends.base import Backend, ChatMessage, ContextFullError, RetryNotice, Sampling, StreamEvent, TextDelta
from .errors import BackendError
from .records import Message, Run, utcnow
from .spec import ConversationSpec, Participant
from .stopping import Stop, StopReason, WatchEvent, end_marker_stop, max_messages_stop
from .store import Store


def new_run_id() -> str:
    """Sortable by start time, unique enough to type a prefix of."""
    return f"{utcnow():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def turn_seed(base: int | None, index: int) -> int:
    """A different but reproducible seed for each message, so a resumed run samples as the original would."""
    return ((base or 0) * 1_000_003 + index * 7_919) % (2**31 - 1)


def participant_view(
    participant: Participant, messages: Sequence[Message], n_participants: int,
    *, shows_reasoning: Collection[str] = (),
) -> list[ChatMessage]:
    """What one participant sees: its own messages as `assistant`, everyone else's as `user`.

    With three or more voices the others' messages carry the speaker's name, so
    the participant can tell them apart. Reasoning stays out, except that of the
    speakers named in `shows_reasoning` (participants with show_reasoning), which
    the others see as a <think>…</think> block before the text.
    """
    view = [ChatMessage("system", participant.system)] if participant.system else []
    for m in messages:
        if m.speaker == participant.name:
            view.append(ChatMessage("assistant", m.content))
            continue
        content = m.content
        if m.reasoning and m.speaker in shows_reasoning:
            content = f"<think>{m.reasoning}</think>\n\n{content}"
        if n_participants >= 3:
            view.append(ChatMessage("user", f"{m.speaker}: {content}"))
        else:
            view.append(ChatMessage("user", content))
    return view


def next_speaker(spec: ConversationSpec, messages: Sequence[Message]) -> Participant:
    """Round robin after the last participant who spoke (outside voices don't take a turn)."""
    names = spec.names
    for m in reversed(messages):
        if m.speaker in names:
            return spec.participants[(names.index(m.speaker) + 1) % len(names)]
    return spec.participants[0]


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


class Conversation:
    """One run of a spec: new, or continued from the store (resume, fork)."""

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
    ):
        self.spec = spec
        self.store = store
        self.listeners = list(listeners)
        self.watchers = list(watchers)
        self._backends = dict(backends or {})
        self.resumed = run is not None
        if run is None:
            run = Run(
                id=new_run_id(),
                spec=spec.model_dump(mode="json"),
                participants=spec.names,
                started_at=utcnow(),
                duologue_version=__version__,
                experiment_id=experiment_id,
            )
            store.create_run(run)
        else:
            store.claim_run(run.id)
            run.status, run.stop_reason, run.stop_detail, run.ended_at = "running", None, None, None
        self.run = run

    def backend_for(self, p: Participant) -> Backend:
        if p.name not in self._backends:
            from .backends.registry import make_backend

            self._backends[p.name] = make_backend(p)
        return self._backends[p.name]

    # -- the loop --------------------------------------------------------------

    async def execute(self) -> Run:
        run = self.run
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
            self._finish("finished", Stop(StopReason.CONTEXT_FULL, str(err)))
        except BackendError as err:
            self._finish("error", Stop(StopReason.ERROR, str(err)))
        except (asyncio.CancelledError, KeyboardInterrupt):
            self._finish("interrupted", Stop(StopReason.INTERRUPTED, "stopped by the user"))
            raise
        except Exception as err:
            self._finish("error", Stop(StopReason.ERROR, f"{type(err).__name__}: {err}"))
            raise
        finally:
            for backend in self._backends.values():
                await backend.aclose()
        return run

    async def _next_message(self) -> Message:
        run = self.run
        index = len(run.messages) + 1
        if index == 1:
            first = self.spec.participants[0]
            now = utcnow()
            self._notify_start(index, first.name)
            return Message(index=1, speaker=first.name, content=self.spec.opener, started_at=now, ended_at=now,
                           injected=True)
        p = next_speaker(self.spec, run.messages)
        self._notify_start(index, p.name)
        shows_reasoning = {q.name for q in self.spec.participants if q.show_reasoning}
        view = participant_view(p, run.messages, len(self.spec.participants), shows_reasoning=shows_reasoning)
        base_seed = p.seed if p.seed is not None else self.spec.seed
        sampling = Sampling(
            temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
            seed=turn_seed(base_seed, index), extra=dict(p.extra),
        )

        def on_event(event: StreamEvent) -> None:
            for listener in self.listeners:
                if isinstance(event, TextDelta):
                    listener.text(run, index, p.name, event.text)
                else:
                    listener.retry(run, index, p.name, event)

        reply = await self.backend_for(p).complete(view, sampling, on_event)
        return Message(
            index=index, speaker=p.name, content=reply.text, model=p.model, reasoning=reply.reasoning,
            started_at=reply.started_at, ended_at=reply.ended_at, ttft=reply.ttft, latency=reply.latency,
            prompt_tokens=reply.usage.prompt_tokens, cached_tokens=reply.usage.cached_tokens,
            completion_tokens=reply.usage.completion_tokens, finish_reason=reply.finish_reason,
            attempts=reply.attempts,
        )

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
                    self.store.add_event(run.id, ev.kind, message_index=ev.message_index, detail=ev.detail,
                                         data=ev.data)
                    for listener in self.listeners:
                        listener.event(run, ev)
                    if ev.stop is not None and stop is None:
                        stop = Stop(ev.stop, ev.detail)
            stop = stop or end_marker_stop(run.messages, spec.names, spec.end_marker, spec.end_on)
        return stop or max_messages_stop(run.messages, spec.max_messages)

    def _finish(self, status: str, stop: Stop) -> None:
        run = self.run
        run.status, run.stop_reason, run.stop_detail = status, stop.reason.value, stop.detail
        run.ended_at = utcnow()
        self.store.finish_run(run.id, status=status, stop_reason=run.stop_reason, stop_detail=stop.detail,
                              ended_at=run.ended_at)
        for listener in self.listeners:
            listener.run_ended(run)
