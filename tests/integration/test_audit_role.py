"""``reasonmed db create-audit-role`` on a real Postgres database owned by a non-superuser app role, as in
production. The auditor reads the audit views and the tables, but not prompt texts, raw error bodies or
run parameters; it cannot write (tables, large objects), create, widen itself, become another role, keep a
statement running past the limit, or keep the nightly run's lock key; the app role keeps every privilege it
uses and cannot touch the superuser's watchdog; a runtime role that may insert questions still ingests."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reasonmed.db import audit_repo, audit_role, migrate, nightly_repo, runs_repo
from reasonmed.db.audit_role import (
    ADMIN_SCHEMA,
    WATCHDOG,
    WITHHELD,
    AuditLimits,
    AuditRole,
    AuditRoleRefused,
    create_audit_role,
)
from reasonmed.db.engine import make_engine
from reasonmed.db.models import Base, IngestFile, LLMCall, PipelineRun, PromptTemplateRow, QuestionFailure
from reasonmed.ingest.service import ingest_file
from tests.conftest import ADMIN_URL, _admin_conninfo
from tests.fixtures_ops import write_pubmedqa
from tests.integration.test_audits import build_fixture

pytestmark = pytest.mark.postgres

CANARY = f"CANARY-{uuid.uuid4().hex}"  # planted in every withheld column; the auditor must never see it
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Deployment:
    role: str  # the audit role
    app_role: str  # owns the database and the schema (ran the migrations), not a superuser
    app_url: str
    auditor_url: str
    auditor: str  # psycopg conninfo of the audit role
    app: str  # ... of the app role
    admin_url: str  # a superuser, in the same database
    said: str  # what the command printed


def _conninfo(url: str) -> str:
    u = make_url(url)
    return f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"


def _plant_canaries(app_url: str) -> None:
    """A value in every withheld column, written as the app writes (ORM, as the app role)."""
    engine = make_engine(app_url)
    try:
        with Session(engine) as s, s.begin():
            s.add_all(
                [
                    PipelineRun(
                        id=1000,
                        kind="build",
                        status="failed",
                        parameters={"base_url": f"http://x/?api_key={CANARY}"},
                        stats={},
                        config_snapshot={"endpoints": {"e": {"base_url": CANARY}}},
                        error=f"RuntimeError: {CANARY}",
                        started_at=NOW,
                    ),
                    LLMCall(
                        id=1000,
                        call_key="canary",
                        role="verifier",
                        endpoint="e",
                        model="m",
                        temperature=0.0,
                        status="error",
                        error=f"HTTP 500: Authorization: Basic {CANARY}",
                        created_at=NOW,
                    ),
                    PromptTemplateRow(id=1000, name="generate", version="x", sha256="c" * 64, text=CANARY),
                    QuestionFailure(
                        question_id=4,
                        stage="summarize",
                        failures=3,
                        permanent=True,
                        last_error_kind="server_error",
                        last_error=f"HTTP 500 body: {CANARY}",
                        first_failed_at=NOW,
                        last_failed_at=NOW,
                        set_aside_at=NOW,
                    ),
                    IngestFile(
                        id=1000,
                        sha256="f" * 64,
                        path="in.json",
                        source="pubmedqa",
                        split="train",
                        status="failed",
                        error=CANARY,
                    ),
                ]
            )
    finally:
        engine.dispose()


def _advance_sequences(app_url: str) -> None:
    """The fixtures wrote explicit ids: the app's next rows take the ids after them."""
    engine = make_engine(app_url)
    try:
        with engine.begin() as c:
            for table in Base.metadata.sorted_tables:
                if "id" in table.columns and table.columns["id"].autoincrement is not False:
                    c.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"
                        )
                    )
    finally:
        engine.dispose()


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reasonmed", *args], capture_output=True, text=True, timeout=300
    )


