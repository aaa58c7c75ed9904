"""One backend per configured endpoint, created on first use inside the running event loop.

Backends own a connection pool and a semaphore, both bound to an event loop, so they are made lazily
(where the pipeline's loop runs) and shared by every task that names the endpoint: the per-endpoint
cap then holds across all of a run's questions. Each is made with its endpoint's context length, as the
preflight (``check``) found it, else as the pipeline file declares it, so requests fit their max_tokens to it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from reasonmed.config import ConfigError, EndpointConfig, PipelineConfig
from reasonmed.llm.breaker import BreakerTrip
from reasonmed.llm.context import ContextLength, declared_context
from reasonmed.llm.preflight import (
    EndpointCheck,
    check_endpoints,
    contexts_of,
    left_out_replicas,
    require_available,
)
from reasonmed.llm.shared_caps import CapLeases
from reasonmed.llm.types import ChatBackend
from reasonmed.llm.usage import Price, UsageRow, UsageTracker

if TYPE_CHECKING:
    from reasonmed.llm.batch import BatchBackend, Collected
    from reasonmed.llm.replicas import SlotsFor

SecretLoader = Callable[[str], str]


def price_of(cfg: EndpointConfig) -> Price:
    """What the endpoint's tokens cost: its prices, at the batch share for an endpoint with mode batch."""
    share = cfg.batch_price_factor if cfg.mode == "batch" else 1.0
    return Price(
        None if cfg.price_input_per_mtok is None else cfg.price_input_per_mtok * share,
        None if cfg.price_output_per_mtok is None else cfg.price_output_per_mtok * share,
    )


def resolve_api_key(
    cfg: EndpointConfig,
    endpoint: str = "endpoint",
    secret_loader: SecretLoader | None = None,
) -> str | None:
    """The endpoint's API key from the environment (or a secret store, e.g. a Prefect Secret block, read by
    ``secret_loader``); None if none is configured.

    A configured source that yields nothing is a configuration error: better to stop at start-up than
    to send unauthenticated requests all night.
    """
    if cfg.api_key_env:
        value = os.environ.get(cfg.api_key_env)
        if value:
            return value
        if not cfg.api_key_secret:
            raise ConfigError(
                f"endpoints.{endpoint}.api_key_env: environment variable {cfg.api_key_env} is not set or empty"
            )
    if cfg.api_key_secret:
        if secret_loader is None:
            raise ConfigError(
                f"endpoints.{endpoint}.api_key_secret: secrets are read by the Prefect flows; outside them "
                "use api_key_env"
            )
        return secret_loader(cfg.api_key_secret)
    return None


def make_backend(
    name: str,
    cfg: EndpointConfig,
    api_key: str | None,
    usage: UsageTracker | None = None,
    context: ContextLength | None = None,
    engine: Engine | None = None,
    left_out: Mapping[int, str] | None = None,
    slots_for: SlotsFor | None = None,
) -> ChatBackend:
    """``engine``: the database, where an endpoint with ``mode: batch`` keeps its batches and their results;
    ``left_out``: the replicas of a replicated endpoint the preflight could not reach; ``slots_for``: each
    server's share of its cap across orchestrators (llm/shared_caps.py), None for a per-process cap."""
    context_tokens = (context or declared_context(cfg)).tokens
    if cfg.mode == "batch":
        if engine is None:
            raise ConfigError(
                f"endpoints.{name}: mode batch keeps its batches in the database; none was given"
            )
        from reasonmed.llm.batch import BatchBackend

        return BatchBackend(name, cfg, api_key, engine=engine, usage=usage, context_tokens=context_tokens)
    if cfg.kind == "vllm":
        from reasonmed.llm.vllm_backend import VLLMEngineBackend

        return VLLMEngineBackend(name, cfg, usage=usage, context_tokens=context_tokens)
    if cfg.replicas:
        from reasonmed.llm.replicas import ReplicatedBackend

        return ReplicatedBackend(
            name,
            cfg,
            api_key,
            usage=usage,
            context_tokens=context_tokens,
            down=left_out,
            slots_for=slots_for,
        )
    from reasonmed.llm.openai_backend import OpenAICompatibleBackend
    from reasonmed.llm.replicas import server_slots

    return OpenAICompatibleBackend(
        name,
        cfg,
        api_key,
        usage=usage,
        context_tokens=context_tokens,
        slots=server_slots(slots_for, name, cfg),
    )


