"""audit_cost_per_sample: tokens and engine time per accepted sample, per difficulty tier and role;
llm_calls.cached_prompt_tokens: of a call's prompt tokens, what the server's prefix cache held

What a dataset row costs, from the stored calls: every call of the questions of a tier (rejected questions
and failed calls included: they were paid for) over the samples (accepted paths) the tier produced, per
role. Engine time is each call's latency: the time its sequence held an engine slot, prefill included (with
endpoint caps at the engine's --max-num-seqs nothing queues inside the engine). Cached prompt tokens are what
the server reports in usage.prompt_tokens_details.cached_tokens (OpenAI; vLLM with
--enable-prompt-tokens-details), NULL where it does not.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 20:45:00
"""

from collections.abc import Sequence
from importlib import util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COST_PER_SAMPLE = """
WITH tiers AS (
    SELECT coalesce(tier, 'untiered') AS tier, count(*) AS questions, sum(n_accepted) AS accepted_samples
    FROM question_outcomes GROUP BY coalesce(tier, 'untiered')
), spent AS (
    SELECT coalesce(o.tier, 'untiered') AS tier, l.role, count(*) AS calls,
           coalesce(sum(l.prompt_tokens), 0) AS prompt_tokens,
           coalesce(sum(l.completion_tokens), 0) AS completion_tokens,
           sum(l.cached_prompt_tokens) AS cached_prompt_tokens,
           CAST(coalesce(sum(l.latency_ms), 0) AS DOUBLE PRECISION) / 1000 AS engine_s
    FROM llm_calls l JOIN question_outcomes o ON o.question_id = l.question_id
    GROUP BY coalesce(o.tier, 'untiered'), l.role
)
SELECT s.tier, s.role, t.questions, t.accepted_samples, s.calls, s.prompt_tokens, s.cached_prompt_tokens,
       s.completion_tokens, s.engine_s,
       CASE WHEN t.accepted_samples > 0
            THEN CAST(s.prompt_tokens AS DOUBLE PRECISION) / t.accepted_samples END AS prompt_tokens_per_sample,
       CASE WHEN t.accepted_samples > 0
            THEN CAST(s.completion_tokens AS DOUBLE PRECISION) / t.accepted_samples END
           AS completion_tokens_per_sample,
       CASE WHEN t.accepted_samples > 0 THEN s.engine_s / t.accepted_samples END AS engine_s_per_sample
FROM spent s JOIN tiers t ON t.tier = s.tier
"""


def _migration(name: str) -> ModuleType:
    """An earlier migration's module, read from its file (not importable by name from an installed script)."""
    spec = util.spec_from_file_location(f"_m{name[:4]}", Path(__file__).resolve().parent / name)
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.add_column("llm_calls", sa.Column("cached_prompt_tokens", sa.Integer(), nullable=True))
    op.execute(f"CREATE VIEW audit_cost_per_sample AS {COST_PER_SAMPLE}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS audit_cost_per_sample")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite refuses to change a table while a view names it: every view goes first and comes back after.
        views = _migration("0007_prompt_keys_and_guard.py")._stored_views()
        for name in views:
            op.execute(f"DROP VIEW IF EXISTS {name}")
        op.execute("ALTER TABLE llm_calls DROP COLUMN cached_prompt_tokens")
        for sql in views.values():
            op.execute(sql)
    else:
        op.drop_column("llm_calls", "cached_prompt_tokens")
