"""batches: requests sent through an endpoint's Batch API, the questions waiting on them, and their price

llm_batches holds each submitted batch (written before its upload, found again by its submission key if a run
dies in between); batch_requests each request in it, named by a fingerprint of its body (custom_id), with the
response once collected; question_waits the questions whose stage waits on a batch, so the run that saw them
wait does not claim them again. llm_calls.batch_id links a call answered from a batch to it;
endpoint_prices.batch_price_factor keeps the share of the price a batch request costs, and audit_token_usage's
cost_usd applies it to calls answered from a batch. audit_batches lists the batches with their counts and cost.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence
from importlib import util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

# A call's cost at its run's prices; a call answered from a batch at the batch share of them.
COST = """CASE WHEN p.price_input_per_mtok IS NULL AND p.price_output_per_mtok IS NULL THEN NULL
                ELSE (coalesce(l.prompt_tokens, 0) * coalesce(p.price_input_per_mtok, 0)
                      + coalesce(l.completion_tokens, 0) * coalesce(p.price_output_per_mtok, 0)) / 1000000.0
                     * CASE WHEN l.batch_id IS NULL THEN 1.0 ELSE coalesce(p.batch_price_factor, 1.0) END END"""

# 0008's portable definition (SQLite) with the batch price.
TOKEN_USAGE_PORTABLE = f"""
WITH c AS (
    SELECT l.model, l.role, substr(l.created_at, 1, 10) AS day, l.status, l.attempts, l.prompt_tokens,
           l.completion_tokens, l.latency_ms,
           {COST} AS cost_usd,
           ROW_NUMBER() OVER (PARTITION BY l.model, l.role, substr(l.created_at, 1, 10),
                              CASE WHEN l.latency_ms IS NULL THEN 1 ELSE 0 END ORDER BY l.latency_ms) AS rn,
           COUNT(l.latency_ms) OVER (PARTITION BY l.model, l.role, substr(l.created_at, 1, 10)) AS n_lat
    FROM llm_calls l
    LEFT JOIN endpoint_prices p ON p.run_id = l.run_id AND p.endpoint = l.endpoint
)
SELECT model, role AS stage, day, count(*) AS calls,
       sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS failed_calls,
       sum(attempts) AS attempts,
       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(completion_tokens), 0) AS completion_tokens,
       coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS total_tokens,
       sum(cost_usd) AS cost_usd,
       avg(latency_ms) AS mean_latency_ms,
       max(CASE WHEN latency_ms IS NOT NULL AND rn = (95 * n_lat + 99) / 100 THEN latency_ms END) AS p95_latency_ms
FROM c
GROUP BY model, role, day
"""

# 0010's Postgres definition (an ordered-set p95) with the batch price.
DAY = "to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
TOKEN_USAGE_POSTGRES = f"""
SELECT l.model, l.role AS stage, {DAY} AS day, count(*) AS calls,
       sum(CASE WHEN l.status = 'ok' THEN 0 ELSE 1 END) AS failed_calls,
       sum(l.attempts) AS attempts,
       coalesce(sum(l.prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(l.completion_tokens), 0) AS completion_tokens,
       coalesce(sum(l.prompt_tokens), 0) + coalesce(sum(l.completion_tokens), 0) AS total_tokens,
       sum({COST}) AS cost_usd,
       avg(l.latency_ms) AS mean_latency_ms,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY l.latency_ms) AS p95_latency_ms
FROM llm_calls l
LEFT JOIN endpoint_prices p ON p.run_id = l.run_id AND p.endpoint = l.endpoint
GROUP BY l.model, l.role, {DAY}
"""

BATCHES = """
SELECT b.id AS batch_id, b.endpoint, b.model, b.remote_id, b.status, b.requests, b.completed, b.failed,
       b.requests - b.completed - b.failed AS unanswered, b.input_bytes, b.prompt_tokens, b.completion_tokens,
       b.cost_usd, b.run_id, b.worker, b.created_at, b.submitted_at, b.finished_at, b.collected_at, b.error
