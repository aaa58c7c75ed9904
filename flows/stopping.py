"""Why a run stops early: a signal, a cancellation in the Prefect UI/API, or an endpoint that went down.

One ``StopRequest`` per run collects the first reason; the run stops claiming, cancels its in-flight
work, releases its claims and ends saying why.

Signals: Prefect's flow engine turns SIGTERM into an exception raised wherever the main thread happens
to be (inside the event loop's poll, or any coroutine), and every subflow re-installs that bridge, so a
handler the flow installs cannot hold. ``run_stoppable`` therefore runs the event loop in a worker
thread, where Prefect installs no handler, and keeps the signals in the main thread: the first SIGTERM
or SIGINT requests the stop, a second one ends the process the usual way. The run finds its
``StopRequest`` through ``current_stop`` (a context variable, as Prefect passes its own run context).
Where the flow runs in the main thread anyway (a deployment's process), a ``TerminationSignal`` or a
cancellation that reaches the flow is treated as the same stop, and ``watch_cancellation`` sees a
cancellation requested through the API.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from reasonmed.flows.best_effort import best_effort
from reasonmed.pipeline.stop import StopRequest

T = TypeVar("T")
CANCELLED_VIA_API = "cancelled through the Prefect API"
SIGNALS = (signal.SIGTERM, signal.SIGINT)


current_stop: contextvars.ContextVar[StopRequest | None] = contextvars.ContextVar(
    "reasonmed_stop", default=None
)


def run_stoppable(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())`` in a worker thread, with SIGTERM/SIGINT requesting a graceful stop."""
    stop = StopRequest()
    box: dict[str, Any] = {}

    def target() -> None:
        current_stop.set(stop)
        try:
            box["value"] = asyncio.run(main())
        except BaseException as exc:  # handed to the main thread as it is
            box["error"] = exc

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def on_signal(signum: int, _frame: object) -> None:
        sig = signal.Signals(signum)
        signal.signal(sig, signal.SIG_DFL if sig is signal.SIGTERM else signal.default_int_handler)
        stop.request_threadsafe(f"{sig.name} received", interrupted=True)

    # The run sees the caller's context (settings overrides, Prefect's settings, a progress display).
    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(target,), name="reasonmed-run", daemon=True
    )
    for sig in SIGNALS:
        signal.signal(sig, on_signal)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in box:
        raise box["error"]
    return box["value"]


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
                    stop.request(CANCELLED_VIA_API, interrupted=True)
