"""Rate limits against the simulator enforcing a hosted API's limit (600 requests a minute, a 1 s burst window).

With the endpoint's ``requests_per_minute`` set, the client sends no request the server refuses and keeps
within 10% of the limit; without it, 429s come; with only the server's ``x-ratelimit-*`` headers to go by,
fewer 429s come than when the server sends none.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from reasonmed.llm.openai_backend import OpenAICompatibleBackend
from reasonmed.sim.launcher import SimServer
from reasonmed.sim.metrics import fetch_metrics
from tests.fixtures_sim import sim_endpoint

RPM = 600  # 10 a second
REQUESTS = 60  # about 6 s at the limit
MESSAGES = [{"role": "user", "content": "Question: which drug first? A. Aspirin B. Heparin"}]


def limited_sim(*, headers: bool = True) -> SimServer:
    return SimServer(
        base_latency_ms=0,
        per_token_ms=0,
        rate_limit_rpm=RPM,
        rate_limit_window_s=1.0,
        rate_limit_headers=headers,
    )


def burst(server: SimServer, **endpoint: Any) -> tuple[int, int, float]:
    """``REQUESTS`` requests at once; (429s the server sent, requests it answered, requests per second)."""

    async def go() -> float:
        cfg = sim_endpoint(server, max_in_flight=16, max_retries=40, **endpoint)
        b = OpenAICompatibleBackend("sim", cfg)
        started = time.perf_counter()
        try:
            await asyncio.gather(
                *(b.complete(MESSAGES, temperature=0.7, max_tokens=64, seed=i) for i in range(REQUESTS))
            )
        finally:
            await b.aclose()
        return REQUESTS / (time.perf_counter() - started)

    rate = asyncio.run(go())
    m = fetch_metrics(server.base_url)
    return (
        int(m['requests_total{outcome="limited"}']),
        int(m['requests_total{outcome="ok"}']),
        rate,
    )


def test_client_limit_sends_nothing_refused_at_the_full_rate() -> None:
    with limited_sim() as server:
        refused, answered, rate = burst(server, requests_per_minute=RPM)
    assert (refused, answered) == (0, REQUESTS)
    assert abs(rate - RPM / 60) <= 0.1 * RPM / 60, rate


def test_server_headers_alone_lower_the_pace() -> None:
    with limited_sim(headers=False) as server:
        blind, _, _ = burst(server)
    with limited_sim(headers=True) as server:
        told, answered, _ = burst(server)
    assert answered == REQUESTS
    assert blind > 0  # without a client limit the server refuses
    assert told < blind / 2, (told, blind)
