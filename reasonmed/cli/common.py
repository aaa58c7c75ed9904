"""Helpers shared by CLI commands: settings, engines and console output."""

from __future__ import annotations

from rich.console import Console
from sqlalchemy import Engine

from reasonmed.config import get_settings, override_settings
from reasonmed.db.engine import get_engine

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def override_database(database_url: str | None) -> None:
    """A ``--database-url`` option wins over ``REASONMED_DATABASE_URL`` for the rest of the command (and
    what it runs, flows included): every command is a ``settings_scope`` (``reasonmed.cli.app``)."""
    if database_url:
        override_settings(database_url=database_url)


def engine_from_settings(database_url: str | None = None) -> tuple[str, Engine]:
    override_database(database_url)
    url = get_settings().database_url
    return url, get_engine(url)
