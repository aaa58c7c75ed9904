"""Run the simulator until SIGINT/SIGTERM; announce the bound address on stdout for the launcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from reasonmed.sim.app import SERVER_HEADERS, SimApp
from reasonmed.sim.http import serve
from reasonmed.sim.settings import SimSettings

READY_PREFIX = "REASONMED_SIM_READY "
log = logging.getLogger("reasonmed.sim")


async def run(settings: SimSettings) -> None:
    app = SimApp(settings)
    server = await serve(
        app.handle,
        settings.host,
        settings.port,
        server_headers=SERVER_HEADERS,
        body_limits=app.body_limits(),
    )
    host, port = server.sockets[0].getsockname()[:2]
    url = f"http://{host}:{port}"
    # One machine-readable line on stdout (port 0 means the OS picked it); everything else goes to stderr.
    print(f"{READY_PREFIX}{url}", flush=True)
    log.warning("reasonmed SIMULATOR serving simulated completions at %s/v1 (not a real model)", url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # non-POSIX: Ctrl-C still ends it
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        app.close()


def main(settings: SimSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run(settings))
