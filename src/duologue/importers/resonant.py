"""resonant-chat-arena transcripts: the HTML page it saves (resonant-chat-*.html).

The format is what jkingsman/resonant-chat-arena writes in resonant_chat/html_dump.py
(`save_html_checkpoint`): a header of metadata items (the models, "Turn Limit", …), the system
prompt(s) (`System Prompt`, or `Alice System Prompt` and `Bob System Prompt`; older versions
wrote none), then one `<div class="message alice|bob">` per message with the speaker's name, the
model, `Turn N` and the message as `_render_markdown_to_html` gave it: without pandoc the text
escaped (its `<thinking>` tags first turned into styled divs), which reads back exactly; with
pandoc Markdown rendered as HTML, which reads back as its text (emphasis and links are lost).
The page records no times, so the run's start is the file's modification time.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

from ..errors import TranscriptFormatError
from ..records import Message, Run
from ..stopping import StopReason
from . import ImportFormat, ImportOptions
from .common import file_time, foreign_run, head_text, new_ids, read_text

_TITLE = re.compile(r"<title>Resonant Chat\b")
_MESSAGE = re.compile(
    r'\n\s*<div class="message [^"]*">\s*<div class="message-header">\s*<div class="speaker-info">\s*'
    r'<span class="speaker-name">(?P<speaker>[^<]*)</span>\s*<span class="model-badge">(?P<model>[^<]*)</span>\s*'
    r'</div>\s*<div>\s*<span class="turn-number">Turn (?P<turn>\d+)</span>\s*'
    r'<span class="char-count">(?P<chars>[\d,]+) chars</span>\s*</div>\s*</div>\s*<div class="message-content">'
)
_TAIL = re.compile(
    r'</div>\s*(?:<div class="truncated-notice">[^<]*</div>\s*)?(?:<div class="filtered-notice">[^<]*</div>\s*)?'
    r"</div>\s*(?:</div>\s*</body>\s*</html>\s*)?\Z"
)
_PROMPT = re.compile(
    r'<div class="system-prompt-header">(?P<who>[^<]*)</div>\s*<div class="system-prompt-content">(?P<text>[^<]*)</div>'
)
_META = re.compile(
    r'<div class="metadata-label">(?P<label>[^<]*)</div>\s*<div class="metadata-value"[^>]*>(?P<value>[^<]*)'
)
# What _render_markdown_to_html puts for the thinking tags before escaping (matched regardless of case, so
# <THINK> reads back as <think>).
_OPEN = '<div class="thinking-block"><span class="thinking-tag">&lt;{tag}&gt;</span><div class="thinking-content">'
_CLOSE = '</div><span class="thinking-tag">&lt;/{tag}&gt;</span></div>'
_THINKING = {_OPEN.format(tag=t): f"<{t}>" for t in ("thinking", "think")} | {
    _CLOSE.format(tag=t): f"</{t}>" for t in ("thinking", "think")
}
_BLOCKS = {"p", "div", "pre", "blockquote", "ul", "ol", "li", "hr", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}


def detect(path: Path) -> bool:
    return _TITLE.search(head_text(path, 2048)) is not None


class _Text(HTMLParser):
    """The text of rendered HTML: blocks apart by an empty line, <br> a line break."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n" + ("- " if tag == "li" else ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def text(self) -> str:
        return re.sub(r"\n\s*\n(?:\s*\n)*", "\n\n", "".join(self.parts)).strip()


def message_text(rendered: str) -> str:
    """A message's text from its message-content div."""
    if "<" not in rendered:  # escaped plain text: exact
        text = html.unescape(rendered)
        for div, tag in _THINKING.items():
            text = text.replace(div, tag)
        return text
    parser = _Text()
    parser.feed(rendered)
    parser.close()
    return parser.text()


def read(path: Path, options: ImportOptions) -> list[Run]:
    page = read_text(path).replace("\r\n", "\n")
    found = list(_MESSAGE.finditer(page))
    if not found:
        raise TranscriptFormatError('no message found (no <div class="message …"> with a speaker and a turn)')
    messages = []
    for k, m in enumerate(found):
        chunk = page[m.end() : found[k + 1].start() if k + 1 < len(found) else len(page)]
        tail = _TAIL.search(chunk)
        if tail is None:
            line = page.count("\n", 0, m.end()) + 1
            raise TranscriptFormatError(f"line {line}: the message of turn {m['turn']} does not end as the page does")
        speaker = html.unescape(m["speaker"])
        messages.append(
            Message(
                index=k + 1,
                speaker=speaker,
                content=message_text(chunk[: tail.start()]),
                model=html.unescape(m["model"]) or None,
                injected=k == 0,  # the opening message is given, not generated
            )
        )
    speakers = list(dict.fromkeys(m.speaker for m in messages))
    for name in ("Alice", "Bob"):  # a page saved after the opening message only
        if len(speakers) < 2 and name not in speakers:
            speakers.append(name)
    systems: dict[str, str] = {}
    for prompt in _PROMPT.finditer(page):
        who, text = html.unescape(prompt["who"]).strip(), html.unescape(prompt["text"])
        if who == "System Prompt":
            systems.update({name: text for name in speakers})
        elif who.endswith(" System Prompt"):
            systems[who.removesuffix(" System Prompt")] = text
    meta = {html.unescape(m["label"]).strip(): html.unescape(m["value"]).strip() for m in _META.finditer(page)}
    stop_reason = stop_detail = None
    if meta.get("Turn Limit", "").isdigit() and int(found[-1]["turn"]) >= int(meta["Turn Limit"]):
        stop_reason, stop_detail = StopReason.MAX_MESSAGES.value, f"turn limit {meta['Turn Limit']}"
    started = file_time(path)
    return [
        foreign_run(
            new_ids(1)[0],
            path,
            speakers,
            messages,
            started_at=started,
            systems={k: v for k, v in systems.items() if k in speakers},
            stop_reason=stop_reason,
            stop_detail=stop_detail,
        )
    ]


FORMAT = ImportFormat(
    name="resonant",
    description="a resonant-chat-arena transcript (the resonant-chat-*.html page it saves)",
    suffixes=(".html", ".htm"),
    detect=detect,
    read=read,
)
