"""The client's rate limiter and the simulator's, with hand-worked numbers on a fake clock (no sleeps)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from reasonmed.config import EndpointConfig
from reasonmed.llm.rate_limit import RateLimiter, ServerPace, TokenBucket, parse_duration, read_rate_headers
from reasonmed.sim.rate_limit import SimRateLimit, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("7.66s", 7.66),
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("", None),
        ("soon", None),
        ("1s junk", None),
        ("-1", None),
        ("nan", None),
        (None, None),
    ],
)
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    if seconds is None:
        assert parse_duration(text) is None
    else:
        assert parse_duration(text) == pytest.approx(seconds)


def test_read_rate_headers() -> None:
    report = read_rate_headers(
        {
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6ms",
        }
    )
    assert (report.remaining_requests, report.remaining_tokens) == (59, 149984)
    assert report.reset_requests_s == 1.0 and report.reset_tokens_s == pytest.approx(0.006)
    empty = read_rate_headers({"x-ratelimit-remaining-requests": "many"})
    assert empty.remaining_requests is None and empty.reset_requests_s is None


def test_bucket_spaces_requests_at_its_rate() -> None:
    # 120 a minute = 2 a second, holding 1: the second request waits 0.5 s, then one every 0.5 s.
    bucket = TokenBucket(2.0, 1.0, now=0.0)
    assert bucket.delay(1, 0.0) == 0.0
    bucket.take(1, 0.0)
    assert bucket.delay(1, 0.0) == pytest.approx(0.5)
    assert bucket.delay(1, 0.2) == pytest.approx(0.3)
    bucket.take(1, 0.5)
    assert bucket.delay(1, 0.5) == pytest.approx(0.5)
    assert bucket.delay(1, 10.0) == 0.0  # idle time refills only up to the capacity
    bucket.take(1, 10.0)
    assert bucket.delay(1, 10.0) == pytest.approx(0.5)


def test_bucket_oversized_request_waits_for_a_full_bucket_and_leaves_debt() -> None:
    # 60,000 tokens a minute = 1,000 a second, holding 1,000. A 2,500-token request goes at once (full),
    # leaving -1,500: the next 100-token request waits (1,500 + 100) / 1,000 = 1.6 s.
    bucket = TokenBucket(1000.0, 1000.0, now=0.0)
    assert bucket.delay(2500, 0.0) == 0.0
    bucket.take(2500, 0.0)
    assert bucket.level == -1500
    assert bucket.delay(100, 0.0) == pytest.approx(1.6)
    assert bucket.delay(2500, 1.0) == pytest.approx(1.5)  # needs a full bucket: 1,000 - (-500) at 1,000/s


def test_server_pace_holds_from_spent_to_reset() -> None:
    pace = ServerPace()
    assert pace.delay(1, 0.0) == 0.0  # nothing reported: no hold
    pace.observe(2, 3.0, now=0.0)  # 2 remaining, full again in 3 s
    assert pace.delay(1, 0.0) == 0.0
    pace.take(1, 0.0)
    pace.take(1, 0.5)
    assert pace.delay(1, 1.0) == pytest.approx(2.0)  # spent: wait to 3.0
    pace.observe(5, 1.0, now=1.0)  # an older report (earlier reset, more remaining) does not loosen it
    assert pace.delay(1, 1.0) == pytest.approx(2.0)
    assert pace.delay(1, 3.0) == 0.0  # reset: whole again until told otherwise
    pace.take(1, 3.0)
    assert pace.delay(1, 3.0) == 0.0


def test_server_pace_tokens_hold_when_the_request_does_not_fit() -> None:
    pace = ServerPace()
    pace.observe(1000, 0.02, now=0.0)  # "20ms"
    assert pace.delay(999, 0.0) == 0.0
    assert pace.delay(1001, 0.0) == pytest.approx(0.02)
    pace.observe(1000, None, now=0.0)  # a remainder without a reset is ignored, never guessed
    assert pace.delay(1001, 0.0) == pytest.approx(0.02)


def test_limiter_combines_buckets_and_reports() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=6000, clock=clock)
    # 1 request a second holding 1; 100 tokens a second holding 100.
    assert limiter.delay(80) == 0.0
    limiter.take(80)
    assert limiter.delay(80) == pytest.approx(1.0)  # the request bucket: 1 s; tokens: (80 - 20) / 100 = 0.6 s
    clock.now += 1.0
    assert limiter.delay(80) == 0.0
    limiter.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "4s"})
    assert limiter.delay(80) == pytest.approx(4.0)  # the server's word holds it longer than the buckets
    clock.now += 4.0
    assert limiter.delay(80) == 0.0


def test_limiter_without_settings_follows_only_the_server() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(100):
        assert limiter.delay(10_000) == 0.0
        limiter.take(10_000)
    limiter.observe({"x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "6m0s"})
    assert limiter.delay(4000) == 0.0
    limiter.take(4000)
    assert limiter.delay(4000) == pytest.approx(360.0)


def test_admit_waits_without_holding_a_slot() -> None:
    """While a request waits for budget, the endpoint's only slot stays free for others."""

    async def scenario() -> None:
        limiter = RateLimiter(requests_per_minute=60_000)  # 1 ms apart
        slots = asyncio.Semaphore(1)
        async with limiter.admit(10, slots):
            assert slots.locked()
        waiting = asyncio.create_task(limiter.admit(10, slots).__aenter__())
        await asyncio.sleep(0)
        assert not waiting.done() and not slots.locked()  # waiting for budget, not for the slot
        await waiting
        assert slots.locked()
        slots.release()

    asyncio.run(scenario())


