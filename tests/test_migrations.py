"""The schema exists only through Alembic; it goes up and down cleanly on both engines."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from reasonmed.db import migrate
from reasonmed.db.engine import make_engine
from reasonmed.db.models import Base

EXPECTED = {t.name for t in Base.metadata.sorted_tables}


def _tables(url: str) -> set[str]:
    eng = make_engine(url)
    try:
        return set(inspect(eng).get_table_names()) - {"alembic_version"}
    finally:
        eng.dispose()


def test_upgrade_downgrade_postgres(empty_pg_url: str) -> None:
    assert _tables(empty_pg_url) == set()
    migrate.upgrade(empty_pg_url)
    assert _tables(empty_pg_url) >= EXPECTED
    eng = make_engine(empty_pg_url)
    assert migrate.current_revision(eng) == migrate.head_revision(empty_pg_url)
    migrate.require_current(eng, empty_pg_url)
    # JSONB on Postgres, where the audit queries want it.
    with eng.connect() as conn:
        kind = conn.execute(
            text("select data_type from information_schema.columns where table_name='questions' and column_name='options'")
        ).scalar_one()
    assert kind == "jsonb"
    eng.dispose()
    migrate.downgrade(empty_pg_url, "base")
    assert _tables(empty_pg_url) == set()
    migrate.upgrade(empty_pg_url)
    assert _tables(empty_pg_url) >= EXPECTED


def test_upgrade_downgrade_sqlite(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    assert _tables(url) >= EXPECTED
    migrate.downgrade(url, "base")
    assert _tables(url) == set()


def test_behind_schema_is_reported(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    eng = make_engine(url)
    try:
        migrate.require_current(eng, url)
    except RuntimeError as exc:
        assert "reasonmed db upgrade" in str(exc)
    else:
        raise AssertionError("an unmigrated database must be reported")


def test_unique_keys_make_writes_idempotent(engine) -> None:
    """A second copy of the same logical row is refused by the database itself."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into questions (content_hash, source, source_id, split, is_benchmark_test, question, options, answer, metadata, created_at) "
                "values ('h1', 'custom', '1', 'train', false, 'q?', '[]', 'A', '{}', CURRENT_TIMESTAMP)"
            )
        )
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into questions (content_hash, source, source_id, split, is_benchmark_test, question, options, answer, metadata, created_at) "
                    "values ('h1', 'custom', '2', 'train', false, 'q?', '[]', 'A', '{}', CURRENT_TIMESTAMP)"
                )
            )
    except IntegrityError:
        pass
    else:
        raise AssertionError("duplicate content_hash was accepted")
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from questions")).scalar_one() == 1


def test_cli_db_upgrade(tmp_path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "reasonmed", "db", "upgrade", "--database-url", url],
        capture_output=True, text=True, check=True,
    )
    assert "is at revision" in out.stdout
    assert _tables(url) >= EXPECTED


def test_models_and_migrations_agree(db_url: str) -> None:
    """Alembic's autogenerate finds nothing to add: every model change came with its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        eng.dispose()
    assert diffs == []
