"""Command-line entry point: ``reasonmed --help``."""

from __future__ import annotations

import sys

from reasonmed.privacy import apply_offline_defaults

apply_offline_defaults()

from reasonmed.cli import audit, config_cmd, db, evaluate, export, ingest, rejudge, retry, run, serve, sim  # noqa: E402, F401  (registers commands)
from reasonmed.cli.app import app  # noqa: E402
from reasonmed.config import ConfigError  # noqa: E402


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


__all__ = ["app", "main"]
