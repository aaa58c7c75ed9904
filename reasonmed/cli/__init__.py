"""Command-line entry point: ``reasonmed --help``."""

from __future__ import annotations

import sys

from reasonmed.cli import config_cmd, db, ingest, sim  # noqa: F401  (registers commands)
from reasonmed.cli.app import app
from reasonmed.config import ConfigError


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


__all__ = ["app", "main"]