def _apply(admin_url: str, role: str) -> AuditRole:
    """What an administrator re-runs after a migration: the function behind the command."""
    engine = make_engine(admin_url)
    try:
        return create_audit_role(engine, role, limits=AuditLimits(statement_timeout_s=1))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    tag = uuid.uuid4().hex[:8]
    app_role, role, database = f"reasonmed_app_{tag}", f"reasonmed_audit_{tag}", f"reasonmed_test_audit_{tag}"
    base = make_url(ADMIN_URL)
    with psycopg.connect(_admin_conninfo(), autocommit=True) as c:
        c.execute(f'CREATE ROLE "{app_role}" LOGIN')
        c.execute(f'CREATE DATABASE "{database}" OWNER "{app_role}"')
    app_url = base.set(username=app_role, database=database).render_as_string(hide_password=False)
    admin_url = base.set(database=database).render_as_string(hide_password=False)
    auditor_url = base.set(username=role, database=database).render_as_string(hide_password=False)
    try:
        migrate.upgrade(app_url)
        engine = make_engine(app_url)
        build_fixture(engine)
        engine.dispose()
        _plant_canaries(app_url)
        _advance_sequences(app_url)
        made = _command(
            "db", "create-audit-role", role, "--statement-timeout-s", "1", "--database-url", admin_url
        )
        assert made.returncode == 0, made.stderr
        _apply(admin_url, role)  # re-running is safe
        yield Deployment(
            role,
            app_role,
            app_url,
            auditor_url,
            _conninfo(auditor_url),
            _conninfo(app_url),
            admin_url,
            made.stdout,
        )
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            c.execute(f'DROP ROLE IF EXISTS "{role}"')
            c.execute(f'DROP ROLE IF EXISTS "{app_role}"')


def _wait_until(condition: Callable[[], bool], *, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {within_s}s: {what}"
        time.sleep(0.05)


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
    ("create view", "CREATE VIEW public.mine_v AS SELECT 1", "permission denied for schema public"),
    ("create temp table", "CREATE TEMP TABLE mine (x int)", "permission denied to create temporary tables"),
    ("create schema", "CREATE SCHEMA mine", "permission denied for database"),
    (
        "create function",
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'select 1'",
        "permission denied for schema public",
    ),
    ("write a large object", "SELECT lo_from_bytea(0, 'x')", "permission denied for function lo_from_bytea"),
    ("create a large object", "SELECT lo_create(0)", "permission denied for function lo_create"),
    ("open a large object", "SELECT lo_open(1, 131072)", "permission denied for function lo_open"),
    (
        "read prompt texts",
        "SELECT text FROM prompt_templates",
        "permission denied for table prompt_templates",
    ),
    ("read raw error bodies", "SELECT error FROM llm_calls", "permission denied for table llm_calls"),
    ("read every column", "SELECT * FROM llm_calls", "permission denied for table llm_calls"),
    (
        "read set-aside errors",
        "SELECT last_error FROM question_failures",
        "permission denied for table question_failures",
    ),
    ("read them in the view", "SELECT * FROM audit_set_aside", "permission denied for view audit_set_aside"),
    (
        "read run parameters",
        "SELECT parameters FROM pipeline_runs",
        "permission denied for table pipeline_runs",
    ),
    (
        "read pipeline files",
        "SELECT config_snapshot FROM pipeline_runs",
        "permission denied for table pipeline_runs",
    ),
    ("raise its connection limit", "ALTER ROLE CURRENT_USER CONNECTION LIMIT -1", "permission denied"),
    ("give itself createdb", "ALTER ROLE CURRENT_USER CREATEDB", "permission denied"),
    (
        "run the watchdog",
        f"SELECT {WATCHDOG}(CURRENT_USER, '0s')",
        f"permission denied for schema {ADMIN_SCHEMA}",
    ),
    ("sequence", "SELECT nextval('questions_id_seq')", "permission denied for sequence questions_id_seq"),
]


@pytest.mark.parametrize(("what", "sql", "error"), DENIED, ids=[d[0] for d in DENIED])
def test_the_audit_role_cannot(what: str, sql: str, error: str, deployment: Deployment) -> None:
    with psycopg.connect(deployment.auditor) as c:
        c.execute("SET TRANSACTION READ WRITE")  # past the read-only default: privileges alone must stop it
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=error):
            c.execute(sql)


