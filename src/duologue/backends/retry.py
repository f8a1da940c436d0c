"""The retry policy shared by the hosted backends.

Every request is one *attempt*; an attempt that fails in a way worth trying
again (429, 5xx, timeout, dropped connection, a stream cut before its end,
garbage on the wire) raises `TransientError`. `call_with_retries` runs the
attempts under tenacity with exponential backoff and jitter, honours
`Retry-After`, tells listeners before each retry, and turns the last failure
into a one-line `BackendError`. The SDKs' own retries are switched off
(max_retries=0) so attempts are counted here and only here.

Error text comes from servers we do not control; anything that reaches a
message, an event or a log goes through `scrub` first, so an API key a server
echoes back never leaves this module.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from ..errors import BackendError
from .base import OnEvent, Reply, RetryNotice

try:  # the SDKs moved from httpx to its successor httpx2; accept whichever is installed
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

if TYPE_CHECKING:
    from ..spec import Participant

# Statuses worth another try: timeouts, conflicts, rate limits, server trouble (529: Anthropic overloaded).
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
# A Retry-After longer than this is not waited out in full: the run would look hung.
MAX_RETRY_AFTER = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    timeout: float = 60.0  # seconds without a byte from the server (before or during the stream)
    base_delay: float = 1.0
    max_delay: float = 30.0

    @classmethod
    def for_participant(cls, p: Participant) -> RetryPolicy:
        return cls(p.max_attempts, p.timeout, p.retry_base_delay, p.retry_max_delay)

    def backoff(self, attempt: int) -> float:
        """Exponential, with "equal jitter": never zero, and concurrent runs spread out."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class TransientError(Exception):
    """One attempt failed in a way worth trying again."""

    def __init__(self, cause: str, retry_after: float | None = None):
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """One line, with every secret replaced: safe for messages, events and logs."""
    for secret in secrets:
        if secret and len(secret) >= 4:  # a tiny "secret" would mangle ordinary text
            text = text.replace(secret, "***")
    return " ".join(text.split())


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`retry-after-ms`, or `Retry-After` as seconds or as an HTTP date."""
    if not headers:
        return None
    try:
        if ms := headers.get("retry-after-ms"):
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_text(body: Any, fallback: str) -> str:
    """The human part of an error body: OpenAI {"error": {"message"}}, Anthropic the same, or raw text."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    if isinstance(body, str) and body.strip():
        return body[:300]
    return fallback


def translate_sdk_error(err: BaseException, provider: str) -> Exception | None:
    """An exception from the openai or anthropic SDK (or httpx under them) as TransientError or BackendError.

    Both SDKs share one shape (APIStatusError with status_code and response,
    APIConnectionError, APITimeoutError), so duck typing covers both. None means
    "not an error from the wire": let it propagate as the bug it is.
    """
    status = getattr(err, "status_code", None)
    if isinstance(status, int):
        response = getattr(err, "response", None)
        message = _error_text(getattr(err, "body", None), getattr(err, "message", "") or str(err))
        if status < 400:  # an error event inside a stream that began well, e.g. Anthropic's overloaded_error
            return TransientError(f"{provider} reported an error mid-stream: {message}")
        cause = f"HTTP {status} from {provider}: {message}"
        if status in RETRYABLE_STATUS:
            return TransientError(cause, retry_after_seconds(getattr(response, "headers", None)))
        return BackendError(cause)
    name = type(err).__name__
    if isinstance(err, httpx.TimeoutException) or name == "APITimeoutError":
        return TransientError(f"{provider} did not answer in time")
    if isinstance(err, httpx.TransportError) or name == "APIConnectionError":
        detail = err.__cause__ or err.__context__ or err
        return TransientError(f"connection to {provider} failed: {type(detail).__name__}: {detail}")
    if isinstance(err, json.JSONDecodeError):
        return TransientError(f"{provider} sent malformed JSON: {err}")
    if name == "APIError":  # an error event inside a stream
        message = _error_text(getattr(err, "body", None), str(err))
        return TransientError(f"{provider} reported an error mid-stream: {message}")
    return None


async def call_with_retries(
    attempt: Callable[[int], Awaitable[Reply]],
    policy: RetryPolicy,
    *,
    what: str,
    on_event: OnEvent | None = None,
    secrets: Iterable[str | None] = (),
) -> Reply:
    """Run `attempt(n)` until it returns, fails for good, or the attempts run out.

    `what` names the model in the final error. The Reply gets the number of
    the attempt that produced it.
    """
    secrets = tuple(secrets)

    def wait(state: RetryCallState) -> float:
        backoff = policy.backoff(state.attempt_number)
        retry_after = getattr(state.outcome.exception(), "retry_after", None) if state.outcome else None
        return max(backoff, min(retry_after, MAX_RETRY_AFTER)) if retry_after else backoff

    def notify(state: RetryCallState) -> None:
        if on_event is not None and state.outcome is not None and state.next_action is not None:
            cause = scrub(str(state.outcome.exception()), secrets)
            on_event(RetryNotice(attempt=state.attempt_number, cause=cause, wait=state.next_action.sleep))

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception_type(TransientError),
        before_sleep=notify,
        reraise=True,
    )
    n = 0
    try:
        async for state in retrying:
            with state:
                n = state.retry_state.attempt_number
                reply = await attempt(n)
                reply.attempts = n
                return reply
    except TransientError as err:
        tries = "1 attempt" if n == 1 else f"{n} attempts"
        raise BackendError(scrub(f"{what}: {err.cause} (gave up after {tries})", secrets)) from None
    except BackendError as err:
        raise BackendError(scrub(f"{what}: {err}", secrets)) from None
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
