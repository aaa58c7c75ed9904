"""Command-line entry point: ``reasonmed --help``."""

from __future__ import annotations

from reasonmed.privacy import apply_offline_defaults

apply_offline_defaults()

from reasonmed.cli import (  # noqa: E402, F401  (registers commands)
    audit,
    config_cmd,
    db,
    evaluate,
    export,
    ingest,
    rejudge,
    retry,
    run,
    serve,
    show,
    sim,
)
from reasonmed.cli.app import app  # noqa: E402


def main() -> None:
    """Run the command; a recognised mistake ends in one line on stderr (see ``reasonmed.cli.errors``)."""
    app()


__all__ = ["app", "main"]