@pytest.mark.parametrize("key", ["requests_per_minute", "tokens_per_minute"])
@pytest.mark.parametrize("value", [0, -5])
def test_config_limits_must_be_positive(key: str, value: float) -> None:
    with pytest.raises(ValidationError, match=key):
        EndpointConfig.model_validate({"base_url": "http://127.0.0.1:1/v1", "model": "m", key: value})


def test_config_limits_only_for_http_endpoints() -> None:
    ok = EndpointConfig(
        base_url="http://127.0.0.1:1/v1", model="m", requests_per_minute=500, tokens_per_minute=2e5
    )
    assert (ok.requests_per_minute, ok.tokens_per_minute) == (500, 200_000)
    with pytest.raises(ValidationError, match="kind 'openai'"):
        EndpointConfig(kind="vllm", model="m", requests_per_minute=500)


# --------------------------------------------------------------------------- the simulator's side


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.02, "20ms"), (0.0004, "1ms"), (1.0, "1s"), (1.5, "1.5s"), (360.0, "6m0s")]
)
def test_format_duration_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(max(seconds, 0.001))


def test_sim_limit_admits_a_window_then_refuses_with_retry_after() -> None:
    # 120 a minute over a 2 s window: a bucket of 4 refilled at 2 a second.
    limit = SimRateLimit(120, None, 2.0, now=0.0)
    answers = [limit.admit(10, 0.0) for _ in range(5)]
    assert [a.admitted for a in answers] == [True, True, True, True, False]
    assert dict(answers[0].headers) == {
        "x-ratelimit-limit-requests": "4",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "500ms",
    }
    assert dict(answers[3].headers)["x-ratelimit-reset-requests"] == "2s"
    assert answers[4].retry_after_s == 1  # 0.5 s until one fits, in whole seconds
    assert limit.admit(10, 0.5).admitted and not limit.admit(10, 0.5).admitted


def test_sim_token_limit_counts_tokens_and_can_hide_headers() -> None:
    # 6,000 tokens a minute over 1 s: 100 tokens, 100 a second.
    limit = SimRateLimit(None, 6000, 1.0, now=0.0, send_headers=False)
    assert limit.admit(70, 0.0).admitted
    refused = limit.admit(70, 0.0)
    assert not refused.admitted and refused.retry_after_s == 1 and refused.headers == ()
    assert limit.admit(70, 0.4).admitted  # 30 + 40 refilled = 70
