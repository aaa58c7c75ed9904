"""The read-only audit role on Postgres: every statement that creates it, bounds it and says what it reads.

Why a command and not a migration: a role belongs to the whole cluster, not to one database (a migration
would make every database on the server fight over one name), and taking EXECUTE on the large-object
functions away from PUBLIC needs a superuser, which the app role should not be. So an administrator runs
``reasonmed db create-audit-role NAME`` once per database, and again after each migration (a migration
that replaces a view drops its grants; new tables and columns stay unreadable until then, which is the
safe side).

What the role gets: CONNECT, USAGE on schema public, and SELECT on the columns of every table and view
there except ``WITHHELD`` (prompt texts, raw error bodies, run parameters and pipeline snapshots), unless
those are granted on purpose (``with_raw_text``). What it loses with everyone else (PUBLIC): TEMP on the
database, CREATE on schema public, and EXECUTE on the large-object functions (``lo_from_bytea`` and the
rest write to the database whatever the table privileges); the schema owner and the database owner get
them back by name, so the app keeps working, and so does every role that may insert questions (ingest
stages them in a temporary table). A role that is a member of another role is refused: NOINHERIT does not
stop SET ROLE. Its sessions start read-only, with statement, idle-in-transaction, idle-session and lock
timeouts; the watchdog function ends its statements that outlive the limit (a session may raise its own
timeout) and its sessions that hold an advisory lock (an auditor has no business with one; the nightly
run's key is one).

The watchdog lives in its own schema, ``ADMIN_SCHEMA``, owned by the superuser who ran the command, with
a fixed search_path: a superuser calls it from cron, and in schema public (which the app role owns) the app
could replace it or add an overload that Postgres would pick for the call, and run its SQL as superuser.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, TextClause, text

# Relation -> columns the audit role does not read unless granted on purpose. One place: the grants, the
# docs (docs/audits.md) and the tests read this.
WITHHELD: dict[str, tuple[str, ...]] = {
    "prompt_templates": ("text",),  # the prompt texts
    "llm_calls": ("error",),  # a failed call's error: the server's raw reply body
    "question_failures": ("last_error",),  # the same, kept per question and stage
    "audit_set_aside": ("last_error",),  # the view that shows it
    # exception text, flow parameters (URLs, paths), the pipeline file (endpoints, prompt settings)
    "pipeline_runs": ("error", "parameters", "config_snapshot"),
    "ingest_files": ("error",),  # exception text of a file that failed
    "batch_requests": ("error",),  # a failed batch line's error body (mode batch)
    "llm_batches": ("error",),  # the Batch API's validation errors
    "audit_batches": ("error",),  # the view that shows them
}

# Owned by the superuser who runs the command; nobody else may create in it (the watchdog runs as superuser).
ADMIN_SCHEMA = "reasonmed_admin"
WATCHDOG = f"{ADMIN_SCHEMA}.reasonmed_audit_watchdog"  # call it by this name (docs/audits.md)
_OLD_WATCHDOG = (
    "public.reasonmed_audit_watchdog(name, interval)"  # where it was before: the app could replace it
)

# The table whose writers keep TEMP: ingest stages questions in a temporary table (db/questions.py).
_STAGED_TABLE = "public.questions"

# The functions in pg_catalog that read or write large objects (server side).
_LARGE_OBJECT = (
    "p.pronamespace = 'pg_catalog'::regnamespace "
    "AND (p.proname LIKE 'lo\\_%' OR p.proname IN ('loread', 'lowrite'))"
)
_LARGE_OBJECT_FUNCTIONS = text(f"""
SELECT p.oid::regprocedure::text, has_function_privilege('public', p.oid, 'EXECUTE')
FROM pg_proc p WHERE {_LARGE_OBJECT} ORDER BY 1
""")
_STILL_RUNNABLE = text(f"""
SELECT p.oid::regprocedure::text FROM pg_proc p
WHERE {_LARGE_OBJECT} AND has_function_privilege(:role, p.oid, 'EXECUTE') ORDER BY 1
""")

_COLUMNS = text("""
SELECT c.relname, a.attname
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY c.relname, a.attnum
""")

# Every name qualified and the search_path fixed: it runs with a superuser's rights.
_WATCHDOG_SQL = f"""
CREATE OR REPLACE FUNCTION {WATCHDOG}(audit_role name, max_runtime interval)
RETURNS integer LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.count(*)::integer FROM (
    SELECT pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a
    WHERE a.usename = audit_role AND a.pid <> pg_catalog.pg_backend_pid()
      AND ((a.state <> 'idle' AND pg_catalog.now() - a.query_start > max_runtime)
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory'))
  ) ended
$$"""

# Roles (not superusers: they need nothing) that may insert questions, so ingest; they keep TEMP.
_STAGING_WRITERS = text(f"""
SELECT rolname FROM pg_catalog.pg_roles
WHERE NOT rolsuper AND rolname <> :role AND has_table_privilege(oid, '{_STAGED_TABLE}', 'INSERT')
ORDER BY rolname
""")

# The roles granted to ``role``: what an administrator revokes.
_GRANTED_TO = text("""
SELECT pg_get_userbyid(m.roleid) FROM pg_catalog.pg_auth_members m
JOIN pg_catalog.pg_roles me ON me.oid = m.member WHERE me.rolname = :role ORDER BY 1
""")

# The roles ``role`` may SET ROLE to (directly, through another role or implicitly), itself aside.
_MEMBER_OF = text("""
SELECT r.rolname FROM pg_catalog.pg_roles me
JOIN pg_catalog.pg_roles r ON r.oid <> me.oid AND pg_has_role(me.oid, r.oid, 'MEMBER')
WHERE me.rolname = :role ORDER BY 1
""")

# Who, besides a superuser, could put SQL where the superuser's watchdog call would run it.
_WATCHDOG_UNSAFE = text(f"""
SELECT 'schema owner ' || pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n
WHERE n.nspname = '{ADMIN_SCHEMA}' AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = n.nspowner)
UNION ALL
SELECT 'CREATE for ' || r.rolname FROM pg_catalog.pg_roles r
WHERE NOT r.rolsuper AND has_schema_privilege(r.oid, '{ADMIN_SCHEMA}', 'CREATE')
UNION ALL
SELECT 'function owner ' || pg_get_userbyid(p.proowner) FROM pg_catalog.pg_proc p
WHERE p.pronamespace = '{ADMIN_SCHEMA}'::regnamespace AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = p.proowner)
""")


class AuditRoleRefused(ValueError):
    """The role cannot be made (or made safe) here; the message says why and what to do."""


@dataclass(frozen=True)
class AuditLimits:
    """What bounds the role's sessions (role settings; the watchdog enforces the statement limit)."""

    statement_timeout_s: int = 60
    idle_session_timeout_s: int = 600
    lock_timeout_s: int = 5
    connection_limit: int = 4
    temp_file_limit: str = "1GB"


