"""Quiet exits for Prefect's temporary server (the embedded default, no PREFECT_API_URL).

The temporary server is a uvicorn child process with its own SQLite pool. When the command ends, Prefect
stops it and cancels its message consumers mid-flush; on a busy machine its pool then logs an ERROR with
a traceback about a cancelled rollback of its own bookkeeping (the pipeline's rows are committed by then).
Prefect's logging file names no ``sqlalchemy`` logger, so its environment overrides cannot reach that
one: this writes Prefect's own logging file with that logger added at the server's logging level, for the
command to point ``PREFECT_LOGGING_SETTINGS_PATH`` at (unless the user set one).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import yaml

POOL_LOGGER = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"  # only Prefect's server uses an async pool here


def _prefect_logging_file() -> Path | None:
    spec = importlib.util.find_spec("prefect")  # found, not imported: Prefect is slow to import
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "logging" / "logging.yml"
    return path if path.is_file() else None


def quiet_temporary_server_logging(home: Path) -> Path | None:
    """The logging file written under ``home`` (Prefect's home folder), or None when left as it was."""
    if os.environ.get("PREFECT_LOGGING_SETTINGS_PATH"):
        return None
    source = _prefect_logging_file()
    if source is None:
        return None
    config = yaml.safe_load(source.read_text())
    config.setdefault("loggers", {})[POOL_LOGGER] = {
        "level": "${PREFECT_SERVER_LOGGING_LEVEL}",
        "propagate": True,
    }
    home.mkdir(parents=True, exist_ok=True)
    target = home / "reasonmed-logging.yml"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target
