"""Fixtures that start the project's simulation server as a real process on a free loopback port.

``sim`` is one shared, fast, fault-free simulator for the whole session; ``sim_factory(**options)``
starts one with custom flags (faults, latency, accuracy, answer styles...) and stops it after the test.
Options are :class:`reasonmed.sim.settings.SimSettings` fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from reasonmed.config import EndpointConfig
from reasonmed.sim.faults import FAULT_KINDS, FaultPlan
from reasonmed.sim.launcher import SimServer

FAST = {"base_latency_ms": 0.0, "per_token_ms": 0.0}


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    """A fault-free simulator with no latency, shared by the session (reset its metrics if you count)."""
    with SimServer(**FAST) as server:
        yield server


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimServer]]:
    """``sim_factory(fault_rate=0.2, base_latency_ms=50)`` -> a started simulator, stopped at teardown."""
    started: list[SimServer] = []

    def make(**options: Any) -> SimServer:
        server = SimServer(**{**FAST, **options}).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def sim_endpoint(server: SimServer, model: str = "sim/test-model", **overrides: Any) -> EndpointConfig:
    """An endpoint aimed at ``server`` with test-friendly retry timings."""
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "model": model,
        "max_in_flight": 16,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 5.0,
    }
    options.update(overrides)
    return EndpointConfig(**options)


def fault_seed_for(
    pattern: Sequence[str | None],
    *,
    rate: float = 0.0,
    kinds: Sequence[str] = FAULT_KINDS,
    faults: dict[str, float] | None = None,
    limit: int = 100_000,
) -> int:
    """A ``--fault-seed`` whose first draws are exactly ``pattern`` (None = a normal reply).

    The simulator draws one fault per request in arrival order, so sequential requests (one request
    and its retries) meet exactly this sequence.
    """
    for seed in range(limit):
        plan = FaultPlan(rate, kinds, faults, seed)
        if all(plan.draw() == expected for expected in pattern):
            return seed
    raise AssertionError(f"no fault seed below {limit} yields {list(pattern)}")
