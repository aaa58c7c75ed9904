"""Keep data where the user put it: Prefect's analytics and SDK telemetry are off unless asked for.

Applied at every entry point (CLI, flows, tests) before Prefect is imported, so it holds whatever
directory a command runs from; an explicit setting by the user still wins (setdefault).
"""

from __future__ import annotations

import os

OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "1",  # Prefect SDK telemetry (and other tools honouring the convention)
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # Prefect server heartbeat
}
# Prefect's temporary server (the embedded default) gets 20 s to start; a loaded 2-core machine needed
# more than that (measured: bench/under_load.sh). Three minutes, then the CLI says so in one line.
STARTUP_DEFAULTS = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}


def apply_offline_defaults() -> None:
    for key, value in (OFFLINE_DEFAULTS | STARTUP_DEFAULTS).items():
        os.environ.setdefault(key, value)
