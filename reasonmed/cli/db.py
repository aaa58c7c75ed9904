"""``reasonmed db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from reasonmed.cli.app import db_app
from reasonmed.cli.common import console, engine_from_settings, redact_url
from reasonmed.cli.safe_text import safe_text
from reasonmed.db import migrate

DbUrl = Annotated[str | None, typer.Option("--database-url", help="overrides REASONMED_DATABASE_URL")]


@db_app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head", database_url: DbUrl = None
) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    url, engine = engine_from_settings(database_url)
    migrate.upgrade(url, revision)
    console.print(safe_text(f"database {redact_url(url)} is at revision {migrate.current_revision(engine)}"))


@db_app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="target revision, e.g. -1 or base")],
    database_url: DbUrl = None,
) -> None:
    """Revert migrations down to REVISION (``base`` removes every table the project made)."""
    url, engine = engine_from_settings(database_url)
    migrate.require_existing(url)  # engines connect lazily: nothing has touched the file yet
    migrate.downgrade(url, revision)
    console.print(
        safe_text(f"database {redact_url(url)} is at revision {migrate.current_revision(engine) or 'base'}")
    )


@db_app.command("current")
def current(database_url: DbUrl = None) -> None:
    """Print the schema revision of the database and the one the code expects."""
    url, engine = engine_from_settings(database_url)
    migrate.require_existing(url)  # engines connect lazily: nothing has touched the file yet
    console.print(
        safe_text(
            f"database: {migrate.current_revision(engine) or 'none'}  code: {migrate.head_revision(url)}"
        )
    )
