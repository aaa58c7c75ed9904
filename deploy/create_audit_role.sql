-- A read-only role for auditors: SELECT on the audit views and the tables, nothing else, within limits.
--
-- Run as the owner of the schema (the role that ran the migrations), once per database:
--   psql -v role=reasonmed_audit -v password='...' -v statement_timeout=60s -d reasonmed -f deploy/create_audit_role.sql
-- `role` defaults to reasonmed_audit; without `password` the role gets none (peer/trust/cert auth).
-- `statement_timeout` (default 60s) and `connection_limit` (default 4) bound what the role can cost the
-- database. Re-running is safe: it re-applies the grants, e.g. after a migration added views or tables.
--
-- What PostgreSQL lets any role do, this script takes back for everyone (PUBLIC): TEMP on the database
-- (temporary tables) and, on PostgreSQL 14 and older, CREATE on schema public. A session can still lower
-- or RAISE its own statement_timeout with SET (it is a user setting in PostgreSQL); the watchdog function
-- at the end, run every minute by the owner (cron or pg_cron), ends any audit query older than the limit
-- whatever the session set. See deploy/README.md, "Audit role".
\set ON_ERROR_STOP on

\if :{?role}
\else
  \set role reasonmed_audit
\endif
\if :{?statement_timeout}
\else
  \set statement_timeout 60s
\endif
\if :{?connection_limit}
\else
  \set connection_limit 4
\endif

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS audit_role_missing \gset
\if :audit_role_missing
  CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
\endif
\if :{?password}
  ALTER ROLE :"role" PASSWORD :'password';
\endif
-- No attribute that would let it create or grant: re-applied, in case someone widened the role.
ALTER ROLE :"role" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
  CONNECTION LIMIT :connection_limit;
-- Belt and braces: its sessions start read-only, on top of having no write privilege at all.
ALTER ROLE :"role" SET default_transaction_read_only = on;
-- Limits each session starts with (the watchdog below enforces the statement limit even if it is SET higher).
ALTER ROLE :"role" SET statement_timeout = :'statement_timeout';
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = :'statement_timeout';
ALTER ROLE :"role" SET lock_timeout = '5s';
ALTER ROLE :"role" SET temp_file_limit = '1GB';

BEGIN;
-- Everyone (PUBLIC, hence every role) loses TEMP on this database and CREATE on schema public; the
-- owner keeps both through ownership. Defaults before PostgreSQL 15 grant CREATE on public to PUBLIC.
REVOKE TEMPORARY ON DATABASE :"DBNAME" FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"DBNAME" FROM :"role";
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
REVOKE ALL ON SCHEMA public FROM :"role";
GRANT USAGE ON SCHEMA public TO :"role";
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"role";
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM :"role";
-- "ALL TABLES" covers views: the audit_* views and every table behind them.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"role";
-- Views and tables that later migrations create (as this same owner) are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"role";

-- The watchdog: ends the role's statements that have run longer than the limit, whatever the session
-- SET. Owned by the schema owner, not executable by the audit role; run it every minute, e.g.
--   * * * * *  psql -d reasonmed -Atc "SELECT reasonmed_audit_watchdog('reasonmed_audit', '60s')"
CREATE OR REPLACE FUNCTION reasonmed_audit_watchdog(audit_role name, max_runtime interval)
RETURNS integer LANGUAGE sql AS $$
  SELECT count(*)::integer FROM (
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE usename = audit_role AND state <> 'idle' AND now() - query_start > max_runtime
  ) ended
$$;
REVOKE ALL ON FUNCTION reasonmed_audit_watchdog(name, interval) FROM PUBLIC;
COMMIT;
