"""audit_token_usage on Postgres: the p95 by an ordered-set aggregate, not by two window passes

At the paper's scale (millions of call rows) the portable definition of 0002 sorts every call row by
(model, role, day, latency) for its window functions before grouping: 13 s for 533k rows on a loaded
2-core machine (bench/scale_db.py --scale 0.1), minutes at full size. ``percentile_disc(0.95) WITHIN
GROUP (ORDER BY latency_ms)`` is the same nearest-rank p95 (the value at position ceil(0.95 n) of the
group's sorted non-null latencies) and sorts each group on its own. Same columns, same types, same
rows; SQLite keeps 0002's definition.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:30:00
"""
import importlib
from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
TOKEN_USAGE = f"""
SELECT model, role AS stage, {DAY} AS day, count(*) AS calls,
       sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS failed_calls,
       sum(attempts) AS attempts,
       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(completion_tokens), 0) AS completion_tokens,
       coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS total_tokens,
       avg(latency_ms) AS mean_latency_ms,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms
FROM llm_calls
GROUP BY model, role, {DAY}
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE OR REPLACE VIEW audit_token_usage AS {TOKEN_USAGE.strip()}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        views = importlib.import_module("migrations.versions.0002_audit_views")
        sql = views.TOKEN_USAGE.format(day=views._DAY["postgresql"]).strip()
        op.execute(f"CREATE OR REPLACE VIEW audit_token_usage AS {sql}")