def test_the_audit_role_reads_every_audit_but_never_a_withheld_value(deployment: Deployment) -> None:
    engine = make_engine(deployment.auditor_url)
    try:
        for view in audit_repo.AUDIT_VIEWS:  # what `reasonmed audit` and `reasonmed report` read
            rows = audit_repo.view_rows(engine, view)
            assert CANARY not in repr(rows), view
        assert len(audit_repo.view_rows(engine, "audit_rejected_paths")) == 10
        set_aside = audit_repo.view_rows(engine, "audit_set_aside")
        assert len(set_aside) == 2 and "last_error" not in set_aside[0] and "last_error_kind" in set_aside[0]
        with engine.connect() as c:  # every column it may read, of every table and view: no canary
            assert c.execute(text("SELECT count(*) FROM questions")).scalar_one() == 4
            readable = c.execute(
                text("""
                SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') AND a.attnum > 0
                  AND NOT a.attisdropped AND has_column_privilege(c.oid, a.attnum, 'SELECT')""")
            ).all()
            relations = {rel for rel, _col in readable}
            assert {"questions", "llm_calls", "pipeline_runs", *audit_repo.AUDIT_VIEWS} <= relations
            for rel, col in readable:
                assert (rel, col) not in {(r, c) for r, cols in WITHHELD.items() for c in cols}
                seen = c.execute(
                    text(f'SELECT count(*) FROM "{rel}" WHERE "{col}"::text LIKE :p'), {"p": f"%{CANARY}%"}
                )
                assert seen.scalar_one() == 0, (rel, col)
    finally:
        engine.dispose()
    shown = _command("audit", "--database-url", deployment.auditor_url)  # the CLI, as the auditor
    assert shown.returncode == 0, shown.stderr
    assert "audit_set_aside" in shown.stdout and CANARY not in shown.stdout + shown.stderr


def test_the_audit_role_reads_within_its_limits(deployment: Deployment) -> None:
    with psycopg.connect(deployment.auditor, autocommit=True) as c:
        assert c.execute("SHOW statement_timeout").fetchone() == ("1s",)
        assert c.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("1s",)
        assert c.execute("SHOW idle_session_timeout").fetchone() == ("10min",)
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("UPDATE questions SET answer = 'A'")
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            c.execute("SELECT pg_sleep(3)")
    with psycopg.connect(deployment.auditor) as c, psycopg.connect(_conninfo(deployment.admin_url)) as admin:
        c.execute("SELECT 1")  # a transaction left open, idle
        pid = c.info.backend_pid

        def gone() -> bool:
            row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            admin.rollback()
            return row == (0,)

        _wait_until(gone, within_s=20, what="the idle transaction's session is ended")
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            c.execute("SELECT 1")
    with psycopg.connect(deployment.app) as c:
        attrs = c.execute(
            "SELECT rolcreatedb, rolcreaterole, rolsuper, rolconnlimit FROM pg_roles WHERE rolname = %s",
            (deployment.role,),
        ).fetchone()
        public = c.execute(
            "SELECT has_database_privilege('public', current_database(), 'TEMP'), "
            "has_schema_privilege('public', 'public', 'CREATE'), "
            "has_function_privilege('public', 'lo_from_bytea(oid, bytea)', 'EXECUTE')"
        ).fetchone()
    assert attrs == (False, False, False, 4)
    assert public == (False, False, False)


def test_a_raised_statement_timeout_does_not_outlive_the_watchdog(deployment: Deployment) -> None:
    outcome: list[BaseException | None] = []

    def long_query() -> None:
        try:
            with psycopg.connect(deployment.auditor, autocommit=True) as c:
                c.execute("SET statement_timeout = 0")  # PostgreSQL lets any session raise its own
                c.execute("SELECT pg_sleep(30)")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the thread reports whatever ended it
            outcome.append(exc)

    t = threading.Thread(target=long_query)
    t.start()
    with psycopg.connect(_conninfo(deployment.admin_url), autocommit=True) as c:  # the watchdog's caller

        def running_past_the_limit() -> bool:
            row = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state = 'active' "
                "AND now() - query_start > interval '1s'",
                (deployment.role,),
            ).fetchone()
            return row == (1,)

        _wait_until(running_past_the_limit, within_s=20, what="the audit query runs past 1s")
        ended = c.execute(f"SELECT {WATCHDOG}(%s, '1s')", (deployment.role,)).fetchone()
    t.join(timeout=20)
    assert not t.is_alive() and ended == (1,)
    assert isinstance(outcome[0], psycopg.OperationalError)  # terminated by the administrator, not finished


