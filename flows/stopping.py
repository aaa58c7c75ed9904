"""Why a run stops early: a signal, a cancellation in the Prefect UI/API, or an endpoint that went down.

One ``StopRequest`` per run collects the first reason; the run stops claiming, cancels its in-flight
work, releases its claims and ends saying why. SIGTERM and SIGINT are taken over while the flow body
runs (Prefect's own SIGTERM bridge would otherwise raise inside whichever coroutine happens to run) and
handed back when it ends. A second signal of the same kind is not caught: it ends the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from flows.best_effort import best_effort

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.interrupted = False  # by a signal or a cancellation (as opposed to an endpoint going down)
        self._event = asyncio.Event()

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str, *, interrupted: bool) -> None:
        if self.reason is None:
            self.reason, self.interrupted = reason, interrupted
            self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


@contextlib.contextmanager
def signals_stop(stop: StopRequest) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGINT request a stop (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def on_signal(sig: signal.Signals) -> None:
        stop.request(f"{sig.name} received", interrupted=True)
        loop.remove_signal_handler(sig)  # a second one ends the process the usual way

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, previous[sig])


async def watch_cancellation(flow_run_id: str | None, stop: StopRequest, every_s: float = 3.0) -> None:
    """Poll the flow run's state; a run cancelled through the UI or API requests a stop."""
    if flow_run_id is None:
        return
    async with get_client() as client:
        while not stop.requested:
            await asyncio.sleep(every_s)
            with best_effort("cancellation check"):
                run = await client.read_flow_run(UUID(flow_run_id))
                if run.state is not None and run.state.type in (StateType.CANCELLING, StateType.CANCELLED):
                    stop.request("cancelled through the Prefect API", interrupted=True)
