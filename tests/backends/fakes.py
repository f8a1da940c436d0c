"""Deterministic servers speaking the real wire formats, for tests that need exact control.

`ScriptedOpenAI` answers chat completions as an OpenAI-compatible server
streams them (chat.completion.chunk events, a usage chunk when asked for
with stream_options.include_usage, then [DONE]); what it says comes from a
script function. `FakeAnthropic` speaks the Messages API streaming format as
Anthropic documents it (message_start, content_block_start,
content_block_delta with text_delta / thinking_delta / signature_delta,
content_block_stop, message_delta with stop_reason and usage, message_stop,
with ping events in between) and checks each request the way the API does:
text given as a string or as a list of text blocks, at most four
`cache_control` breakpoints. With `cache=True` it keeps a prompt cache as the
API does: each breakpoint's prefix (system, then the turns' blocks, up to and
including the marked block) is written; a request reads the longest of its
marked prefixes already written, writes the rest up to its last breakpoint,
and reports cache_read_input_tokens, cache_creation_input_tokens and the
uncached input_tokens after it (a token a whitespace-separated word).
Both record the requests they get.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faultproxy import lifespan, read_body, send_json


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n".encode()


async def stream_events(send, events: list[bytes], status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    for event in events:
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@dataclass
class Said:
    """What a scripted reply consists of: text pieces, reasoning pieces (in a delta field), usage."""

    text: list[str]
    reasoning: list[str] = field(default_factory=list)
    reasoning_field: str = "reasoning_content"
    finish: str = "stop"
    usage: dict | None = None  # sent only when the request asks for it


class ScriptedOpenAI:
    def __init__(self, script: Callable[[int, dict], Said], *, refuse_stream_options: bool = False):
        self.script = script
        self.refuse_stream_options = refuse_stream_options  # as some older servers do
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        body = json.loads(await read_body(receive))
        self.requests.append(body)
        self.headers.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        if self.refuse_stream_options and "stream_options" in body:
            return await send_json(
                send, 400, {"error": {"message": "Unrecognized request argument supplied: stream_options"}}
            )
        said = self.script(len(self.requests), body)
        base = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
        }

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            return sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({said.reasoning_field: r}) for r in said.reasoning]
        events += [chunk({"content": t}) for t in said.text]
        events.append(chunk({}, said.finish))
        if said.usage and (body.get("stream_options") or {}).get("include_usage"):
            events.append(sse({**base, "choices": [], "usage": said.usage}))
        events.append(sse("[DONE]"))
        await stream_events(send, events)


class FakeAnthropic:
    """The Messages API, streaming. Text is deterministic: "reply N" plus the last user turn's first words."""

    def __init__(self, api_key: str, *, faults: Callable[[int], str | None] = lambda n: None, cache: bool = False):
        self.api_key = api_key
        self.faults = faults  # request number -> "529", "cut", "error-event" or None
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.cache: dict[str, int] | None = {} if cache else None  # a written prefix -> its tokens
        self.usages: list[dict] = []  # the usage each request's message_start reported

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = json.loads(await read_body(receive))
        if scope["path"] != "/v1/messages":
            return await send_json(send, 404, error("not_found_error", f"no route {scope['path']}"))
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if key != self.api_key:
            return await send_json(send, 401, error("authentication_error", "invalid x-api-key"))
        if "anthropic-version" not in headers:
            return await send_json(send, 400, error("invalid_request_error", "anthropic-version header is required"))
        self.headers.append(headers)
        problem = check_request(body, headers["anthropic-version"])
        if problem:
            return await send_json(send, 400, error("invalid_request_error", problem))
        self.requests.append(body)
        n = len(self.requests)
        fault = self.faults(n)
        if fault == "529":
            return await send_json(send, 529, error("overloaded_error", "Overloaded"), {"retry-after": "0"})
        usage = cached_usage(body, self.cache) if self.cache is not None else None
        if usage is not None:
            self.usages.append(usage)
        await stream_events(send, message_events(n, body, fault, usage))


