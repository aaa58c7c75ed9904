"""The simulator's rate limits: a hosted API's requests and tokens per minute, refused with 429 beyond them.

Each limit is a bucket of ``limit * window_s / 60`` refilled at ``limit / 60`` a second, so a short window
makes a test see in seconds what a real API does over a minute. A request is admitted only if every bucket
holds its share (tokens: its prompt plus its max_tokens, as OpenAI counts them); otherwise 429 with
``Retry-After`` (whole seconds until it would fit). Admitted or not, the reply carries OpenAI's headers:
``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*``, and ``x-ratelimit-reset-*`` (time until the bucket is
full again, written as OpenAI writes it: "1s", "6m0s", "20ms").

It is written apart from the client's limiter (reasonmed/llm/rate_limit.py) on purpose: a test of the client
against the simulator must not pass because both share the same mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def format_duration(seconds: float) -> str:
    """OpenAI's way of writing a reset time: "20ms" under a second, "1.5s", "6m0s"."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60.0)
    text = f"{round(rest, 3):g}s"
    return f"{int(minutes)}m{text}" if minutes else text


class _Budget:
    def __init__(self, per_minute: float, window_s: float, now: float) -> None:
        self.capacity = max(1.0, per_minute * window_s / 60.0)
        self.rate_per_s = per_minute / 60.0
        self.level, self.stamp = self.capacity, now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + max(0.0, now - self.stamp) * self.rate_per_s)
        self.stamp = max(self.stamp, now)

    def short_by(self, amount: float) -> float:
        """Seconds until ``amount`` fits (0: it fits); more than the capacity fits a full bucket."""
        return max(0.0, min(amount, self.capacity) - self.level) / self.rate_per_s

    def headers(self, kind: str) -> list[tuple[str, str]]:
        return [
            (f"x-ratelimit-limit-{kind}", str(int(self.capacity))),
            (f"x-ratelimit-remaining-{kind}", str(max(0, math.floor(self.level)))),
            (f"x-ratelimit-reset-{kind}", format_duration((self.capacity - self.level) / self.rate_per_s)),
        ]


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer to one request: admitted or how long to wait, and the headers to send."""

    admitted: bool
    retry_after_s: int
    headers: tuple[tuple[str, str], ...]


class SimRateLimit:
    """Requests and tokens per minute (either may be None: not limited)."""

    def __init__(
        self, rpm: float | None, tpm: float | None, window_s: float, now: float, *, send_headers: bool = True
    ) -> None:
        self._requests = _Budget(rpm, window_s, now) if rpm is not None else None
        self._tokens = _Budget(tpm, window_s, now) if tpm is not None else None
        self._send_headers = send_headers

    def admit(self, tokens: int, now: float) -> Admission:
        wanted = [(b, n) for b, n in ((self._requests, 1), (self._tokens, tokens)) if b is not None]
        for budget, _ in wanted:
            budget.refill(now)
        wait = max((budget.short_by(n) for budget, n in wanted), default=0.0)
        if wait <= 0:
            for budget, n in wanted:
                budget.level -= n
        headers: list[tuple[str, str]] = []
        if self._send_headers:
            if self._requests is not None:
                headers += self._requests.headers("requests")
            if self._tokens is not None:
                headers += self._tokens.headers("tokens")
        return Admission(wait <= 0, math.ceil(wait), tuple(headers))
