"""A fault-injecting HTTP proxy for the tests, and a way to serve any ASGI app.

`FaultProxy` sits in front of a real OpenAI-compatible server on 127.0.0.1
and forwards every request with httpx, except that chat completion requests
may get a fault from its schedule (request number -> fault name or None):

    429         Too Many Requests with Retry-After
    500, 503    server errors
    stall       no answer at all for `stall` seconds (past the client's timeout)
    stall-mid   a few events of the stream, then silence for `stall` seconds
    cut         a few events, then the connection drops mid-body
    truncate    a few events, then a clean end: no finish reason, no [DONE]
    malformed   a few events, then an event whose JSON is broken
    echo-503    a 503 whose body repeats the request's Authorization header (a leaky server)
    echo-401    the same as a 401, which is not worth retrying

`running(app)` serves an ASGI app with uvicorn in a background thread and
yields its base URL; it stops when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import uvicorn

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

Schedule = Callable[[int], "str | None"]
FAULTS = ("429", "500", "503", "stall", "stall-mid", "cut", "truncate", "malformed", "echo-503", "echo-401")
EVENT_END = re.compile(rb"\r?\n\r?\n")


def no_faults(n: int) -> None:
    return None


def cycle(pattern: list[str | None]) -> Schedule:
    """Request n gets pattern[(n - 1) % len(pattern)]."""
    return lambda n: pattern[(n - 1) % len(pattern)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def send_json(send, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class FaultProxy:
    """An ASGI app: forwards to `upstream` (e.g. http://127.0.0.1:8080), injecting faults on schedule."""

    def __init__(
        self,
        upstream: str,
        schedule: Schedule = no_faults,
        *,
        stall: float = 30.0,
        retry_after: int = 1,
        cut_after: int = 3,
    ):
        self.upstream = upstream.rstrip("/")
        self.schedule = schedule  # may be replaced while the proxy runs
        self.stall = stall
        self.retry_after = retry_after
        self.cut_after = cut_after  # data events forwarded before a mid-stream fault
        self.requests = 0
        self.served: Counter[str] = Counter()  # faults actually injected, by name

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        fault = None
        if scope["method"] == "POST" and scope["path"].endswith("/chat/completions"):
            self.requests += 1
            fault = self.schedule(self.requests)
        if fault:
            self.served[fault] += 1
        if fault == "429":
            return await send_json(
                send, 429, {"error": {"message": "rate limited (injected)"}}, {"retry-after": str(self.retry_after)}
            )
        if fault in ("500", "503"):
            return await send_json(send, int(fault), {"error": {"message": f"injected {fault}"}})
        if fault in ("echo-503", "echo-401"):
            echoed = f"bad credentials: {headers.get('authorization', '')}"
            return await send_json(send, int(fault[-3:]), {"error": {"message": echoed}})
        if fault == "stall":
            await asyncio.sleep(self.stall)
            return await send_json(send, 504, {"error": {"message": "stalled (injected)"}})
        await self._forward(scope, headers, body, send, fault)

    async def _forward(self, scope, headers: dict[str, str], body: bytes, send, fault: str | None) -> None:
        url = self.upstream + scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        keep = {k: v for k, v in headers.items() if k in ("content-type", "authorization", "accept")}
        async with httpx.AsyncClient(timeout=None) as client:
            async with client.stream(scope["method"], url, headers=keep, content=body) as upstream:
                out = [
                    (k.encode(), v.encode())
                    for k, v in upstream.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
                ]
                await send({"type": "http.response.start", "status": upstream.status_code, "headers": out})
                buffer, events = b"", 0
                async for chunk in upstream.aiter_bytes():
                    buffer += chunk
                    while (end := EVENT_END.search(buffer)) is not None:
                        event, buffer = buffer[: end.end()], buffer[end.end() :]
                        events += event.startswith(b"data:")
                        if fault and events > self.cut_after:
                            return await self._break_stream(send, fault)
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                await send({"type": "http.response.body", "body": buffer})

    async def _break_stream(self, send, fault: str) -> None:
        if fault == "stall-mid":
            await asyncio.sleep(self.stall)
        elif fault == "malformed":
            broken = b'data: {"id": "chatcmpl-broken", "choices": [{"index": 0, "delta": {"content": "oo\r\n\r\n'
            await send({"type": "http.response.body", "body": broken, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        elif fault == "truncate":
            await send({"type": "http.response.body", "body": b""})
            return
        # cut (and a stall that outlived its client): return without ending the body; uvicorn drops the connection


@contextlib.contextmanager
def running(app, *, port: int | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a background thread; yields "http://127.0.0.1:PORT"."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"asgi-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the test server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
