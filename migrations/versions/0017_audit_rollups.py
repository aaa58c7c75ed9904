"""audit_token_usage and audit_verifier_accuracy on Postgres: read from rollups refreshed by the runs, with
their staleness stated in audit_rollups

At the paper's size both views aggregate every row of their tables on each read: audit_token_usage groups
5.3M call rows by model x stage x day with a p95 per group (9.6 s for its first page of 50 rows on a 2-core
machine, 22 s under load), audit_verifier_accuracy joins 1.8M paths, their verdicts and questions (1.9-2.9
s, 8 s under load). No index helps a full aggregate (docs/performance.md); after this migration both read in
about a millisecond.

Each becomes a plain view (same name, columns and types: SQL audits keep working) over a materialized view
holding exactly its old query (0014's and 0007's SQL, read from their files), recomputed by ``REFRESH
MATERIALIZED VIEW CONCURRENTLY`` (readers keep the previous contents meanwhile; the unique index on the
group key is what CONCURRENTLY needs). reasonmed.db.audit_rollups refreshes them at the end of every build
run, in the nightly run and on demand (``reasonmed audit --refresh``, ``reasonmed report --refresh``).
audit_rollups holds one row per rolled-up view: ``refreshed_at`` (every row committed before it is counted;
later rows wait for the next refresh), ``refresh_s`` and ``row_count``. The migration builds both with their
data (12 s at the paper's size).

Why a refreshed rollup and not counters kept by the writers: the nearest-rank p95 of a group cannot be
updated from a delta, and a call's ``created_at`` (its day) moves when the call is retried, so per-day
counters kept by triggers would have to move rows between days; a refresh recomputes from the rows as they
are, so it can neither double count nor drift. A refresh costs about what one read of the old view cost.

SQLite (the embedded default, small data, no materialized views) keeps its live views: audit_rollups stays
empty there. A later migration that changes either view's query changes its materialized view instead.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 00:30:00
"""

from collections.abc import Sequence
from importlib import util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# audit view -> (its materialized view, its group key: the unique index REFRESH ... CONCURRENTLY needs)
ROLLUPS = {
    "audit_token_usage": ("rollup_token_usage", "model, stage, day"),
    "audit_verifier_accuracy": (
        "rollup_verifier_accuracy",
        "model, temperature, source, origin, verifier_model",
    ),
}


def _migration(name: str) -> ModuleType:
    """An earlier migration's module, read from its file (not importable by name from an installed script)."""
    spec = util.spec_from_file_location(f"_m{name[:4]}", Path(__file__).resolve().parent / name)
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _queries() -> dict[str, str]:
    """Each view's current Postgres definition: 0014's audit_token_usage, 0007's audit_verifier_accuracy."""
    return {
        "audit_token_usage": _migration("0014_batches.py").TOKEN_USAGE_POSTGRES.strip(),
        "audit_verifier_accuracy": _migration("0007_prompt_keys_and_guard.py").VERIFIER_ACCURACY.strip(),
    }


def upgrade() -> None:
    op.create_table(
        "audit_rollups",
        sa.Column("view_name", sa.String(64), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refresh_s", sa.Float(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("view_name", name=op.f("pk_audit_rollups")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for view, sql in _queries().items():
        relation, key = ROLLUPS[view]
        columns = ", ".join(
            name
            for (name,) in op.get_bind().execute(
                sa.text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:view AS regclass) AND attnum > 0 "
                    "AND NOT attisdropped ORDER BY attnum"
                ),
                {"view": view},
            )
        )
        op.execute(f"DROP VIEW {view}")
        op.execute(f"CREATE MATERIALIZED VIEW {relation} AS {sql}")
        op.execute(f"CREATE UNIQUE INDEX uq_{relation} ON {relation} ({key})")
        op.execute(f"CREATE VIEW {view} AS SELECT {columns} FROM {relation}")
        # Built from this transaction's snapshot: every row committed before it started is counted.
        op.execute(
            f"INSERT INTO audit_rollups (view_name, refreshed_at, refresh_s, row_count) "
            f"SELECT '{view}', transaction_timestamp(), 0, count(*) FROM {relation}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for view, sql in _queries().items():
            relation, _key = ROLLUPS[view]
            op.execute(f"DROP VIEW {view}")
            op.execute(f"DROP MATERIALIZED VIEW {relation}")
            op.execute(f"CREATE VIEW {view} AS {sql}")
    op.drop_table("audit_rollups")
