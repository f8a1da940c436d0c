"""An OpenAI-compatible chat server that answers instantly, for measuring the harness alone.

Speaks the real wire protocol (streamed chat.completion.chunk events over SSE,
a usage chunk, then [DONE]) so the official openai SDK parses it as it would a
real server. Each reply is short, different every time (so no loop detector
stops a conversation early), and costs the server almost nothing.

    python bench/instant_server.py --port 8765
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

WORDS = "river lamp orbit cedar violet anchor pepper quartz meadow ember falcon tundra harbor".split()


def make_app() -> Starlette:
    counter = itertools.count(1)

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "instant", "object": "model", "owned_by": "bench"}]})

    async def chat(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        n = next(counter)
        words = [WORDS[(n * k * 7 + k) % len(WORDS)] for k in range(1, 9)]
        text = f"Reply {n}: " + " ".join(words) + "."
        created = int(time.time())
        base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": created, "model": "instant"}
        usage = {"prompt_tokens": 10 * len(body.get("messages", [])), "completion_tokens": 12, "total_tokens": 0}
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            )

        def events():
            half = len(text) // 2
            chunks = [{"role": "assistant", "content": ""}, {"content": text[:half]}, {"content": text[half:]}]
            for delta in chunks:
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    uvicorn.run(make_app(), host="127.0.0.1", port=args.port, log_level="warning", backlog=4096)
