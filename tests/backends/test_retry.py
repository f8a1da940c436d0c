"""The shared retry policy, without any server: attempts, waits, Retry-After, final errors, scrubbing."""

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from duologue.backends.base import Reply, RetryNotice
from duologue.backends.retry import (
    MAX_RETRY_AFTER,
    RetryPolicy,
    TransientError,
    call_with_retries,
    retry_after_seconds,
    scrub,
)
from duologue.errors import BackendError
from duologue.spec import Participant

SECRET = "sk-duologue-TEST-SECRET-1234"


def run(coro):
    return asyncio.run(coro)


def failing(times: int, error=lambda n: TransientError(f"HTTP 503 from test: down {n}")):
    """An attempt function that fails `times` times, then answers."""
    calls = []

    async def attempt(n: int) -> Reply:
        calls.append(n)
        if len(calls) <= times:
            raise error(len(calls))
        return Reply(text="ok")

    return attempt, calls


def test_policy_comes_from_the_participant():
    p = Participant(name="a", max_attempts=7, timeout=3.5, retry_base_delay=0.5, retry_max_delay=4)
    assert RetryPolicy.for_participant(p) == RetryPolicy(7, 3.5, 0.5, 4)
    assert RetryPolicy.for_participant(Participant(name="b")) == RetryPolicy(5, 60.0, 1.0, 30.0)


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (9, 8)]:
        waits = {policy.backoff(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered


def test_transient_failures_are_retried_and_the_attempt_count_recorded():
    attempt, calls = failing(2)
    notices: list[RetryNotice] = []
    reply = run(
        call_with_retries(attempt, RetryPolicy(max_attempts=5, base_delay=0.01), what="m", on_event=notices.append)
    )
    assert reply.text == "ok" and reply.attempts == 3 and calls == [1, 2, 3]
    assert [n.attempt for n in notices] == [1, 2]
    assert all("HTTP 503" in n.cause and 0.005 <= n.wait <= 0.02 for n in notices)


def test_retry_after_is_honoured():
    attempt, _ = failing(1, lambda n: TransientError("HTTP 429 from test: slow down", retry_after=0.3))
    notices: list[RetryNotice] = []
    reply = run(call_with_retries(attempt, RetryPolicy(base_delay=0.01), what="m", on_event=notices.append))
    assert reply.attempts == 2 and notices[0].wait >= 0.3


def test_giving_up_raises_one_line_backend_error_naming_the_cause():
    attempt, calls = failing(10)
    with pytest.raises(BackendError) as info:
        run(call_with_retries(attempt, RetryPolicy(max_attempts=3, base_delay=0.01), what="vllm/x"))
    assert calls == [1, 2, 3]
    assert str(info.value) == "vllm/x: HTTP 503 from test: down 3 (gave up after 3 attempts)"


def test_permanent_errors_are_not_retried():
    attempt, calls = failing(1, lambda n: BackendError("HTTP 401 from test: bad key"))
    with pytest.raises(BackendError, match="^m: HTTP 401 from test: bad key$"):
        run(call_with_retries(attempt, RetryPolicy(base_delay=0.01), what="m"))
    assert calls == [1]


def test_the_key_is_scrubbed_from_notices_and_errors():
    attempt, _ = failing(10, lambda n: TransientError(f"HTTP 503 from test: Bearer {SECRET}\nsecond line"))
    notices: list[RetryNotice] = []
    with pytest.raises(BackendError) as info:
        run(
            call_with_retries(
                attempt,
                RetryPolicy(max_attempts=2, base_delay=0.01),
                what="m",
                on_event=notices.append,
                secrets=[SECRET],
            )
        )
    assert SECRET not in str(info.value) and "\n" not in str(info.value) and "***" in str(info.value)
    assert SECRET not in notices[0].cause


def test_scrub_makes_one_line_and_ignores_empty_secrets():
    assert scrub(f"a\n  b {SECRET}", [None, "", SECRET]) == "a b ***"


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_header_forms(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_retry_after_as_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= retry_after_seconds({"retry-after": format_datetime(when, usegmt=True)}) <= 31


def test_an_absurd_retry_after_is_capped():
    attempt, _ = failing(1, lambda n: TransientError("HTTP 429", retry_after=10 * MAX_RETRY_AFTER))
    notices: list[RetryNotice] = []

    async def no_sleep_run():
        # Only the announced wait matters here; give up instead of sleeping it out.
        policy = RetryPolicy(max_attempts=2, base_delay=0.01)
        task = asyncio.ensure_future(call_with_retries(attempt, policy, what="m", on_event=notices.append))
        while not notices:
            await asyncio.sleep(0.01)
        task.cancel()

    run(no_sleep_run())
    assert notices[0].wait == MAX_RETRY_AFTER
