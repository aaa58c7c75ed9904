"""Helpers shared by CLI commands: settings, engines and console output."""

from __future__ import annotations

import click
from rich.console import Console
from sqlalchemy import Engine

from reasonmed.config import get_settings, temporary_settings
from reasonmed.db.engine import get_engine

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def override_settings(**updates: object) -> None:
    """Options that win over ``REASONMED_*`` for the rest of this command (and what it runs, flows
    included); the command's own click context restores the settings when it ends."""
    updates = {k: v for k, v in updates.items() if v is not None}
    if updates:
        click.get_current_context().with_resource(temporary_settings(**updates))


def override_database(database_url: str | None) -> None:
    """A ``--database-url`` option wins over ``REASONMED_DATABASE_URL``."""
    override_settings(database_url=database_url)


def engine_from_settings(database_url: str | None = None) -> tuple[str, Engine]:
    override_database(database_url)
    url = get_settings().database_url
    return url, get_engine(url)


def redact_url(url: str) -> str:
    from reasonmed.redact import mask_url

    return mask_url(url)
