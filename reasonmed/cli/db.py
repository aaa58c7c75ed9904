"""``reasonmed db``: schema migrations, and the read-only audit role."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from reasonmed.cli.app import db_app
from reasonmed.cli.common import console, engine_from_settings
from reasonmed.cli.safe_text import safe_text
from reasonmed.db import audit_role, migrate
from reasonmed.mistake import Mistake
from reasonmed.redact import redact_url

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


@db_app.command("create-audit-role")
def create_audit_role(
    name: Annotated[str, typer.Argument(help="the login role to create or re-apply, e.g. reasonmed_audit")],
    statement_timeout_s: Annotated[
        int,
        typer.Option(min=1, max=86_400, help="longest statement, and longest idle transaction, in seconds"),
    ] = audit_role.AuditLimits.statement_timeout_s,
    idle_session_timeout_s: Annotated[
        int, typer.Option(min=1, max=86_400, help="an idle session is ended after this many seconds")
    ] = audit_role.AuditLimits.idle_session_timeout_s,
    connection_limit: Annotated[
        int, typer.Option(min=1, max=1000, help="most sessions the role may hold at once")
    ] = audit_role.AuditLimits.connection_limit,
    with_raw_text: Annotated[
        bool,
        typer.Option(
            "--with-raw-text",
            help="also grant the withheld columns (prompt texts, raw error bodies, run parameters)",
        ),
    ] = False,
    database_url: DbUrl = None,
) -> None:
    """Create (or re-apply after a migration) a read-only login role for auditors, on Postgres.

    Run it as a superuser, and not on a role that is a member of another (it could SET ROLE to it).
    Set the role's password afterwards with psql's \\password NAME.
    """
    url, engine = engine_from_settings(database_url)
    limits = audit_role.AuditLimits(
        statement_timeout_s=statement_timeout_s,
        idle_session_timeout_s=idle_session_timeout_s,
        connection_limit=connection_limit,
    )
    try:
        role = audit_role.create_audit_role(engine, name, limits=limits, with_raw_text=with_raw_text)
    except audit_role.AuditRoleRefused as exc:
        raise Mistake(str(exc)) from None
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        raise Mistake(
            f"creating the audit role needs a superuser connection ({str(exc.orig).splitlines()[0]}): "
            "pass --database-url with a superuser"
        ) from None
    withheld = ", ".join(f"{rel}.{col}" for rel, cols in role.withheld.items() for col in cols) or "nothing"
    console.print(
        safe_text(
            f"audit role {role.name} on {redact_url(url)}: reads {len(role.readable)} tables and views "
            f"(withheld: {withheld}); read-only sessions, statement timeout {limits.statement_timeout_s}s, "
            f"idle session timeout {limits.idle_session_timeout_s}s, at most {limits.connection_limit} "
            f"sessions; large-object functions taken from PUBLIC: {len(role.large_object_functions)} "
            f"(kept by {', '.join(role.owners)}); temporary tables also kept by the roles that may insert "
            f"questions: {', '.join(role.staging_writers) or 'none'}; watchdog: {audit_role.WATCHDOG}. "
            "Re-run after every migration, and after granting a role INSERT on questions."
        )
    )