FROM llm_batches b
"""


def _token_usage() -> str:
    return TOKEN_USAGE_POSTGRES if op.get_bind().dialect.name == "postgresql" else TOKEN_USAGE_PORTABLE


def _migration(name: str) -> ModuleType:
    """An earlier migration's module, read from its file (not importable by name from an installed script)."""
    spec = util.spec_from_file_location(f"_m{name[:4]}", Path(__file__).resolve().parent / name)
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.create_table(
        "llm_batches",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("submission_key", sa.String(64), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=True),
        sa.Column("input_file_id", sa.String(200), nullable=True),
        sa.Column("output_file_id", sa.String(200), nullable=True),
        sa.Column("error_file_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("input_bytes", sa.BigInteger(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey(
                "pipeline_runs.id", ondelete="SET NULL", name=op.f("fk_llm_batches_run_id_pipeline_runs")
            ),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("submitted_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("collected_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_batches")),
        sa.UniqueConstraint("submission_key", name=op.f("uq_llm_batches_submission_key")),
    )
    op.create_index(op.f("ix_llm_batches_remote_id"), "llm_batches", ["remote_id"])
    op.create_index(op.f("ix_llm_batches_status"), "llm_batches", ["status"])
    op.create_index(op.f("ix_llm_batches_run_id"), "llm_batches", ["run_id"])
    op.create_table(
        "batch_requests",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("custom_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column(
            "batch_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey(
                "llm_batches.id", ondelete="CASCADE", name=op.f("fk_batch_requests_batch_id_llm_batches")
            ),
            nullable=True,
        ),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("consumed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_requests")),
        sa.UniqueConstraint("custom_id", "attempt", name=op.f("uq_batch_requests_custom_id_attempt")),
        sa.CheckConstraint(
            "status IN ('submitted', 'completed', 'failed')", name=op.f("ck_batch_requests_status")
        ),
    )
    op.create_index(op.f("ix_batch_requests_batch_id"), "batch_requests", ["batch_id"])
    op.create_table(
        "question_waits",
        sa.Column(
            "question_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey(
                "questions.id", ondelete="CASCADE", name=op.f("fk_question_waits_question_id_questions")
            ),
            nullable=False,
        ),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey(
                "pipeline_runs.id", ondelete="SET NULL", name=op.f("fk_question_waits_run_id_pipeline_runs")
            ),
            nullable=True,
        ),
        sa.Column("since", TS, nullable=False),
        sa.PrimaryKeyConstraint("question_id", name=op.f("pk_question_waits")),
    )
    op.create_index(op.f("ix_question_waits_run_id"), "question_waits", ["run_id"])

    op.execute("DROP VIEW IF EXISTS audit_token_usage")
    op.add_column("endpoint_prices", sa.Column("batch_price_factor", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a reference only by rebuilding the table, and refuses that while a view names the
        # table: every view goes first (0007's reader) and comes back after.
        views = _migration("0007_prompt_keys_and_guard.py")._stored_views()
        for name in views:
            op.execute(f"DROP VIEW IF EXISTS {name}")
        with op.batch_alter_table("llm_calls") as b:
            b.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
            b.create_foreign_key(
                op.f("fk_llm_calls_batch_id_llm_batches"),
                "llm_batches",
                ["batch_id"],
                ["id"],
                ondelete="SET NULL",
            )
        for sql in views.values():
            op.execute(sql)
    else:
        op.add_column("llm_calls", sa.Column("batch_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            op.f("fk_llm_calls_batch_id_llm_batches"),
            "llm_calls",
            "llm_batches",
            ["batch_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index(op.f("ix_llm_calls_batch_id"), "llm_calls", ["batch_id"])
    op.execute(f"CREATE VIEW audit_token_usage AS {_token_usage().strip()}")
    op.execute(f"CREATE VIEW audit_batches AS {BATCHES.strip()}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS audit_batches")
    op.execute("DROP VIEW IF EXISTS audit_token_usage")
    op.drop_index(op.f("ix_llm_calls_batch_id"), table_name="llm_calls")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite drops a referencing column only by rebuilding the table, and refuses that while a view
        # names the table: every view goes first (0007's reader) and comes back after.
        views = _migration("0007_prompt_keys_and_guard.py")._stored_views()
        for name in views:
            op.execute(f"DROP VIEW IF EXISTS {name}")
        with op.batch_alter_table("llm_calls") as b:
            b.drop_column("batch_id")
        op.execute("ALTER TABLE endpoint_prices DROP COLUMN batch_price_factor")
        for sql in views.values():
            op.execute(sql)
        op.execute("DROP VIEW IF EXISTS audit_token_usage")
    else:
        op.drop_constraint(op.f("fk_llm_calls_batch_id_llm_batches"), "llm_calls", type_="foreignkey")
        op.drop_column("llm_calls", "batch_id")
        op.drop_column("endpoint_prices", "batch_price_factor")
    op.drop_table("question_waits")
    op.drop_table("batch_requests")
    op.drop_table("llm_batches")
    if op.get_bind().dialect.name == "postgresql":
        sql = _migration("0010_token_usage_percentile.py").TOKEN_USAGE.strip()
    else:
        m0008 = _migration("0008_endpoint_prices.py")
        sql = m0008.TOKEN_USAGE.format(day=m0008._DAY["sqlite"]).strip()
    op.execute(f"CREATE VIEW audit_token_usage AS {sql}")