def test_an_auditor_keeping_the_nightly_key_is_named_and_ended_by_the_watchdog(
    deployment: Deployment,
) -> None:
    app = make_engine(deployment.app_url)
    squatter = psycopg.connect(deployment.auditor + " application_name=auditor-psql", autocommit=True)
    try:
        squatter.execute("SELECT pg_advisory_lock(%s)", (nightly_repo.ADVISORY_KEY,))  # then sits idle
        with pytest.raises(nightly_repo.LockKeyHeld) as held:
            nightly_repo.acquire_run_lock(
                app, kind="nightly", ttl_s=60, wait_s=1, parameters={}, prefect_flow_run_id=None
            )
        [session] = held.value.sessions
        assert (session.pid, session.user, session.application_name) == (
            squatter.info.backend_pid,
            deployment.role,
            "auditor-psql",
        )
        with psycopg.connect(_conninfo(deployment.admin_url), autocommit=True) as c:
            ended = c.execute(f"SELECT {WATCHDOG}(%s, '1h')", (deployment.role,)).fetchone()
        assert ended == (1,)  # idle, but holding an advisory lock: ended all the same
        run_id, _ = nightly_repo.acquire_run_lock(
            app, kind="nightly", ttl_s=60, wait_s=5, parameters={}, prefect_flow_run_id=None
        )
        assert run_id is not None
        runs_repo.finish_run(app, run_id, status="completed", stats={})
    finally:
        squatter.close()
        app.dispose()


def test_the_app_role_keeps_what_it_uses(deployment: Deployment, tmp_path: Path) -> None:
    with psycopg.connect(deployment.app) as c:  # large objects, temporary tables: by name now
        oid = c.execute("SELECT lo_from_bytea(0, 'x')").fetchone()
        assert oid is not None
        c.execute("SELECT lo_unlink(%s)", oid)
        c.execute("CREATE TEMP TABLE scratch (x int)")
    app = make_engine(deployment.app_url)
    try:
        write_pubmedqa(tmp_path / "pq.json", 3)
        assert ingest_file(app, tmp_path / "pq.json", "pubmedqa").inserted == 3
        set_aside = audit_repo.view_rows(app, "audit_set_aside")
        assert any(CANARY in str(r["last_error"]) for r in set_aside)  # the owner reads everything
        migrate.downgrade(deployment.app_url, "-1")  # and still migrates (views dropped and made again)
        migrate.upgrade(deployment.app_url)
    finally:
        app.dispose()
    _apply(deployment.admin_url, deployment.role)  # as the docs say: re-run after every migration
    auditor = make_engine(deployment.auditor_url)
    try:
        for view in audit_repo.AUDIT_VIEWS:
            audit_repo.view_rows(auditor, view)
    finally:
        auditor.dispose()


def test_what_the_command_refuses(deployment: Deployment, tmp_path: Path) -> None:
    admin = make_engine(deployment.admin_url)
    try:
        with pytest.raises(AuditRoleRefused, match="owns this database"):
            create_audit_role(admin, deployment.app_role)
        with pytest.raises(AuditRoleRefused, match="is a superuser"):
            create_audit_role(admin, str(make_url(ADMIN_URL).username or "postgres"))
    finally:
        admin.dispose()
    not_super = _command("db", "create-audit-role", "x_audit", "--database-url", deployment.app_url)
    assert not_super.returncode == 2 and "needs a superuser" in not_super.stderr
    assert "Traceback" not in not_super.stderr and len(not_super.stderr.strip().splitlines()) == 1
    sqlite = _command(
        "db", "create-audit-role", "x_audit", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"
    )
    assert sqlite.returncode == 2 and "is a Postgres role" in sqlite.stderr
    assert len(sqlite.stderr.strip().splitlines()) == 1


def test_the_command_says_what_it_did(deployment: Deployment) -> None:
    said = " ".join(deployment.said.split())
    assert f"audit role {deployment.role} on " in said
    withheld = said.split("(withheld: ", 1)[1].split(")", 1)[0].split(", ")
    assert set(withheld) == {f"{rel}.{col}" for rel, cols in WITHHELD.items() for col in cols}
    assert "statement timeout 1s" in said and "at most 4 sessions" in said
    assert f"(kept by {deployment.app_role})" in said
    taken = int(said.split("large-object functions taken from PUBLIC: ", 1)[1].split()[0])
    assert taken >= 10  # lo_from_bytea, lo_create, lo_open, loread, lowrite, lo_put, lo_get, ...


