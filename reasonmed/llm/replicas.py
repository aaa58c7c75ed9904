"""An endpoint served by several replicas of one model, each question's requests kept on one replica.

vLLM's prefix cache (``--enable-prefix-caching``) keeps the KV blocks of prompts it has seen. A question's
verifications, its ranking and its summaries all begin with the question itself, so sent to the replica
that generated its paths they skip most of their prefill; a round-robin balancer in front of the replicas
scatters them and the cache misses. Here the replica is chosen by rendezvous hashing of the question's key
(its content hash) over the replicas' URLs: every orchestrator, in every run, sends a question to the same
replica, and when a replica is down only its own questions move, each to the next replica in its own
order, so the moved load spreads over the rest instead of doubling one neighbour's.

Each replica is a full ``OpenAICompatibleBackend``: its own connection pool, cap (``max_in_flight``), rate
limits and circuit breaker. A replica is down once its breaker opens (a streak of failed attempts, or a
refusal) or the preflight could not reach it; like a single endpoint's breaker it stays open for the rest of
the run. A request whose replica goes down under it is sent to the question's next replica (each replica at
most once), so a dying replica costs no question an attempt. The endpoint is down, and the run ends as for
any endpoint, only when every replica is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reasonmed.config import EndpointConfig
from reasonmed.llm.breaker import BreakerTrip, CircuitBreaker, raise_if_open
from reasonmed.llm.openai_backend import OpenAICompatibleBackend
from reasonmed.llm.rate_limit import Slots
from reasonmed.llm.types import Completion, LLMError, Message
from reasonmed.llm.urls import split_credentials
from reasonmed.llm.usage import UsageTracker
from reasonmed.redact import redact_url

log = logging.getLogger(__name__)

SlotsFor = Callable[[str, int], Slots]  # (server key, its cap) -> the slots requests to it hold


def replica_label(endpoint: str, index: int, cfg: EndpointConfig) -> str:
    """How logs, breaker trips and the preflight name one replica: ``qwen[1] (http://gpu-3:8000/v1)``."""
    return f"{endpoint}[{index}] ({redact_url(cfg.base_url or '')})"


def server_key(endpoint: str, cfg: EndpointConfig) -> str:
    """What a cap is held for across orchestrators: the endpoint and its server's URL (no credentials)."""
    return f"{endpoint} {redact_url(split_credentials((cfg.base_url or '').rstrip('/'))[0])}"


def server_slots(slots_for: SlotsFor | None, endpoint: str, cfg: EndpointConfig) -> Slots | None:
    """The slots requests to one server hold: its share of the cap across orchestrators, or None (the
    backend's own semaphore of ``max_in_flight``)."""
    return None if slots_for is None else slots_for(server_key(endpoint, cfg), cfg.max_in_flight)


def rendezvous_order(key: str, names: Sequence[str]) -> list[int]:
    """Indices of ``names`` in the order ``key`` tries them (highest random weight first): the same for a key
    wherever it is computed, and removing one name moves only the keys that ranked it first."""
    weights = [
        int.from_bytes(hashlib.sha256(f"{name}\x00{key}".encode()).digest()[:8], "big") for name in names
    ]
    return sorted(range(len(names)), key=lambda i: weights[i], reverse=True)


@dataclass(frozen=True, slots=True)
class Replica:
    label: str
    route_name: str  # what the rendezvous hash weighs: the URL without credentials, stable across reorderings
    backend: OpenAICompatibleBackend

    @property
    def down(self) -> bool:
        return self.backend.breaker.is_open


class ReplicaSetBreaker:
    """The endpoint's breaker as the run sees it: open (tripped) only once every replica's breaker is."""

    def __init__(self, endpoint: str, replicas: Sequence[Replica]) -> None:
        self.endpoint = endpoint
        self._replicas = replicas

    @property
    def trip(self) -> BreakerTrip | None:
        trips = [r.backend.breaker.trip for r in self._replicas]
        if not trips or any(t is None for t in trips):
            return None
        known = [t for t in trips if t is not None]
        last = max(known, key=lambda t: t.since)
        return BreakerTrip(
            self.endpoint,
            min(t.since for t in known),
            sum(t.failures for t in known),
            f"every replica is down; last: {last.endpoint}: {last.last_error}"[:300],
        )

    @property
    def is_open(self) -> bool:
        return self.trip is not None

    def check(self) -> None:
        raise_if_open(self.trip, self.endpoint)


class ReplicatedBackend:
    """One endpoint over several replicas; ``complete(..., affinity=question_key)`` picks the replica."""

    def __init__(
        self,
        name: str,
        cfg: EndpointConfig,
        api_key: str | None = None,
        *,
        usage: UsageTracker | None = None,
        context_tokens: int | None = None,
        down: Mapping[int, str] | None = None,
        slots_for: SlotsFor | None = None,
    ) -> None:
        """``down``: replicas the preflight could not reach (index -> what it found); they start out of the
        rotation. ``slots_for``: each replica's share of its cap across orchestrators (llm/shared_caps.py)."""
        self.name = name
        self.model = cfg.model
        replicas = []
        for i, replica_cfg in enumerate(cfg.replica_configs):
            label = replica_label(name, i, replica_cfg)
            breaker = CircuitBreaker(
                label, window_s=cfg.breaker_window_s, min_failures=cfg.breaker_min_failures
            )
            if down and i in down:
                breaker.force_open(f"preflight: {down[i]}")
            route_name = split_credentials((replica_cfg.base_url or "").rstrip("/"))[0]
            backend = OpenAICompatibleBackend(
                name,
                replica_cfg,
                api_key,
                usage=usage,
                context_tokens=context_tokens,
                breaker=breaker,
                slots=server_slots(slots_for, name, replica_cfg),
            )
            replicas.append(Replica(label, route_name, backend))
        self.replicas: tuple[Replica, ...] = tuple(replicas)
        self._route_names = [r.route_name for r in self.replicas]
        self.breaker = ReplicaSetBreaker(name, self.replicas)
        self._reported: set[str] = set()
        self.context_tokens = self.replicas[0].backend.context_tokens  # one budget for all (llm/preflight.py)

    def __repr__(self) -> str:
        return f"ReplicatedBackend(name={self.name!r}, model={self.model!r}, replicas={len(self.replicas)})"

    def order(self, key: str) -> list[Replica]:
        """The replicas in the order a request with this key tries them (its rendezvous order)."""
        return [self.replicas[i] for i in rendezvous_order(key, self._route_names)]

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        top_p: float = 1.0,
        n: int = 1,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        response_format: Mapping[str, Any] | None = None,
        affinity: str | None = None,
    ) -> list[Completion]:
        """Sent to the first replica of the question's order that is up; to the next when it goes down. A
        request of no question (``affinity`` None) is keyed by its own last message."""
        attempts = 0
        for replica in self.order(affinity if affinity is not None else messages[-1]["content"]):
            if replica.down:
                continue
            try:
                return await replica.backend.complete(
                    messages,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    top_p=top_p,
                    n=n,
                    seed=seed,
                    stop=stop,
                    response_format=response_format,
                )
            except LLMError as exc:
                if not replica.down:  # the request's own failure (or a glitch), not its replica's
                    raise
                attempts += exc.attempts
                self._report_down(replica)
        self.breaker.check()
        raise LLMError(  # every replica went down while this request moved between them
            f"endpoint {self.name}: every replica went down under this request",
            kind="endpoint_down",
            attempts=attempts,
            endpoint=self.name,
        )

    def _report_down(self, replica: Replica) -> None:
        """One warning per replica that went down during the run (the preflight's are in its lines)."""
        if replica.label in self._reported:
            return
        self._reported.add(replica.label)
        trip = replica.backend.breaker.trip
        log.warning(
            "replica %s is down (%s); its questions go to their next replica",
            replica.label,
            trip.last_error if trip is not None else "breaker open",
        )

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.backend.aclose()