def text_blocks(content) -> list[dict]:
    """A system prompt's or a turn's content as text blocks (a string is one block without a breakpoint)."""
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def cached_usage(body: dict, cache: dict[str, int]) -> dict:
    """What the API's prompt cache does with a request: read the longest marked prefix written before,
    write every marked prefix, and bill the tokens after the last breakpoint as plain input."""
    blocks = text_blocks(body.get("system") or []) + [b for m in body["messages"] for b in text_blocks(m["content"])]
    total, prefix, marks = 0, [], []
    for b in blocks:
        total += len(b["text"].split())
        prefix.append(b["text"])
        if b.get("cache_control"):
            marks.append((json.dumps(prefix), total))
    read = max((tokens for key, tokens in marks if key in cache), default=0)
    last = marks[-1][1] if marks else 0
    for key, tokens in marks:
        cache[key] = tokens
    written = max(0, last - read)
    return {
        "input_tokens": total - read - written,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
        "output_tokens": 1,
    }


def error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


LEGACY_VERSION = "2023-06-01"  # the API version before 2026-10-21, which still took sampling settings


def check_request(body: dict, version: str = "2026-10-21") -> str | None:
    """The checks the real API makes that a client is most likely to get wrong."""
    for name in ("temperature", "top_p", "top_k"):
        if name in body and version != LEGACY_VERSION:
            return f"{name}: Extra inputs are not permitted"
    if "temperature" in body and "top_p" in body:
        return "`temperature` and `top_p` cannot both be specified for this model"
    if not 0 <= body.get("temperature", 0) <= 1:
        return "temperature: Input should be less than or equal to 1"
    if not isinstance(body.get("max_tokens"), int) or not body.get("model"):
        return "model and max_tokens are required"
    if not body.get("stream"):
        return "this fake only streams"
    messages = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return "messages: the first message must use the user role"
    for a, b in zip(messages, messages[1:], strict=False):
        if a["role"] == b["role"]:
            return "messages: roles must alternate between user and assistant"
    marks = 0
    for m in messages:
        if m["role"] not in ("user", "assistant"):
            return f"messages: unexpected role {m['role']!r} (the system prompt goes in `system`)"
        problem = check_content(m["content"], "messages")
        if problem:
            return problem
        marks += sum(1 for b in text_blocks(m["content"]) if b.get("cache_control"))
    if "system" in body:
        problem = check_content(body["system"], "system")
        if problem:
            return problem
        marks += sum(1 for b in text_blocks(body["system"]) if b.get("cache_control"))
    if marks > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {marks}."
    return None


def check_content(content, where: str) -> str | None:
    """A string, or a non-empty list of text blocks whose cache_control (if any) is {"type": "ephemeral"}."""
    if isinstance(content, str):
        return None if content.strip() else f"{where}: text content blocks must contain non-whitespace text"
    if not isinstance(content, list) or not content:
        return f"{where}: expected a string or a list of content blocks"
    for b in content:
        if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
            return f"{where}: expected text blocks"
        if not b["text"].strip():
            return f"{where}: text content blocks must contain non-whitespace text"
        control = b.get("cache_control")
        if control is not None and control.get("type") != "ephemeral":
            return f"{where}: cache_control.type: Input should be 'ephemeral'"
        if set(b) - {"type", "text", "cache_control"}:
            return f"{where}: Extra inputs are not permitted"
    return None


def message_events(n: int, body: dict, fault: str | None, usage: dict | None = None) -> list[bytes]:
    last = " ".join(b["text"] for b in text_blocks(body["messages"][-1]["content"]))
    words = f"reply {n}: you said {' '.join(last.split()[:4])}".split(" ")
    pieces = ([w + " " for w in words[:-1]] + [words[-1]])[: body["max_tokens"]]
    msg = {
        "id": f"msg_{n:04d}",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": body["model"],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10 * n, "output_tokens": 1, "cache_read_input_tokens": 5},
    }
    events = [sse({"type": "message_start", "message": msg}, "message_start")]
    index = 0
    if body.get("thinking"):
        events += [
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
                "content_block_start",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": f"pondering {n}"},
                },
                "content_block_delta",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": " quietly"},
                },
                "content_block_delta",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": "c2lnbmF0dXJl"},
                },
                "content_block_delta",
            ),
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        ]
        index = 1
    events.append(
        sse(
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        )
    )
    events.append(sse({"type": "ping"}, "ping"))
    for i, piece in enumerate(pieces):
        events.append(
            sse(
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                "content_block_delta",
            )
        )
        if i == 1 and fault == "cut":
            return events  # the stream ends here: no stop reason, no message_stop
        if i == 1 and fault == "error-event":
            return events + [sse(error("overloaded_error", "Overloaded"), "error")]
    events += [
        sse({"type": "content_block_stop", "index": index}, "content_block_stop"),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(pieces)},
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return events
