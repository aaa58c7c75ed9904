"""Caps that hold across orchestrators: each process leases its share of a server's ``max_in_flight``.

``max_in_flight`` is what one engine should have in flight (vLLM's ``--max-num-seqs``). A per-process
semaphore enforces it only within one orchestrator: three workers sharing an engine would send three times
the cap, the excess would queue inside vLLM, and that queue time would count against each request's
timeout, turning a busy engine into timeouts and retries that repeat GPU work. Here each process holds a
lease row per server in the pipeline database (``db/slot_leases.py``) and admits requests only within its
share; the shares add up to at most the cap, are rebalanced when a process joins or leaves, are given back
when a run ends, and a dead process's share returns at once when it ran on this host (its pid is gone),
else after ``ttl_s``.

The database is asked in the background, never per request: a keeper task renews every share every
``refresh_s`` (every ``fast_refresh_s`` while a share is still moving towards its even part), so an LLM
call pays no round trip. A request waiting for a slot waits before it is sent, so the wait never counts
against its timeout (``openai_backend``: the slot is taken before the HTTP request starts).

Chosen over Prefect's global concurrency limits: those live on the Prefect server, which the embedded
default runs per process (ephemeral), so they would not be shared there; and the claims that orchestrators
already share are in this database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from reasonmed.db import slot_leases

log = logging.getLogger(__name__)


class AdjustableSlots:
    """A semaphore whose size can change while it is in use: the share this process may have in flight.

    Lowering the limit never interrupts a request; new ones wait until the count is below the new limit.
    Waiters are admitted in arrival order.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.in_use >= self.limit or self._waiters:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except BaseException:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                self._wake()  # a wake-up this waiter took is passed on
                raise
            if self.in_use < self.limit:
                break
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_use
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1


@dataclass
class _Server:
    key: str
    cap: int
    slots: AdjustableSlots
    share: slot_leases.Share | None = None

    @property
    def settled(self) -> bool:
        """At its even share with nothing to give back: nothing to renew early for."""
        s = self.share
        return s is not None and s.target == s.fair and s.slots == s.target


class CapLeases:
    """The keeper of this process's shares: ``slots_for`` hands a backend its slots, ``run`` keeps them."""

    def __init__(
        self,
        engine: Engine,
        *,
        holder: str,
        is_dead: Callable[[str], bool] = lambda _holder: False,
        refresh_s: float = 5.0,
        fast_refresh_s: float = 0.25,
        ttl_s: float = 30.0,
    ) -> None:
        if not 0 < fast_refresh_s <= refresh_s < ttl_s:
            raise ValueError("need 0 < fast_refresh_s <= refresh_s < ttl_s")
        self.engine = engine
        self.holder = holder  # unique per registry (pipeline/workers.py: cap_holder)
        self.is_dead = is_dead  # other holders known to be gone: their shares come back at once
        self.refresh_s, self.fast_refresh_s, self.ttl_s = refresh_s, fast_refresh_s, ttl_s
        self._servers: dict[str, _Server] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def slots_for(self, key: str, cap: int) -> AdjustableSlots:
        """The slots a backend sends to server ``key`` through: none until the first rebalance grants some."""
        server = self._servers.get(key)
        if server is None:
            server = self._servers[key] = _Server(key, cap, AdjustableSlots(0))
            self._wake.set()
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._keep(), name="cap-leases")
        return server.slots

    def shares(self) -> dict[str, slot_leases.Share | None]:
        return {k: s.share for k, s in self._servers.items()}

    async def refresh(self) -> None:
        """Rebalance every server's share once (in a worker thread: the event loop keeps sending)."""
        for server in list(self._servers.values()):
            share = await asyncio.to_thread(
                slot_leases.rebalance,
                self.engine,
                server=server.key,
                holder=self.holder,
                cap=server.cap,
                in_use=server.slots.in_use,
                ttl_s=self.ttl_s,
                is_dead=self.is_dead,
            )
            if server.share is None or share.target != server.share.target:
                log.debug(
                    "cap share %s: %d of %d (%d holders)", server.key, share.target, share.cap, share.holders
                )
            server.share = share
            server.slots.set_limit(share.target)

    async def _keep(self) -> None:
        """Renew the shares until cancelled; a failed renewal is retried at the next turn (the shares held
        stay valid until their time to live runs out, far longer than a turn)."""
        while True:
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a database blip must not end the run's sending
                log.warning("could not renew the cap shares (%s: %s); retrying", type(exc).__name__, exc)
            settled = all(s.settled for s in self._servers.values())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.refresh_s if settled else self.fast_refresh_s)

    async def aclose(self) -> None:
        """Stop renewing and give every share back, so the other holders take it at their next turn."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._servers:
            await asyncio.to_thread(slot_leases.release, self.engine, holder=self.holder)
