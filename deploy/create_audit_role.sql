-- A read-only role for auditors: SELECT on the audit views and the tables, nothing else.
--
-- Run as the owner of the schema (the role that ran the migrations), once per database:
--   psql -v role=reasonmed_audit -v password='...' -d reasonmed -f deploy/create_audit_role.sql
-- `role` defaults to reasonmed_audit; without `password` the role gets none (peer/trust/cert auth).
-- Re-running is safe: it re-applies the grants, e.g. after a migration added views or tables.
\set ON_ERROR_STOP on

\if :{?role}
\else
  \set role reasonmed_audit
\endif

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS audit_role_missing \gset
\if :audit_role_missing
  CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
\endif
\if :{?password}
  ALTER ROLE :"role" PASSWORD :'password';
\endif
-- Belt and braces: its sessions start read-only, on top of having no write privilege at all.
ALTER ROLE :"role" SET default_transaction_read_only = on;

BEGIN;
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
COMMIT;