@dataclass(frozen=True)
class AuditRole:
    """What ``create_audit_role`` did: the role, where, what it reads and what it was kept from."""

    name: str
    database: str
    readable: dict[str, tuple[str, ...]]  # relation -> columns it may SELECT
    withheld: dict[str, tuple[str, ...]]  # relation -> columns left out
    large_object_functions: tuple[str, ...]  # taken from PUBLIC (this run), given back to the owners
    owners: tuple[str, ...]  # the roles that keep TEMP, CREATE on public and the large-object functions
    staging_writers: tuple[str, ...]  # the other roles that may insert questions: they keep TEMP for ingest
    limits: AuditLimits


def create_audit_role(
    engine: Engine, name: str, *, limits: AuditLimits | None = None, with_raw_text: bool = False
) -> AuditRole:
    """Create (or re-apply) the login role ``name`` in the engine's database, in one transaction.

    Run it as a superuser: creating a role and revoking PUBLIC's EXECUTE on pg_catalog functions need one.
    """
    if engine.dialect.name != "postgresql":
        raise AuditRoleRefused(
            f"the audit role is a Postgres role; this database is {engine.dialect.name} "
            "(give auditors a read-only copy of the file instead)"
        )
    limits = limits or AuditLimits()
    with engine.begin() as c:
        # A superuser in a database whose schema public the app owns: resolve no name through it.
        c.execute(text("SET LOCAL search_path = pg_catalog, pg_temp"))
        database, schema_owner, db_owner = _where(c)
        owners = tuple(dict.fromkeys((schema_owner, db_owner)))
        _refuse_unsafe_role(c, name, owners)
        _create_bounded_role(c, name, limits)
        staging_writers = _take_from_public(c, database, name, owners)
        lo_functions = _take_large_objects(c, name, owners)
        readable, withheld = _grant_reads(c, name, database, schema_owner, with_raw_text)
        _install_watchdog(c)
        _verify(c, name)
    return AuditRole(name, database, readable, withheld, lo_functions, owners, staging_writers, limits)


