"""Context windows: what a participant is sent once the whole conversation no longer fits.

Before every generated message the engine asks `ContextKeeper.fit` for the
speaker's view. When the request (prompt + max_tokens) fits the speaker's
window, the view goes out as it is. When it would not, the spec's strategy
decides:

- `auto` (the default): as `truncate`, each trim recorded as a `context_trimmed`
  event, so a run left at its defaults never ends with `context_full` while the
  system prompt, history, opener, latest message and reply still fit.
- `stop`: the run ends with stop reason `context_full`.
- `truncate`: the oldest messages after the system prompt and the opener are
  left out of every view from now on.
- `summarize`: the same, and a summary of what was left out (written once, by
  the summarizer model) stands in for it. When more has to go later, the old
  summary and the newly dropped messages are summarised together, so no
  message is ever summarised twice.

Trimming goes down to `trim_to` of the window, not just below it: the views
then keep the same beginning for many turns, which is what lets the embedded
engine reuse its evaluated prefix instead of re-reading the window every turn.

Nothing is deleted: the store and the transcripts keep every message. What was
left out, and every summary, is recorded as a `context` event (`context_trimmed`
under `auto`), which is also how a resumed run picks up where its views were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import Backend, ChatMessage, ContextFullError, Sampling, estimate_tokens
from .records import Message
from .spec import ContextPolicy, ConversationSpec, Participant
from .stopping import WatchEvent

# The event kind of a trim the `auto` strategy made (the others record `context`).
AUTO_TRIM = "context_trimmed"
# The outside voice a summary speaks with in the views ("Summary of messages 2–37: …").
SUMMARY_VOICE = "Summary of messages {first}–{last}"
# Tokens a summary costs on top of its own text (its name, the chat-template framing).
SUMMARY_FRAMING = 24

Render = Callable[[Sequence[Message]], list[ChatMessage]]


@dataclass(frozen=True)
class Trim:
    """Messages 2..cut are out of every view; under `summarize`, `summary` stands in for them."""

    cut: int = 1  # 1: nothing is left out
    summary: str | None = None

    def kept(self, messages: Sequence[Message]) -> list[Message]:
        if self.cut <= 1:
            return list(messages)
        opener = [m for m in messages[:1] if m.index == 1]
        stand_in = []
        if self.summary:
            voice = SUMMARY_VOICE.format(first=2, last=self.cut)
            stand_in = [Message(index=self.cut, speaker=voice, content=self.summary, injected=True)]
        return [*opener, *stand_in, *(m for m in messages if m.index > self.cut)]


# Sizing a window to the run (the embedded engine's default): every message is counted at its speaker's
# max_tokens plus this much chat-template framing (role header, end of turn, a name), and the sum
# is rounded up to a multiple of WINDOW_STEP.
TEMPLATE_TOKENS = 8
WINDOW_STEP = 256


def run_context(spec: ConversationSpec, p: Participant) -> int:
    """The window participant `p`'s view needs for the whole run: its system prompt, history and the
    opener, then `max_messages` messages each as long as the longest max_tokens (and any injection's
    text). An upper estimate (text counted at 3.5 characters a token); the embedded engine caps it
    at the model's trained window."""
    systems = [p.system, *(ch.system for ch in spec.changes if ch.participant == p.name and ch.system)]
    fixed = [ChatMessage("system", max(systems, key=len)), *(ChatMessage(t.role, t.content) for t in p.history)]
    fixed.append(ChatMessage("user", spec.opener))
    longest = max(q.max_tokens for q in spec.participants)
    injected = sum(estimate_tokens([ChatMessage("user", inj.text)]) for inj in spec.injections)
    needed = estimate_tokens(fixed) + spec.max_messages * (longest + TEMPLATE_TOKENS) + injected
    return -(-needed // WINDOW_STEP) * WINDOW_STEP


def context_window(backend: Backend, participant: Participant) -> int | None:
    """The backend's own window when it has one (the embedded engine), else the one the spec gives."""
    return getattr(backend, "context_length", None) or participant.context_length


async def count_tokens(backend: Backend, view: list[ChatMessage]) -> int:
    counter = getattr(backend, "count_tokens", None)
    if counter is None:
        return estimate_tokens(view)
    return await asyncio.to_thread(counter, view)  # the first count may load the model


def trim_from_events(events: Sequence[dict[str, Any]]) -> Trim:
    """Where the views were when a run stopped: the latest `context` event that trimmed them."""
    for ev in reversed(events):
        data = ev.get("data") or {}
        if ev.get("kind") in ("context", AUTO_TRIM) and "cut" in data:
            return Trim(data["cut"], data.get("summary"))
    return Trim()


class ContextKeeper:
    """Fits each view into its speaker's window by the spec's strategy, and records what it did."""

    def __init__(
        self,
        policy: ContextPolicy,
        *,
        summarizer: Participant,
        summarizer_backend: Callable[[], Backend],
        record: Callable[[WatchEvent], None],
        trim: Trim | None = None,
    ):
        self.policy = policy
        self.summarizer = summarizer
        self._summarizer_backend = summarizer_backend
        self._record = record
        self.trim = trim or Trim()

    async def fit(
        self,
        p: Participant,
        backend: Backend,
        messages: Sequence[Message],
        max_tokens: int,
        render: Render,
        seed: int,
    ) -> list[ChatMessage]:
        """The view to send for the next message (index len(messages) + 1); ContextFullError if none fits."""
        index = len(messages) + 1
        view = render(self.trim.kept(messages))
        window = context_window(backend, p)
        if window is None:
            return view
        needed = await count_tokens(backend, view) + max_tokens
        if needed <= window:
            return view
        strategy = self.policy.strategy
        if strategy == "stop":
            self._record(
                WatchEvent(
                    kind="context",
                    message_index=index,
                    detail=f"{p.name}'s next request needs {needed} tokens of {window}: stopping",
                    data={
                        "strategy": strategy,
                        "action": "stop",
                        "participant": p.name,
                        "tokens": needed,
                        "window": window,
                    },
                )
            )
            raise ContextFullError(needed, window)
        # Each round leaves at least one more message out, so this ends; more than one round
        # happens only when a summary came out longer than the room kept for it.
        while True:
            cut = await self._choose_cut(p, backend, messages, max_tokens, render, window)
            if cut is None:
                raise ContextFullError(needed, window)
            dropped = [m for m in messages if self.trim.cut < m.index <= cut]
            summary = None
            if strategy == "summarize":
                summary = await self._summarize(self.trim.summary, dropped, seed)
            before, self.trim = needed, Trim(cut, summary)
            view = render(self.trim.kept(messages))
            needed = await count_tokens(backend, view) + max_tokens
            self._record_trim(p, dropped, before, needed, window, index)
            if needed <= window:
                return view

    async def _choose_cut(
        self,
        p: Participant,
        backend: Backend,
        messages: Sequence[Message],
        max_tokens: int,
        render: Render,
        window: int,
    ) -> int | None:
        """The smallest cut that brings the request down to trim_to of the window.

        The latest message always stays: it is what the speaker answers. When
        no cut gets down to trim_to (long messages, a small window), everything
        before the latest message goes, if that fits at all: cutting just below
        the window instead would mean cutting again at every turn.
        """
        reserve = self.summarizer.max_tokens + SUMMARY_FRAMING if self.policy.strategy == "summarize" else 0
        lowest, highest = self.trim.cut + 1, messages[-1].index - 1
        if lowest > highest:
            return None
        sizes: dict[int, int] = {}

        async def size(cut: int) -> int:
            if cut not in sizes:
                sizes[cut] = await count_tokens(backend, render(Trim(cut).kept(messages))) + max_tokens + reserve
            return sizes[cut]

        budget = int(window * self.policy.trim_to)
        if await size(highest) > budget:
            return highest if await size(highest) <= window else None
        lo, hi = lowest, highest  # fewer tokens the higher the cut: find the first cut within budget
        while lo < hi:
            mid = (lo + hi) // 2
            if await size(mid) <= budget:
                hi = mid
            else:
                lo = mid + 1
        return lo

    async def _summarize(self, previous: str | None, dropped: Sequence[Message], seed: int) -> str:
        """Fold the dropped messages into the summary, as many at a time as the summarizer's window takes."""
        s = self.summarizer
        backend = self._summarizer_backend()
        window = context_window(backend, s)
        sampling = Sampling(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=seed, extra=dict(s.extra)
        )
        summary = previous
        pending = [(m.speaker, m.content.strip()) for m in dropped]
        while pending:
            take, request = len(pending), None
            while request is None:
                candidate = summary_request(s.system, summary, pending[:take])
                if window is None or await count_tokens(backend, candidate) + s.max_tokens <= window:
                    request = candidate
                elif take > 1:
                    take = (take + 1) // 2
                elif pending[0][1]:  # one message longer than the window: its beginning has to do
                    speaker, text = pending[0]
                    pending[0] = (speaker, text[: len(text) // 2])
                else:
                    raise ContextFullError(await count_tokens(backend, candidate) + s.max_tokens, window)
            reply = await backend.complete(request, sampling)
            summary = reply.text.strip() or summary
            pending = pending[take:]
        return summary or ""

    def _record_trim(
        self, p: Participant, dropped: Sequence[Message], before: int, after: int, window: int, index: int
    ) -> None:
        strategy, trim = self.policy.strategy, self.trim
        first, last = dropped[0].index, dropped[-1].index
        what = f"message {first}" if first == last else f"messages {first}–{last}"
        verb = f"summarised by {self.summarizer.model}" if strategy == "summarize" else "left out of the views"
        data: dict[str, Any] = {
            "strategy": strategy,
            "action": "truncate" if strategy == "auto" else strategy,
            "participant": p.name,
            "dropped": [first, last],
            "cut": trim.cut,
            "tokens_before": before,
            "tokens_after": after,
            "window": window,
        }
        if strategy == "summarize":
            data |= {"summary": trim.summary, "summarizer": self.summarizer.model}
        self._record(
            WatchEvent(
                kind=AUTO_TRIM if strategy == "auto" else "context",
                message_index=index,
                data=data,
                detail=f"{what} {verb} ({p.name}'s request {before} → {after} tokens of {window})",
            )
        )


def summary_request(system: str, previous: str | None, messages: Sequence[tuple[str, str]]) -> list[ChatMessage]:
    """What the summarizer is asked: the summary so far, then the messages to fold into it."""
    parts = [f"Summary so far:\n{previous}"] if previous else []
    parts.append("Conversation:\n" + "\n\n".join(f"{speaker}: {text}" for speaker, text in messages))
    parts.append("Write the summary.")
    return [ChatMessage("system", system), ChatMessage("user", "\n\n".join(parts))]