def test_every_withheld_column_exists() -> None:
    """A renamed column would silently become readable: every name in WITHHELD must be in the schema."""
    from reasonmed.db.models import Base

    tables = {t.name: {c.name for c in t.columns} for t in Base.metadata.sorted_tables}
    for relation, columns in WITHHELD.items():
        if relation in audit_repo.AUDIT_VIEWS:
            continue  # views: checked on the database by test_the_audit_role_cannot
        assert relation in tables and set(columns) <= tables[relation], relation


# What the app role (it owns schema public) would do to have a superuser run its SQL through the watchdog.
HIJACKS = [
    ("add an overload", f"CREATE FUNCTION {WATCHDOG}(text, text) RETURNS integer LANGUAGE sql AS 'SELECT 0'"),
    (
        "replace it",
        f"CREATE OR REPLACE FUNCTION {WATCHDOG}(audit_role name, max_runtime interval) "
        "RETURNS integer LANGUAGE sql AS 'SELECT 0'",
    ),
    ("drop it", f"DROP FUNCTION {WATCHDOG}(name, interval)"),
    ("reset its search_path", f"ALTER FUNCTION {WATCHDOG}(name, interval) RESET search_path"),
    ("shadow a catalog table", f"CREATE TABLE {ADMIN_SCHEMA}.pg_stat_activity (usename name)"),
    ("drop its schema", f"DROP SCHEMA {ADMIN_SCHEMA} CASCADE"),
    ("rename its schema", f"ALTER SCHEMA {ADMIN_SCHEMA} RENAME TO mine"),
]


@pytest.mark.parametrize(("what", "sql"), HIJACKS, ids=[h[0] for h in HIJACKS])
def test_the_app_role_cannot_touch_the_watchdog(what: str, sql: str, deployment: Deployment) -> None:
    refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied|must be owner")
    with psycopg.connect(deployment.app) as c, refused:
        c.execute(sql)


def test_the_documented_watchdog_call_runs_the_superusers_function(deployment: Deployment) -> None:
    """The cron line of docs/audits.md, run by a superuser while the app role has put a better-matching
    overload in schema public: the real watchdog runs, the app's SQL does not."""
    docs = (Path(__file__).parents[2] / "docs" / "audits.md").read_text()
    found = re.search(r"-Atc \"(SELECT [\w.]*reasonmed_audit_watchdog\('reasonmed_audit', '60s'\))\"", docs)
    assert found, "docs/audits.md names no watchdog call"
    call = found.group(1).replace("'reasonmed_audit'", f"'{deployment.role}'")
    with psycopg.connect(deployment.app, autocommit=True) as app:
        app.execute("CREATE TABLE public.ran_as (superuser text)")
        app.execute(
            "CREATE FUNCTION public.reasonmed_audit_watchdog(text, text) RETURNS integer LANGUAGE sql AS "
            "$$ INSERT INTO public.ran_as SELECT current_setting('is_superuser'); SELECT -1 $$"
        )
    try:
        with psycopg.connect(_conninfo(deployment.admin_url), autocommit=True) as c:
            assert c.execute(call).fetchone() == (0,)  # no audit session to end
        with psycopg.connect(deployment.app) as app:
            assert app.execute("SELECT superuser FROM public.ran_as").fetchall() == []
    finally:
        with psycopg.connect(deployment.app, autocommit=True) as app:
            app.execute("DROP FUNCTION public.reasonmed_audit_watchdog(text, text)")
            app.execute("DROP TABLE public.ran_as")


@pytest.mark.parametrize(
    "widen",
    ["ALTER SCHEMA {schema} OWNER TO {app}", "GRANT CREATE ON SCHEMA {schema} TO {app}"],
    ids=["schema owned by the app role", "app role may create in it"],
)
def test_a_watchdog_schema_others_may_write_is_refused(widen: str, deployment: Deployment) -> None:
    """The app role (it may CREATE schemas in its database) could make the schema before the command."""
    app = f'"{deployment.app_role}"'
    with psycopg.connect(_conninfo(deployment.admin_url), autocommit=True) as c:
        c.execute(widen.format(schema=ADMIN_SCHEMA, app=app))
        try:
            with pytest.raises(AuditRoleRefused, match=f"schema {ADMIN_SCHEMA} is not a superuser's alone"):
                _apply(deployment.admin_url, deployment.role)
        finally:
            c.execute(f"ALTER SCHEMA {ADMIN_SCHEMA} OWNER TO CURRENT_USER")
            c.execute(f"REVOKE ALL ON SCHEMA {ADMIN_SCHEMA} FROM {app}")


