"""deploy/create_audit_role.sql on a real, migrated Postgres database: the role reads, and cannot write,
create (tables, temporary tables, schemas), widen itself, or keep a statement running past the limit
even after raising its own statement_timeout (the watchdog ends it)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import REPO, _admin_conninfo

pytestmark = pytest.mark.postgres

SCRIPT = REPO / "deploy" / "create_audit_role.sql"


@pytest.fixture
def audit(pg_url: str) -> Iterator[tuple[str, str, str]]:
    """(role, the role's conninfo, the owner's conninfo) after running the script; the role dropped after."""
    u = make_url(pg_url)
    role = f"audit_{uuid.uuid4().hex[:8]}"
    owner = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    out = subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-h",
            str(u.host),
            "-p",
            str(u.port or 5432),
            "-U",
            str(u.username),
            "-d",
            str(u.database),
            "-v",
            f"role={role}",
            "-v",
            "statement_timeout=1s",
            "-f",
            str(SCRIPT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    again = subprocess.run(  # re-running is safe
        [
            "psql",
            "-X",
            "-q",
            "-h",
            str(u.host),
            "-p",
            str(u.port or 5432),
            "-U",
            str(u.username),
            "-d",
            str(u.database),
            "-v",
            f"role={role}",
            "-v",
            "statement_timeout=1s",
            "-f",
            str(SCRIPT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    try:
        yield role, f"host={u.host} port={u.port or 5432} user={role} dbname={u.database}", owner
    finally:
        with psycopg.connect(owner, autocommit=True) as c:
            c.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(_admin_conninfo(), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')
            c.execute(f'DROP ROLE IF EXISTS "{role}"')


DENIED = [
    (
        "insert",
        "INSERT INTO ingest_files (sha256, path, source, split, status) VALUES ('x', 'p', 's', 'train', 'done')",
        "permission denied for table ingest_files",
    ),
    ("update", "UPDATE questions SET answer = 'A'", "permission denied for table questions"),
    ("delete", "DELETE FROM pipeline_runs", "permission denied for table pipeline_runs"),
    ("truncate", "TRUNCATE llm_calls", "permission denied for table llm_calls"),
    ("create table", "CREATE TABLE public.mine (x int)", "permission denied for schema public"),
    ("create temp table", "CREATE TEMP TABLE mine (x int)", "permission denied to create temporary tables"),
    ("create schema", "CREATE SCHEMA mine", "permission denied for database"),
    (
        "create function",
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'select 1'",
        "permission denied for schema public",
    ),
    ("raise its connection limit", "ALTER ROLE CURRENT_USER CONNECTION LIMIT -1", "permission denied"),
    ("give itself createdb", "ALTER ROLE CURRENT_USER CREATEDB", "permission denied"),
    (
        "run the watchdog",
        "SELECT reasonmed_audit_watchdog(CURRENT_USER, '0s')",
        "permission denied for function reasonmed_audit_watchdog",
    ),
    ("sequence", "SELECT nextval('questions_id_seq')", "permission denied for sequence questions_id_seq"),
]


@pytest.mark.parametrize(("what", "sql", "error"), DENIED, ids=[d[0] for d in DENIED])
def test_the_audit_role_cannot(what: str, sql: str, error: str, audit: tuple[str, str, str]) -> None:
    _role, conninfo, _owner = audit
    with psycopg.connect(conninfo) as c:
        c.execute("SET TRANSACTION READ WRITE")  # past the read-only default: privileges alone must stop it
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=error):
            c.execute(sql)


def test_the_audit_role_reads_within_its_limits(audit: tuple[str, str, str]) -> None:
    role, conninfo, owner = audit
    with psycopg.connect(conninfo, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM audit_rejected_paths").fetchone() is not None
        assert c.execute("SHOW statement_timeout").fetchone() == ("1s",)
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("UPDATE questions SET answer = 'A'")
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            c.execute("SELECT pg_sleep(3)")
    with psycopg.connect(owner) as c:
        attrs = c.execute(
            "SELECT rolcreatedb, rolcreaterole, rolsuper, rolconnlimit FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        public_temp = c.execute(
            "SELECT has_database_privilege('public', current_database(), 'TEMP')"
        ).fetchone()
        public_create = c.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone()
    assert attrs == (False, False, False, 4)
    assert public_temp == (False,) and public_create == (False,)


def test_a_raised_statement_timeout_does_not_outlive_the_watchdog(audit: tuple[str, str, str]) -> None:
    role, conninfo, owner = audit
    outcome: list[BaseException | None] = []

    def long_query() -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute("SET statement_timeout = 0")  # PostgreSQL lets any session raise its own
                c.execute("SELECT pg_sleep(30)")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the thread reports whatever ended it
            outcome.append(exc)

    t = threading.Thread(target=long_query)
    t.start()
    time.sleep(2.0)
    with psycopg.connect(owner, autocommit=True) as c:
        ended = c.execute("SELECT reasonmed_audit_watchdog(%s, '1s')", (role,)).fetchone()
    t.join(timeout=20)
    assert not t.is_alive() and ended == (1,)
    assert isinstance(outcome[0], psycopg.OperationalError)  # terminated by the administrator, not finished
