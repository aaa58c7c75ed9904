"""A step that must not fail its run (artifacts, progress, claim heartbeats) but must not fail silently."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from reasonmed.redact import redact


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a flow or task run
        return logging.getLogger("reasonmed.flows")


@contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Run the block; on an error, log a warning naming ``what`` and carry on."""
    try:
        yield
    except Exception as exc:
        _logger().warning("%s failed (the run goes on): %s: %s", what, type(exc).__name__, redact(str(exc)))
