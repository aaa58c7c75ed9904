"""endpoint prices per run; audit_token_usage gains cost_usd

endpoint_prices: the per-endpoint prices of the pipeline file a run used ($ per million prompt and
completion tokens, NULL where none is configured), one row per (run, endpoint), written when the run
starts. audit_token_usage is recreated with a cost_usd column: each call's tokens at its run's prices
(NULL when no call of the row has a price).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_DAY = {
    "postgresql": "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "sqlite": "substr(created_at, 1, 10)",
}

# As in 0002, plus cost_usd from the prices of the call's run.
TOKEN_USAGE = """
WITH c AS (
    SELECT l.model, l.role, {day} AS day, l.status, l.attempts, l.prompt_tokens, l.completion_tokens, l.latency_ms,
           CASE WHEN p.price_input_per_mtok IS NULL AND p.price_output_per_mtok IS NULL THEN NULL
                ELSE (coalesce(l.prompt_tokens, 0) * coalesce(p.price_input_per_mtok, 0)
                      + coalesce(l.completion_tokens, 0) * coalesce(p.price_output_per_mtok, 0)) / 1000000.0 END AS cost_usd,
           ROW_NUMBER() OVER (PARTITION BY l.model, l.role, {day}, CASE WHEN l.latency_ms IS NULL THEN 1 ELSE 0 END
                              ORDER BY l.latency_ms) AS rn,
           COUNT(l.latency_ms) OVER (PARTITION BY l.model, l.role, {day}) AS n_lat
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

OLD_TOKEN_USAGE = """
WITH c AS (
    SELECT model, role, {day} AS day, status, attempts, prompt_tokens, completion_tokens, latency_ms,
           ROW_NUMBER() OVER (PARTITION BY model, role, {day}, CASE WHEN latency_ms IS NULL THEN 1 ELSE 0 END
                              ORDER BY latency_ms) AS rn,
           COUNT(latency_ms) OVER (PARTITION BY model, role, {day}) AS n_lat
    FROM llm_calls
)
SELECT model, role AS stage, day, count(*) AS calls,
       sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS failed_calls,
       sum(attempts) AS attempts,
       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(completion_tokens), 0) AS completion_tokens,
       coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS total_tokens,
       avg(latency_ms) AS mean_latency_ms,
       max(CASE WHEN latency_ms IS NOT NULL AND rn = (95 * n_lat + 99) / 100 THEN latency_ms END) AS p95_latency_ms
FROM c
GROUP BY model, role, day
"""


def _day() -> str:
    return _DAY.get(op.get_bind().dialect.name, _DAY["sqlite"])


def upgrade() -> None:
    op.create_table(
        "endpoint_prices",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "run_id",
            BigId,
            sa.ForeignKey(
                "pipeline_runs.id", ondelete="CASCADE", name=op.f("fk_endpoint_prices_run_id_pipeline_runs")
            ),
            nullable=False,
        ),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("price_input_per_mtok", sa.Float(), nullable=True),
        sa.Column("price_output_per_mtok", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_prices")),
        sa.UniqueConstraint("run_id", "endpoint", name=op.f("uq_endpoint_prices_run_id_endpoint")),
    )
    op.execute("DROP VIEW IF EXISTS audit_token_usage")
    op.execute(f"CREATE VIEW audit_token_usage AS {TOKEN_USAGE.format(day=_day()).strip()}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS audit_token_usage")
    op.execute(f"CREATE VIEW audit_token_usage AS {OLD_TOKEN_USAGE.format(day=_day()).strip()}")
    op.drop_table("endpoint_prices")
