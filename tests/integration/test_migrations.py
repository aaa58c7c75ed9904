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
            text(
                "select data_type from information_schema.columns where table_name='questions' and column_name='options'"
            )
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
        capture_output=True,
        text=True,
        check=True,
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


# A database at 0005 with one question, one path, its call, verdict, score and summary, as the old code wrote them.
_AT_0005 = [
    """INSERT INTO questions (id, content_hash, source, source_id, split, is_benchmark_test, question, options, answer,
       metadata, created_at) VALUES (1, 'h', 'medqa', 'q1', 'train', false, 'Q?', '[["A", "a"], ["B", "b"]]', 'A', '{}',
       '2026-12-01 00:00:00+00')""",
    """INSERT INTO llm_calls (id, call_key, question_id, role, endpoint, model, temperature, n, prompt_sha256, status,
       attempts, created_at) VALUES (1, 'c1', 1, 'verifier', 'e', 'V', 0, 1, 'sha-verify', 'ok', 1,
       '2026-12-01 00:00:00+00'), (2, 'c2', 1, 'summarizer', 'e', 'S', 0, 1, 'sha-summary', 'ok', 1,
       '2026-12-01 00:00:00+00')""",
    """INSERT INTO reasoning_paths (id, question_id, path_key, origin, role, endpoint, model, temperature, sample_index,
       generation_order, prompt_sha256, raw_text, clean_text, extracted_answer, created_at) VALUES (1, 1, 'gen/e/0.7/0',
       'generated', 'generator', 'e', 'G', 0.7, 0, 0, 'sha-gen', 'r', 'c', 'B', '2026-12-01 00:00:00+00')""",
    """INSERT INTO verdicts (id, path_id, question_id, llm_call_id, verifier_model, outcome, parse_attempts, created_at)
       VALUES (1, 1, 1, 1, 'V', 'correct', 1, '2026-12-01 00:00:00+00')""",
    """INSERT INTO summaries (id, path_id, question_id, llm_call_id, summarizer_model, text, created_at)
       VALUES (1, 1, 1, 2, 'S', 's', '2026-12-01 00:00:00+00')""",
]


def _migrate_0005_data(url: str) -> None:
    migrate.upgrade(url, "0005")
    eng = make_engine(url)
    try:
        with eng.begin() as c:
            for sql in _AT_0005:
                c.execute(text(sql))
    finally:
        eng.dispose()
    migrate.upgrade(url)
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            # Backfilled from each row's call: the stage keys of rows written before prompt keys existed.
            assert c.execute(text("select prompt_sha256 from verdicts")).scalar_one() == "sha-verify"
            assert c.execute(text("select prompt_sha256 from summaries")).scalar_one() == "sha-summary"
            assert c.execute(text("select variant from prompt_templates")).all() == []
            # The path judged Correct concludes with B, the key is A: a verifier disagreement.
            row = c.execute(
                text("select path_id, disagreement, current_verdict from audit_verifier_disagreements")
            ).one()
            assert tuple(row) == (1, "other option", 1)
            assert (
                c.execute(text("select why from audit_rejected_paths")).scalar_one()
                == "judged correct but its answer is not the key"
            )
        with eng.begin() as c:  # a new verifier prompt writes a second verdict beside the first
            c.execute(
                text("""INSERT INTO verdicts (id, path_id, question_id, verifier_model, prompt_sha256, outcome,
                              parse_attempts, created_at) VALUES (2, 1, 1, 'V', 'sha-verify-2', 'error', 1, '2026-12-02 00:00:00+00')""")
            )
            c.execute(
                text(
                    "UPDATE verdicts SET superseded_at = '2026-12-02 00:00:00+00' WHERE prompt_sha256 = 'sha-verify'"
                )
            )
        with eng.connect() as c:
            assert c.execute(text("select agree, flips_from_correct from audit_verifier_versions")).one() == (
                0,
                1,
            )
        try:
            with eng.begin() as c:  # the same key twice is still refused
                c.execute(
                    text("""INSERT INTO verdicts (id, path_id, question_id, verifier_model, prompt_sha256, outcome,
                                  parse_attempts, created_at) VALUES (3, 1, 1, 'V', 'sha-verify-2', 'error', 1, '2026-12-02 00:00:00+00')""")
                )
        except IntegrityError:
            pass
        else:
            raise AssertionError("a second verdict under the same (path, model, prompt) must be refused")
    finally:
        eng.dispose()
    migrate.downgrade(url, "0005")  # back: one verdict per (path, model), the current one
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            assert c.execute(text("select outcome from verdicts")).all() == [("error",)]
            assert "prompt_sha256" not in {col["name"] for col in inspect(eng).get_columns("verdicts")}
    finally:
        eng.dispose()


def test_0007_keeps_old_rows_as_keyed_rows_postgres(empty_pg_url: str) -> None:
    _migrate_0005_data(empty_pg_url)


def test_0007_keeps_old_rows_as_keyed_rows_sqlite(tmp_path) -> None:
    _migrate_0005_data(f"sqlite:///{tmp_path / 'm.db'}")
