"""audit_token_usage on Postgres: the p95 by an ordered-set aggregate, not by two window passes

At the paper's scale (millions of call rows) the portable definition (0002, with 0008's cost) sorts every call row by
(model, role, day, latency) for its window functions before grouping: 13 s for 533k rows on a loaded
2-core machine (bench/scale_db.py --scale 0.1), minutes at full size. ``percentile_disc(0.95) WITHIN
GROUP (ORDER BY latency_ms)`` is the same nearest-rank p95 (the value at position ceil(0.95 n) of the
group's sorted non-null latencies) and sorts each group on its own. Same columns, same types, same
rows; SQLite keeps 0002's definition.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:30:00
"""

from collections.abc import Sequence
from importlib import util
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY = "to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
# 0008's columns (cost_usd from the prices of the call's run), in 0008's order.
TOKEN_USAGE = f"""
SELECT l.model, l.role AS stage, {DAY} AS day, count(*) AS calls,
       sum(CASE WHEN l.status = 'ok' THEN 0 ELSE 1 END) AS failed_calls,
       sum(l.attempts) AS attempts,
       coalesce(sum(l.prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(l.completion_tokens), 0) AS completion_tokens,
       coalesce(sum(l.prompt_tokens), 0) + coalesce(sum(l.completion_tokens), 0) AS total_tokens,
       sum(CASE WHEN p.price_input_per_mtok IS NULL AND p.price_output_per_mtok IS NULL THEN NULL
                ELSE (coalesce(l.prompt_tokens, 0) * coalesce(p.price_input_per_mtok, 0)
                      + coalesce(l.completion_tokens, 0) * coalesce(p.price_output_per_mtok, 0)) / 1000000.0 END) AS cost_usd,
       avg(l.latency_ms) AS mean_latency_ms,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY l.latency_ms) AS p95_latency_ms
FROM llm_calls l
LEFT JOIN endpoint_prices p ON p.run_id = l.run_id AND p.endpoint = l.endpoint
GROUP BY l.model, l.role, {DAY}
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE OR REPLACE VIEW audit_token_usage AS {TOKEN_USAGE.strip()}")


def _migration_0008() -> ModuleType:
    """0008's module, read from its file: a migration is not importable by name from an installed console
    script (no top-level ``migrations`` package outside the repository)."""
    spec = util.spec_from_file_location("_m0008", Path(__file__).resolve().parent / "0008_endpoint_prices.py")
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        prices = _migration_0008()
        sql = prices.TOKEN_USAGE.format(day=prices._DAY["postgresql"]).strip()
        op.execute(f"CREATE OR REPLACE VIEW audit_token_usage AS {sql}")
