"""A step that must not fail its run (artifacts, progress, claim heartbeats) but must not fail silently."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from reasonmed.redact import redact

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


@contextmanager
def best_effort(what: str, logger: Log) -> Iterator[None]:
    """Run the block; on an error, log a warning naming ``what`` and carry on."""
    try:
        yield
    except Exception as exc:
        logger.warning("%s failed (the run goes on): %s: %s", what, type(exc).__name__, redact(str(exc)))
