"""Token, call and cost totals per (endpoint, model): what a run spent, for its record and its report."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; None where the endpoint's price is not configured."""

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None


@dataclass(slots=True)
class UsageRow:
    endpoint: str
    model: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0
    cost_usd: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class UsageTracker:
    """Sums successful HTTP/engine calls; cost appears once a price is configured for the endpoint.

    Prompt tokens are counted per request (as servers bill them), not per choice, so an ``n > 1``
    request whose prefill is shared is not counted n times.
    """

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices = dict(prices or {})
        self._rows: dict[tuple[str, str], UsageRow] = {}
        self._lock = threading.Lock()  # backends on several loops/threads may share one tracker

    def _row(self, endpoint: str, model: str) -> UsageRow:
        key = (endpoint, model)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = UsageRow(endpoint, model)
        return row

    def record(
        self, endpoint: str, model: str, prompt_tokens: int | None, completion_tokens: int | None
    ) -> None:
        with self._lock:
            row = self._row(endpoint, model)
            row.calls += 1
            row.prompt_tokens += prompt_tokens or 0
            row.completion_tokens += completion_tokens or 0

    def record_retry(self, endpoint: str, model: str) -> None:
        with self._lock:
            self._row(endpoint, model).retries += 1

    def record_failure(self, endpoint: str, model: str) -> None:
        with self._lock:
            self._row(endpoint, model).failures += 1

    def snapshot(self) -> list[UsageRow]:
        """Copies, with cost computed from the configured prices (None when no price is set)."""
        out = []
        with self._lock:
            for (endpoint, model), row in sorted(self._rows.items()):
                price = self._prices.get(endpoint, Price())
                cost: float | None = None
                if price.input_per_mtok is not None or price.output_per_mtok is not None:
                    cost = (
                        row.prompt_tokens * (price.input_per_mtok or 0.0)
                        + row.completion_tokens * (price.output_per_mtok or 0.0)
                    ) / 1e6
                out.append(
                    UsageRow(
                        endpoint,
                        model,
                        row.calls,
                        row.prompt_tokens,
                        row.completion_tokens,
                        row.retries,
                        row.failures,
                        cost,
                    )
                )
        return out
