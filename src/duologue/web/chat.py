"""A run laid out as a chat: who sits where, in which colour, and where the loop is folded away."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..records import Message
from ..store import ExactLoopRecord

COLOURS = 6  # speaker colour classes in viewer.css: c0 … c5


@dataclass(frozen=True)
class Seat:
    side: str  # "left", "right", or "centre" for voices that are not participants
    colour: str  # a CSS class


def seat(speaker: str, participants: Sequence[str]) -> Seat:
    """Participants alternate sides in speaking order, each in a colour of its own."""
    if speaker not in participants:
        return Seat("centre", "outside")
    i = list(participants).index(speaker)
    return Seat("left" if i % 2 == 0 else "right", f"c{i % COLOURS}")


@dataclass
class Block:
    """One item of the chat: a message, the loop-onset marker, or the folded looped tail."""

    kind: str  # "message", "onset", "repeats" or "mark" (a theme marker: attractor entry, convergence onset)
    message: Message | None = None
    messages: list[Message] = field(default_factory=list)  # the folded tail
    label: str = ""
    anchor: str = ""  # a mark's element id


def repeats_label(period: int, repeated_messages: int) -> str:
    """ "… repeated 40 times", with any incomplete last cycle named too."""
    full, rest = divmod(repeated_messages, period)
    label = f"… repeated {full} time{'s' if full != 1 else ''}"
    if rest:
        label += f" (and {rest} message{'s' if rest != 1 else ''} more)"
    return label


def chat_blocks(
    messages: Sequence[Message],
    exact_loop: ExactLoopRecord | None,
    marks: Mapping[int, Sequence[tuple[str, str]]] | None = None,
) -> list[Block]:
    """The messages in order; with an exact loop, a marker before its first cycle and the
    repeats after that cycle folded into one block (messages first_repeat..last). `marks`
    ({message index: [(id, text)]}) puts theme markers before their messages (before the
    folded block when the message is folded away)."""
    marks = marks or {}

    def marked(index: int) -> list[Block]:
        return [Block("mark", label=text, anchor=anchor) for anchor, text in marks.get(index, ())]

    if not exact_loop:
        return [b for m in messages for b in (*marked(m.index), Block("message", m))]
    period, onset = exact_loop.period, exact_loop.onset
    first_repeat, last = exact_loop.first_repeat, exact_loop.last
    blocks: list[Block] = []
    tail: list[Message] = []
    tail_marks: list[Block] = []
    for m in messages:
        if first_repeat <= m.index <= last:
            tail.append(m)
            tail_marks += marked(m.index)
            if m.index == last or m is messages[-1]:
                blocks += tail_marks
                blocks.append(Block("repeats", messages=tail, label=repeats_label(period, len(tail))))
        else:
            blocks += marked(m.index)  # before the loop's own marker, which stays next to its message
            if m.index == onset:
                detail = exact_loop.detail or f"period {period} since message {onset}"
                blocks.append(Block("onset", label=f"loop onset: {detail} ({exact_loop.kind or ''})"))
            blocks.append(Block("message", m))
    return blocks
