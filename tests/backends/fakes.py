"""Deterministic servers speaking the real wire formats, for tests that need exact control.

`ScriptedOpenAI` answers chat completions as an OpenAI-compatible server
streams them (chat.completion.chunk events, a usage chunk when asked for
with stream_options.include_usage, then [DONE]); what it says comes from a
script function. `FakeAnthropic` speaks the Messages API streaming format as
Anthropic documents it (message_start, content_block_start,
content_block_delta with text_delta / thinking_delta / signature_delta,
content_block_stop, message_delta with stop_reason and usage, message_stop,
with ping events in between) and checks each request the way the API does.
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

    def __init__(self, api_key: str, *, faults: Callable[[int], str | None] = lambda n: None):
        self.api_key = api_key
        self.faults = faults  # request number -> "529", "cut", "error-event" or None
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []

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
        await stream_events(send, message_events(n, body, fault))


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
    for m in messages:
        if m["role"] not in ("user", "assistant"):
            return f"messages: unexpected role {m['role']!r} (the system prompt goes in `system`)"
        if not isinstance(m["content"], str) or not m["content"].strip():
            return "messages: text content blocks must contain non-whitespace text"
    if "system" in body and not isinstance(body["system"], str):
        return "system: expected a string"
    return None


def message_events(n: int, body: dict, fault: str | None) -> list[bytes]:
    last = body["messages"][-1]["content"]
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
        "usage": {"input_tokens": 10 * n, "output_tokens": 1, "cache_read_input_tokens": 5},
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
