"""Engine emulation: at most ``max_num_seqs`` requests generate at once, the rest wait in FIFO order,
and each takes ``base + per_token x tokens``, like a vLLM server at its batch limit."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from reasonmed.sim.metrics import SimMetrics


class EngineEmulator:
    def __init__(
        self, *, max_num_seqs: int, base_latency_ms: float, per_token_ms: float, metrics: SimMetrics
    ) -> None:
        if max_num_seqs < 1:
            raise ValueError("max_num_seqs must be >= 1")
        self.base_s = base_latency_ms / 1000.0
        self.per_token_s = per_token_ms / 1000.0
        self._free = max_num_seqs
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._metrics = metrics

    def latency_s(self, completion_tokens: int) -> float:
        return self.base_s + self.per_token_s * completion_tokens

    async def generate(self, completion_tokens: int) -> None:
        """Hold a slot for the emulated generation time (cancellable: the slot is handed on)."""
        asked = time.monotonic()
        await self._acquire()
        self._metrics.engine_slot(True, time.monotonic() - asked)
        try:
            delay = self.latency_s(completion_tokens)
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            self._metrics.engine_slot(False)
            self._release()

    async def _acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # a slot was handed to us as we were cancelled: pass it on
            else:
                self._waiters.remove(fut)
            raise

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1
