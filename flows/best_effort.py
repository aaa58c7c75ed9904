"""``best_effort`` (``reasonmed/best_effort.py``) logging to the current flow or task run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from reasonmed.best_effort import Log
from reasonmed.best_effort import best_effort as _best_effort


def run_logger() -> Log:
    """The Prefect run's logger; outside a flow or task run, the project's own."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a flow or task run
        return logging.getLogger("reasonmed.flows")


@contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Run the block; on an error, log a warning naming ``what`` and carry on."""
    with _best_effort(what, run_logger()):
        yield