def test_a_member_of_the_app_role_is_refused_until_revoked(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NOINHERIT does not stop SET ROLE: a member of the app role could write as the app."""
    member = f"reasonmed_member_{uuid.uuid4().hex[:8]}"
    app = f'"{deployment.app_role}"'
    member_url = make_url(deployment.admin_url).set(username=member).render_as_string(hide_password=False)
    with psycopg.connect(_conninfo(deployment.admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{member}" LOGIN')
        try:
            admin.execute(f'GRANT {app} TO "{member}"')
            refused = _command("db", "create-audit-role", member, "--database-url", deployment.admin_url)
            assert refused.returncode == 2 and f"is a member of {deployment.app_role}" in refused.stderr
            assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
            engine = make_engine(deployment.admin_url)
            try:  # the check at the end catches it too (a membership granted while the command ran)
                with monkeypatch.context() as m:
                    m.setattr(audit_role, "_refuse_unsafe_role", lambda *_: None)
                    with pytest.raises(AuditRoleRefused, match="is a member of"):
                        create_audit_role(engine, member)
            finally:
                engine.dispose()
            admin.execute(f'REVOKE {app} FROM "{member}"')  # as the message says
            _apply(deployment.admin_url, member)
            with (
                psycopg.connect(_conninfo(member_url)) as c,
                pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied to set role"),
            ):
                c.execute(f"SET ROLE {app}")
        finally:
            admin.execute(f'DROP OWNED BY "{member}"')
            admin.execute(f'DROP ROLE "{member}"')


def test_a_member_of_a_predefined_role_is_refused(deployment: Deployment) -> None:
    """pg_read_all_data would read every withheld column; membership in any role is refused."""
    member = f"reasonmed_member_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_conninfo(deployment.admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{member}" LOGIN')
        try:
            admin.execute(f'GRANT pg_read_all_data TO "{member}"')
            with pytest.raises(AuditRoleRefused, match="is a member of pg_read_all_data"):
                _apply(deployment.admin_url, member)
        finally:
            admin.execute(f'DROP OWNED BY "{member}"')  # in case it was not refused
            admin.execute(f'DROP ROLE "{member}"')


def test_the_audit_role_cannot_become_the_app_role(deployment: Deployment) -> None:
    refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied to set role")
    with psycopg.connect(deployment.auditor) as c, refused:
        c.execute(f'SET ROLE "{deployment.app_role}"')


def test_a_runtime_role_that_may_insert_questions_still_ingests(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A least-privilege runtime role owns nothing; ingest stages questions in a temporary table."""
    runtime = f"reasonmed_runtime_{uuid.uuid4().hex[:8]}"
    runtime_url = make_url(deployment.app_url).set(username=runtime).render_as_string(hide_password=False)
    with psycopg.connect(_conninfo(deployment.admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{runtime}" LOGIN')
        try:
            with psycopg.connect(deployment.app, autocommit=True) as app:
                app.execute(
                    f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{runtime}"'
                )
                app.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{runtime}"')
            made = _apply(deployment.admin_url, deployment.role)  # re-run after granting INSERT on questions
            assert runtime in made.staging_writers and deployment.role not in made.staging_writers
            engine = make_engine(runtime_url)
            try:
                write_pubmedqa(tmp_path / "pq.json", 2, skip=50)
                assert ingest_file(engine, tmp_path / "pq.json", "pubmedqa").inserted == 2
            finally:
                engine.dispose()
            with psycopg.connect(deployment.auditor) as c:  # and still not the auditor
                assert c.execute("SELECT has_database_privilege(current_database(), 'TEMP')").fetchone() == (
                    False,
                )
        finally:
            admin.execute(f'DROP OWNED BY "{runtime}"')
            admin.execute(f'DROP ROLE "{runtime}"')
