"""Schema changes through Alembic only; these wrappers let the CLI and tests run them programmatically."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from reasonmed.db.engine import normalise_url


class SchemaNotCurrent(RuntimeError):
    """The database is behind (or ahead of) the code; the message says how to fix it."""


def alembic_config(database_url: str) -> Config:
    location = Path(str(resources.files("reasonmed.migrations")))
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_blank(engine: Engine) -> bool:
    """No migration applied and no table at all: a database nobody has used yet (safe to create)."""
    return current_revision(engine) is None and not inspect(engine).get_table_names()


def require_existing(database_url: str) -> None:
    """Fail, before anything connects, when a SQLite database file does not exist: connecting would
    create an empty file and leave it behind (only ``run`` and ``db upgrade`` create databases)."""
    u = make_url(normalise_url(database_url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return
    if u.query.get("uri") == "true" or u.database.startswith("file:"):
        return  # a SQLite URI filename (mode=memory, ...): SQLite decides
    path = Path(u.database)
    if not path.exists():
        raise SchemaNotCurrent(
            f"no database file at {path.resolve()}: nothing was created; check the path, or create it "
            "with `reasonmed run` (the embedded default) or `reasonmed db upgrade`"
        )


def require_current(engine: Engine, database_url: str) -> None:
    """Fail early, with the fix, when the database is missing or behind the code."""
    require_existing(database_url)
    current, head = current_revision(engine), head_revision(database_url)
    if current != head:
        raise SchemaNotCurrent(
            f"database schema is at revision {current or 'none'}, the code needs {head}: "
            "run `reasonmed db upgrade` first"
        )