def _where(c: Connection) -> tuple[str, str, str]:
    """(database, owner of the ReasonMed schema, database owner); refuses an unmigrated database."""
    row = c.execute(
        text("""
        SELECT current_database(), t.tableowner, pg_get_userbyid(d.datdba)
        FROM pg_database d LEFT JOIN pg_tables t ON t.schemaname = 'public' AND t.tablename = 'alembic_version'
        WHERE d.datname = current_database()""")
    ).one()
    if row[1] is None:
        raise AuditRoleRefused(f"database {row[0]} has no ReasonMed schema: run `reasonmed db upgrade` first")
    return str(row[0]), str(row[1]), str(row[2])


def _quote(c: Connection, name: str) -> str:
    return c.dialect.identifier_preparer.quote_identifier(name)


def _refuse_unsafe_role(c: Connection, name: str, owners: tuple[str, ...]) -> None:
    """Never turn the app's own role (or a superuser) into a read-only one by a typo."""
    if name in owners:
        raise AuditRoleRefused(f"{name!r} owns this database or its tables: name a new role for the auditors")
    superuser = c.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :n"), {"n": name}).scalar()
    if superuser:
        raise AuditRoleRefused(f"{name!r} is a superuser: name a new role for the auditors")
    _refuse_memberships(c, name)


def _refuse_memberships(c: Connection, name: str, query: TextClause = _GRANTED_TO) -> None:
    """A member of another role can SET ROLE to it (NOINHERIT only stops inheriting its privileges), and
    the command grants no membership: any one is someone else's, so an administrator decides, not us."""
    member_of = c.execute(query, {"role": name}).scalars().all()
    if member_of:
        roles = ", ".join(member_of[:5]) + (" ..." if len(member_of) > 5 else "")
        raise AuditRoleRefused(
            f"{name!r} is a member of {roles} and could SET ROLE to them: "
            f"REVOKE those memberships from {name} first, or name a new role for the auditors"
        )


def _create_bounded_role(c: Connection, name: str, limits: AuditLimits) -> None:
    role = _quote(c, name)
    if not c.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).scalar():
        c.execute(text(f"CREATE ROLE {role} LOGIN"))
    # No attribute that creates or grants, re-applied in case someone widened the role.
    c.execute(
        text(
            f"ALTER ROLE {role} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT "
            f"CONNECTION LIMIT {int(limits.connection_limit)}"
        )
    )
    settings = {
        "default_transaction_read_only": "on",
        "statement_timeout": f"{int(limits.statement_timeout_s)}s",
        "idle_in_transaction_session_timeout": f"{int(limits.statement_timeout_s)}s",
        "idle_session_timeout": f"{int(limits.idle_session_timeout_s)}s",
        "lock_timeout": f"{int(limits.lock_timeout_s)}s",
        "temp_file_limit": limits.temp_file_limit,
    }
    for key, value in settings.items():  # keys and values are ours: numbers and fixed words
        c.execute(text(f"ALTER ROLE {role} SET {key} = '{value}'"))


def _take_from_public(c: Connection, database: str, name: str, owners: tuple[str, ...]) -> tuple[str, ...]:
    """PUBLIC loses TEMP on the database and CREATE on schema public; the owners keep both by name
    (before PostgreSQL 15 PUBLIC had CREATE on public, and an app role that is not the database owner
    may have relied on it for migrations). Every other role that may insert questions keeps TEMP: ingest
    stages rows in a temporary table, and a least-privilege runtime role owns nothing. Returns those."""
    db = _quote(c, database)
    c.execute(text(f"REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC"))
    c.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    for owner in owners:
        c.execute(text(f"GRANT TEMPORARY ON DATABASE {db} TO {_quote(c, owner)}"))
        c.execute(text(f"GRANT CREATE ON SCHEMA public TO {_quote(c, owner)}"))
    writers = tuple(w for w in c.execute(_STAGING_WRITERS, {"role": name}).scalars() if w not in owners)
    for writer in writers:
        c.execute(text(f"GRANT TEMPORARY ON DATABASE {db} TO {_quote(c, writer)}"))
    return writers