class LLMRegistry:
    """``registry.get("qwen")`` -> the endpoint's backend; ``await registry.aclose()`` when the run ends."""

    def __init__(
        self,
        pipeline_config: PipelineConfig,
        api_keys: Mapping[str, str] | None = None,
        secret_loader: SecretLoader | None = None,
        engine: Engine | None = None,
        cap_leases: CapLeases | None = None,
    ) -> None:
        """``cap_leases``: hold each server's ``max_in_flight`` across every orchestrator that sends to it,
        through lease rows in the database (llm/shared_caps.py); None: each process has the whole cap."""
        self._config = pipeline_config
        self._api_keys = dict(api_keys or {})
        self._secret_loader = secret_loader
        self._engine = engine
        self._backends: dict[str, tuple[ChatBackend, asyncio.AbstractEventLoop]] = {}
        # Each endpoint's context length: declared in the pipeline file, then as the preflight found it.
        self.contexts: dict[str, ContextLength] = {
            name: declared_context(cfg) for name, cfg in pipeline_config.endpoints.items()
        }
        # Replicas the preflight could not reach: they start out of the rotation (llm/replicas.py).
        self.left_out: dict[str, dict[int, str]] = {}
        prices = {name: price_of(cfg) for name, cfg in pipeline_config.endpoints.items()}
        self.tracker = UsageTracker(prices)
        self.cap_leases = cap_leases

    def get(self, endpoint_name: str) -> ChatBackend:
        """The endpoint's backend, made on first use; must be called with an event loop running."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("LLMRegistry.get() must be called from a running event loop") from None
        entry = self._backends.get(endpoint_name)
        if entry is not None:
            backend, owner = entry
            if owner is loop:
                return backend
            if not owner.is_closed():
                raise RuntimeError(
                    f"endpoint {endpoint_name}: its backend belongs to another running event loop; "
                    "use one registry per event loop"
                )
            # The loop it was made in has ended (e.g. a previous asyncio.run): its pool is unusable.
        cfg = self._config.endpoints.get(endpoint_name)
        if cfg is None:
            known = ", ".join(sorted(self._config.endpoints))
            raise KeyError(f"unknown endpoint {endpoint_name!r} (known: {known})")
        key = self._api_key(endpoint_name)
        backend = make_backend(
            endpoint_name,
            cfg,
            key,
            self.tracker,
            self.contexts[endpoint_name],
            self._engine,
            left_out=self.left_out.get(endpoint_name),
            slots_for=None if self.cap_leases is None else self.cap_leases.slots_for,
        )
        self._backends[endpoint_name] = (backend, loop)
        return backend

    def _api_key(self, name: str) -> str | None:
        return self._api_keys.get(name) or resolve_api_key(
            self._config.endpoints[name], name, self._secret_loader
        )

    async def check(self, timeout_s: float = 10.0) -> list[EndpointCheck]:
        """Ask every configured server once whether it is up and serves the configured model."""
        keys = {name: self._api_key(name) for name in self._config.endpoints}
        checks = await check_endpoints(self._config.endpoints, keys, timeout_s=timeout_s)
        self.contexts.update(contexts_of(checks))
        self.left_out = left_out_replicas(checks)
        return checks

    async def preflight(self, timeout_s: float = 10.0) -> None:
        """``check``, raising ``EndpointUnavailable`` (one line per failed endpoint) if any is not usable."""
        require_available(await self.check(timeout_s))

    @property
    def batch_endpoints(self) -> list[str]:
        """The endpoints whose requests go through the Batch API (``mode: batch``)."""
        return sorted(n for n, cfg in self._config.endpoints.items() if cfg.mode == "batch")

    def _batch_backends(self) -> list[BatchBackend]:
        from reasonmed.llm.batch import BatchBackend

        return [b for b in map(self.get, self.batch_endpoints) if isinstance(b, BatchBackend)]

    async def collect_batches(self, is_dead: Callable[[str], bool] = lambda _w: False) -> Collected:
        """Poll every batch endpoint's open batches and store the results of the finished ones."""
        from reasonmed.llm.batch import Collected

        total = Collected()
        for backend in self._batch_backends():
            got = await backend.collect(is_dead)
            total = Collected(
                total.stored + got.stored,
                total.still_open + got.still_open,
                total.completed_requests + got.completed_requests,
                total.failed_requests + got.failed_requests,
            )
        return total

    async def submit_batches(self, *, worker: str, run_id: int | None) -> int:
        """Send the requests queued for batch endpoints; returns the batches submitted."""
        submitted = 0
        for backend in self._batch_backends():
            if backend.queued:
                submitted += len(await backend.submit(worker=worker, run_id=run_id))
        return submitted

    def trips(self) -> list[BreakerTrip]:
        """The endpoints whose circuit breaker opened during this run."""
        out = []
        for backend, _ in self._backends.values():
            breaker = getattr(backend, "breaker", None)
            if breaker is not None and breaker.trip is not None:
                out.append(breaker.trip)
        return out

    @property
    def usage(self) -> list[UsageRow]:
        """Calls, tokens, retries, failures and cost per (endpoint, model) so far."""
        return self.tracker.snapshot()

    async def aclose(self) -> None:
        backends, self._backends = self._backends, {}
        loop = asyncio.get_running_loop()
        for backend, owner in backends.values():
            if owner is loop:
                await backend.aclose()
        if self.cap_leases is not None:
            await self.cap_leases.aclose()
