"""Why a run stops early, collected once: the first reason wins, and the run's loop can wait for it.

A signal handler (another thread), a cancellation seen through the Prefect API, or an endpoint's open
circuit breaker each request the stop; the build loop stops claiming, cancels its in-flight work,
releases its claims and ends saying why. Plain asyncio, so the domain's loop can hold one.
"""

from __future__ import annotations

import asyncio
import functools


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.interrupted = False  # by a signal or a cancellation (as opposed to an endpoint going down)
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def bind(self) -> None:
        """Attach to the running loop (the run's), so other threads can wake it."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if self.reason is not None:
            self._event.set()

    def request(self, reason: str, *, interrupted: bool) -> None:
        """From the run's own loop."""
        if self.reason is None:
            self.reason, self.interrupted = reason, interrupted
        if self._event is not None:
            self._event.set()

    def request_threadsafe(self, reason: str, *, interrupted: bool) -> None:
        """From another thread (a signal handler in the main thread)."""
        if self._loop is None or self._loop.is_closed():
            if self.reason is None:  # not started yet: the run sees it as soon as it binds
                self.reason, self.interrupted = reason, interrupted
            return
        self._loop.call_soon_threadsafe(functools.partial(self.request, reason, interrupted=interrupted))

    async def wait(self) -> None:
        assert self._event is not None, "bind() first"
        await self._event.wait()