def _take_large_objects(c: Connection, name: str, owners: tuple[str, ...]) -> tuple[str, ...]:
    """PUBLIC (so the audit role) loses EXECUTE on every large-object function it had; the owners get it
    by name. Returns the functions taken from PUBLIC this time (none on a re-run)."""
    taken = []
    for signature, public in c.execute(_LARGE_OBJECT_FUNCTIONS).all():  # signatures as Postgres prints them
        if public:
            c.execute(text(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC"))
            for owner in owners:
                c.execute(text(f"GRANT EXECUTE ON FUNCTION {signature} TO {_quote(c, owner)}"))
            taken.append(signature)
        c.execute(text(f"REVOKE ALL ON FUNCTION {signature} FROM {_quote(c, name)}"))
    return tuple(taken)


def _grant_reads(
    c: Connection, name: str, database: str, schema_owner: str, with_raw_text: bool
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Start from nothing, then SELECT on each relation's columns but the withheld ones. Column grants
    even where nothing is withheld: a column a later migration adds stays unreadable until a re-run."""
    role, db = _quote(c, name), _quote(c, database)
    c.execute(text(f"REVOKE ALL ON DATABASE {db} FROM {role}"))
    c.execute(text(f"GRANT CONNECT ON DATABASE {db} TO {role}"))
    c.execute(text(f"REVOKE ALL ON SCHEMA public FROM {role}"))
    c.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
    for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
        c.execute(text(f"REVOKE ALL ON ALL {kind} IN SCHEMA public FROM {role}"))
    # deploy/create_audit_role.sql (before this command) granted SELECT on every future table: taken back.
    c.execute(
        text(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {_quote(c, schema_owner)} IN SCHEMA public "
            f"REVOKE ALL ON TABLES FROM {role}"
        )
    )
    columns: dict[str, list[str]] = {}
    for relation, column in c.execute(_COLUMNS):
        columns.setdefault(relation, []).append(column)
    readable: dict[str, tuple[str, ...]] = {}
    withheld: dict[str, tuple[str, ...]] = {}
    for relation, names in columns.items():
        kept_out = () if with_raw_text else tuple(n for n in names if n in WITHHELD.get(relation, ()))
        allowed = tuple(n for n in names if n not in kept_out)
        if kept_out:
            withheld[relation] = kept_out
        if allowed:
            cols = ", ".join(_quote(c, n) for n in allowed)
            c.execute(text(f"GRANT SELECT ({cols}) ON public.{_quote(c, relation)} TO {role}"))
            readable[relation] = allowed
    return readable, withheld


def _install_watchdog(c: Connection) -> None:
    """Run by a superuser (cron, pg_cron), or a monitoring role given USAGE on ``ADMIN_SCHEMA``, EXECUTE,
    pg_signal_backend and pg_read_all_stats: it runs with its caller's rights, so it can end nothing the
    caller could not, and only superusers may write where it lives (a schema the app role could create
    first is refused). The copy an earlier version left in schema public is dropped: a cron job still
    calling it there fails instead of running whatever the app role put in its place."""
    c.execute(text(f"CREATE SCHEMA IF NOT EXISTS {ADMIN_SCHEMA}"))
    unsafe = c.execute(_WATCHDOG_UNSAFE).scalars().all()
    if unsafe:
        raise AuditRoleRefused(
            f"schema {ADMIN_SCHEMA} is not a superuser's alone ({', '.join(unsafe[:3])}): "
            f"drop it (DROP SCHEMA {ADMIN_SCHEMA} CASCADE) and run this command as a superuser"
        )
    c.execute(text(f"REVOKE ALL ON SCHEMA {ADMIN_SCHEMA} FROM PUBLIC"))
    c.execute(text(f"DROP FUNCTION IF EXISTS {_OLD_WATCHDOG}"))
    c.execute(text(_WATCHDOG_SQL))
    c.execute(text(f"REVOKE ALL ON FUNCTION {WATCHDOG}(name, interval) FROM PUBLIC"))


def _verify(c: Connection, name: str) -> None:
    """Whatever the REVOKEs said (a non-owner's REVOKE only warns), the role must not run these."""
    still = c.execute(_STILL_RUNNABLE, {"role": name}).scalars().all()
    if still:
        raise AuditRoleRefused(
            f"{name!r} could still run {', '.join(still[:3])}{' ...' if len(still) > 3 else ''}: "
            "run this command as a superuser (only the functions' owner can take EXECUTE from PUBLIC)"
        )
    # Any role it could SET ROLE to, however (a membership granted while the command ran undoes the rest).
    _refuse_memberships(c, name, _MEMBER_OF)
    if c.execute(text("SELECT has_database_privilege(:r, current_database(), 'TEMP')"), {"r": name}).scalar():
        raise AuditRoleRefused(
            f"{name!r} could still create temporary tables: run this command as a superuser"
        )
    unsafe = c.execute(_WATCHDOG_UNSAFE).scalars().all()
    if unsafe:
        raise AuditRoleRefused(
            f"the watchdog's schema {ADMIN_SCHEMA} is not a superuser's alone ({unsafe[0]})"
        )
