"""Client-side rate limits: keep an endpoint's requests and tokens per minute under its limits before a 429.

A hosted API refuses what goes over its per-minute limits with 429, and each 429 uses up an attempt of the
request (llm/openai_backend.py). So two things hold a request back before it is sent:

- **The pipeline file's limits** (``requests_per_minute``, ``tokens_per_minute`` on the endpoint), each a
  token bucket refilled at its rate. The request bucket holds a single request: OpenAI documents that a
  per-minute limit may be enforced over windows as short as a second ("60 RPM may be enforced as 1 request per
  second"), so the only burst safe against every window is none, and evenly spaced requests reach the full
  rate all the same. The token bucket holds one second's tokens; a request larger than that goes once the
  bucket is full and leaves it in debt, so the rate still holds.
- **The server's own account**, where it sends OpenAI's ``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*``
  headers: once what it said remains is used up (counting the requests sent since), nothing more goes until
  its reset time. Reports from responses that overlap are merged to the lower remainder and the later reset,
  since a response may carry a report older than one already seen.

A request's tokens are its prompt estimate (llm/context.py) plus its completion budget, as OpenAI counts them.
Waiting happens outside the request's timeout and without an in-flight slot (see ``RateLimiter.admit``).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class Slots(Protocol):
    """What a request holds while it is on the wire: an ``asyncio.Semaphore`` of the endpoint's cap, or its
    share of a cap held across orchestrators (``llm/shared_caps.py``)."""

    async def acquire(self) -> object: ...

    def release(self) -> None: ...


def parse_duration(value: str | None) -> float | None:
    """Seconds from an OpenAI reset header ("1s", "6m0s", "20ms", "1h2m3.5s"; a bare number is seconds);
    None if absent or unreadable (then the header is ignored, never guessed)."""
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number if math.isfinite(number) and number >= 0 else None
    parts = list(_DURATION_PART.finditer(text))
    if not text or not parts or "".join(p.group(0) for p in parts) != text:
        return None
    return sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2)] for p in parts)


def _count(value: str | None) -> float | None:
    """A remaining count from a header; None if absent, unreadable or negative."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


@dataclass(frozen=True, slots=True)
class ServerReport:
    """What one response said of the server's rate limits (None: not said)."""

    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None


def read_rate_headers(headers: Mapping[str, str]) -> ServerReport:
    """OpenAI's ``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*`` headers of a response."""
    return ServerReport(
        remaining_requests=_count(headers.get("x-ratelimit-remaining-requests")),
        remaining_tokens=_count(headers.get("x-ratelimit-remaining-tokens")),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
    )


class TokenBucket:
    """``rate_per_s`` refills up to ``capacity``; an amount goes once the bucket holds it (or is full)."""

    def __init__(self, rate_per_s: float, capacity: float, now: float) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self.rate_per_s, self.capacity = rate_per_s, capacity
        self.level, self._stamp = capacity, now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate_per_s)
            self._stamp = now

    def delay(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may go (0: now). More than the capacity waits for a full bucket."""
        self._refill(now)
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / self.rate_per_s)

    def take(self, amount: float, now: float) -> None:
        """Spend ``amount`` (after ``delay`` said 0); an oversized amount leaves the bucket in debt."""
        self._refill(now)
        self.level -= amount


class ServerPace:
    """One of the server's budgets (requests or tokens) as its headers last reported it, counted down by what
    was sent since; it holds requests back from the moment it is spent to its reset time."""

    def __init__(self) -> None:
        self.remaining: float | None = None
        self.reset_at = 0.0

    def observe(self, remaining: float | None, reset_s: float | None, now: float) -> None:
        if remaining is None or reset_s is None:
            return
        if self.remaining is None or now >= self.reset_at:
            self.remaining, self.reset_at = remaining, now + reset_s
        else:  # a response may carry an older report than one already seen: keep the stricter of the two
            self.remaining, self.reset_at = min(self.remaining, remaining), max(self.reset_at, now + reset_s)

    def _live(self, now: float) -> bool:
        if self.remaining is not None and now >= self.reset_at:
            self.remaining = None  # reset: the server's budget is whole again until it says otherwise
        return self.remaining is not None

    def delay(self, amount: float, now: float) -> float:
        if self._live(now) and self.remaining is not None and self.remaining < amount:
            return self.reset_at - now
        return 0.0

    def take(self, amount: float, now: float) -> None:
        if self._live(now) and self.remaining is not None:
            self.remaining -= amount


class RateLimiter:
    """An endpoint's pace: its configured buckets (if any) and the server's reported budgets."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self.requests = (
            TokenBucket(requests_per_minute / 60.0, 1.0, now) if requests_per_minute is not None else None
        )
        self.tokens = (
            TokenBucket(tokens_per_minute / 60.0, tokens_per_minute / 60.0, now)
            if tokens_per_minute is not None
            else None
        )
        self.server_requests = ServerPace()
        self.server_tokens = ServerPace()
        self._turn = asyncio.Lock()  # FIFO: one request at a time waits for budget, the rest queue behind it

    def delay(self, tokens: int) -> float:
        """Seconds until a request of ``tokens`` may be sent (0: now)."""
        now = self._clock()
        return max(
            self.requests.delay(1, now) if self.requests is not None else 0.0,
            self.tokens.delay(tokens, now) if self.tokens is not None else 0.0,
            self.server_requests.delay(1, now),
            self.server_tokens.delay(tokens, now),
        )

    def take(self, tokens: int) -> None:
        """Count a request as sent, in every budget."""
        now = self._clock()
        if self.requests is not None:
            self.requests.take(1, now)
        if self.tokens is not None:
            self.tokens.take(tokens, now)
        self.server_requests.take(1, now)
        self.server_tokens.take(tokens, now)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take in the server's report, if the response carries one."""
        report, now = read_rate_headers(headers), self._clock()
        self.server_requests.observe(report.remaining_requests, report.reset_requests_s, now)
        self.server_tokens.observe(report.remaining_tokens, report.reset_tokens_s, now)

    @asynccontextmanager
    async def admit(self, tokens: int, slots: Slots) -> AsyncIterator[None]:
        """Hold one of ``slots`` once the request may go, having counted it as sent.

        Budget is waited for without a slot (a slot serves others meanwhile) and before any timeout runs.
        It is spent only while a slot is held, at the moment of sending: a budget taken earlier and then kept
        waiting for a slot would let requests that queued behind busy slots leave together, in a burst.
        """
        async with self._turn:
            while True:
                while (wait := self.delay(tokens)) > 0:
                    await asyncio.sleep(wait)
                await slots.acquire()
                if self.delay(tokens) <= 0:  # a report may have come in while the slot was awaited
                    self.take(tokens)
                    break
                slots.release()
        try:
            yield
        finally:
            slots.release()
