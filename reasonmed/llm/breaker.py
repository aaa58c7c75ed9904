"""A per-endpoint circuit breaker: when every request to an endpoint has failed for a while, stop sending.

Retries ride out a blip; they cannot tell a dead endpoint from a slow one, so without a breaker a run
whose server died keeps every question retrying until each exhausts its attempts, and the night ends
with hundreds of questions failed for one server's sake. The breaker watches the streak of failed
attempts (connection refused, timeouts, 5xx, unreadable bodies): once the streak has lasted
``window_s`` and counts at least ``min_failures`` attempts, with no success in between, it opens. An
open breaker fails requests at once with ``endpoint_down`` (nothing is sent), and the build stops
claiming questions and ends saying which endpoint failed and since when. An ``endpoint_refused``
answer (401/403/404/405: wrong key, URL or route) opens it at once: no amount of waiting fixes it.

A response that is refused for the request's own sake (400, 413, 422) or rate-limited (429) proves the
endpoint is alive, so it ends a streak like a success does. The breaker does not close by itself: a
run that met a dead endpoint ends, and the next run (after the preflight finds it up) starts afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from reasonmed.llm.types import LLMError

# Attempt outcomes that say nothing good about the endpoint.
_STREAK_KINDS = frozenset({"connection", "timeout", "server_error", "bad_response"})


@dataclass(frozen=True, slots=True)
class BreakerTrip:
    """Why an endpoint's breaker opened: what the run's outcome and its last line report."""

    endpoint: str
    since: datetime  # first failure of the streak (UTC)
    failures: int
    last_error: str

    def describe(self) -> str:
        return (
            f"endpoint {self.endpoint} failed every request since {self.since:%Y-%m-%d %H:%M:%S} UTC "
            f"({self.failures} failed attempt(s); last: {self.last_error})"
        )


def raise_if_open(trip: BreakerTrip | None, endpoint: str) -> None:
    """The ``endpoint_down`` error of an open breaker (a request is not sent); nothing while it is closed."""
    if trip is not None:
        raise LLMError(
            f"circuit open: {trip.describe()}", kind="endpoint_down", attempts=0, endpoint=endpoint
        )


class CircuitBreaker:
    def __init__(
        self,
        endpoint: str,
        *,
        window_s: float,
        min_failures: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self._window_s = window_s
        self._min_failures = min_failures
        self._clock = clock
        self._lock = threading.Lock()
        self._streak_started: float | None = None
        self._streak_since: datetime | None = None
        self._streak = 0
        self.trip: BreakerTrip | None = None

    @property
    def is_open(self) -> bool:
        return self.trip is not None

    def check(self) -> None:
        """Raise ``endpoint_down`` instead of sending, once the breaker is open."""
        raise_if_open(self.trip, self.endpoint)

    def record(self, kind: str | None, detail: str = "") -> None:
        """One attempt's outcome: ``None`` for a usable answer, else its error kind."""
        with self._lock:
            if self.trip is not None:
                return
            if kind == "endpoint_refused":
                self._streak += 1
                self._open(detail, at_once=True)
                return
            if kind not in _STREAK_KINDS:
                self._streak_started, self._streak_since, self._streak = None, None, 0
                return
            if self._streak_started is None:
                self._streak_started, self._streak_since = self._clock(), datetime.now(UTC)
            self._streak += 1
            if self._streak >= self._min_failures and self._clock() - self._streak_started >= self._window_s:
                self._open(detail, at_once=False)

    def force_open(self, detail: str) -> None:
        """Open now, before any request: a replica the preflight could not reach (llm/replicas.py)."""
        with self._lock:
            if self.trip is None:
                self._open(detail, at_once=True)

    def _open(self, detail: str, *, at_once: bool) -> None:
        since = datetime.now(UTC) if at_once or self._streak_since is None else self._streak_since
        self.trip = BreakerTrip(self.endpoint, since, max(self._streak, 1), detail[:300])
