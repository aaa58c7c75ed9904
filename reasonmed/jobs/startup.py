"""What a build checks before anything starts: the schema, and whether there is work at all."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from reasonmed.db import inspect_repo, migrate
from reasonmed.mistake import Mistake
from reasonmed.redact import redact_url

# The main job on the bundled sample, as the README and ``reasonmed --help`` show it.
MAIN_COMMAND = (
    "reasonmed run data/pubmedqa/ori_pqal.json --format pubmedqa"
    " --benchmark-test-ids data/pubmedqa/test_ground_truth.json"
)


def database_label(url: str) -> str:
    """The database as a user finds it: an absolute path for SQLite, the URL (credentials hidden) otherwise."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        from pathlib import Path

        return str(Path(u.database).resolve())
    return redact_url(url)


def ensure_schema(engine: Engine, url: str) -> str | None:
    """A new or empty SQLite database is created and migrated here (and the returned line says so).

    An existing database at another revision is never migrated implicitly: that stays the explicit
    ``reasonmed db upgrade`` (a server database may be shared, and a migration deserves a backup first).
    """
    if engine.dialect.name == "sqlite" and migrate.is_blank(engine):
        migrate.upgrade(url)
        return (
            f"new database {database_label(url)}: created and migrated to revision "
            f"{migrate.current_revision(engine)}"
        )
    migrate.require_current(engine, url)
    return None


def require_questions(engine: Engine, sources: list[str] | None) -> None:
    """A run with nothing to work on says how to start, instead of "nothing left to do"."""
    if inspect_repo.count_training_questions(engine, sources) == 0:
        where = f" from {', '.join(sources)}" if sources else ""
        raise Mistake(
            f"the database has no training questions{where} yet; start with the bundled PubMedQA "
            f"sample (from the repository folder): {MAIN_COMMAND}",
            exit_code=1,
        )
